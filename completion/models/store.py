"""Where installed models live, what their manifest says, and whether they are intact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from completion.models.specs import DEFAULT_MODEL, FAMILIES, Family, FimOrder, FimTokens, fim_order

MANIFEST_NAME = "offpilot-manifest.json"
# Written after a full sha256 check: the files' identities then, so later loads need no rehash.
STAMP_NAME = ".offpilot-verified.json"
GGUF_DIR = ".gguf"  # under the model cache: each known model's own GGUF (llama.cpp)
MANIFEST_VERSION = 1
CACHE_ENV = "OFFPILOT_CACHE_DIR"
INSTALL_HINT = "offpilot model install"

# Files a CTranslate2 generator directory must hold, plus the tokenizer we copy beside it.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

# A model name is one plain path component: no separators, no `..`, nothing hidden.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ModelError(Exception):
    """A model cannot be used; the message says why and what to do."""


class ModelMissingError(ModelError):
    """No installed model under that name or path."""


class ModelCorruptError(ModelError):
    """A model directory exists but is partial, damaged or from an unknown layout."""


def check_name(name: str) -> str:
    """`name` if it is a safe model name (one path component in the cache), else ModelError."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ModelError(
            f"{name!r} is not a model name: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, no '..'). A model directory is given as an "
            "absolute path or one starting with ./"
        )
    return name


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The models directory: the flag, else $OFFPILOT_CACHE_DIR, else the user cache dir."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "offpilot" / "models"


@dataclass(frozen=True)
class Manifest:
    """What `offpilot model install` wrote next to a converted model."""

    name: str
    family: str
    fim: FimTokens | None
    stop_tokens: tuple[str, ...]
    files: dict[str, dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)
    license_note: str = ""
    quantization: str = "int8"
    # {"tokens": list name, "rows": kept, "of": full size} when the output layer was pruned
    output_vocabulary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict."""
        return {
            "manifest_version": MANIFEST_VERSION,
            "name": self.name,
            "family": self.family,
            "fim": None
            if self.fim is None
            else {
                "prefix": self.fim.prefix,
                "suffix": self.fim.suffix,
                "middle": self.fim.middle,
                "order": self.fim.order.value,
            },
            "stop_tokens": list(self.stop_tokens),
            "files": self.files,
            "source": self.source,
            "license_note": self.license_note,
            "quantization": self.quantization,
            "output_vocabulary": self.output_vocabulary,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Parse a manifest dict; raises KeyError/TypeError/ValueError on a malformed one."""
        if data.get("manifest_version") != MANIFEST_VERSION:
            raise ValueError(f"unsupported manifest_version {data.get('manifest_version')!r}")
        fim = data["fim"]
        return cls(
            name=str(data["name"]),
            family=str(data["family"]),
            fim=None if fim is None else _fim_tokens(fim, str(data["family"])),
            stop_tokens=tuple(str(t) for t in data["stop_tokens"]),
            files={str(k): _file_entry(str(k), v) for k, v in data["files"].items()},
            source=dict(data.get("source", {})),
            license_note=str(data.get("license_note", "")),
            quantization=str(data.get("quantization", "int8")),
            output_vocabulary=dict(data.get("output_vocabulary") or {}),
        )


def _file_entry(name: str, info: dict[str, Any]) -> dict[str, Any]:
    """One manifest `files` entry, checked: a plain file name, a size and a sha256."""
    if name in (".", "..") or "/" in name or not name:
        raise ValueError(f"file name {name!r} is not a plain name")
    size, digest = info["size"], info["sha256"]
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"{name}: size {size!r} is not a byte count")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"{name}: sha256 {digest!r} is not a hex digest")
    return dict(info)


def _fim_tokens(fim: dict[str, Any], family: str) -> FimTokens:
    """The manifest's FIM tokens; a manifest written before orders existed gets its family's."""
    order = fim.get("order")
    return FimTokens(
        fim["prefix"],
        fim["suffix"],
        fim["middle"],
        FimOrder(order) if order is not None else fim_order(family),
    )


@dataclass(frozen=True)
class InstalledModel:
    """A verified model directory and its manifest."""

    path: Path
    manifest: Manifest

    @property
    def family(self) -> Family:
        """The model's family entry, with the FIM and stop tokens its install found.

        The manifest keeps the tokens the vocabulary has (a checkpoint may lack the FIM
        ones); the rest (windows, repository tokens) is read from the entry, so that a
        change to the entry reaches installed models without a reinstall. A family the
        registry does not know keeps the manifest's tokens and the default windows.
        """
        entry = FAMILIES.get(self.manifest.family) or Family(self.manifest.family, None, ())
        return replace(entry, fim=self.manifest.fim, stop_tokens=self.manifest.stop_tokens)

    @property
    def size_bytes(self) -> int:
        """Total size of the model's files."""
        return sum(int(f["size"]) for f in self.manifest.files.values())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_files(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file in a model directory (the manifest's `files`)."""
    return {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(model_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(STAMP_NAME)
    }


def read_manifest(model_dir: Path) -> Manifest:
    """Load a directory's manifest, or raise ModelMissingError / ModelCorruptError."""
    path = model_dir / MANIFEST_NAME
    if not model_dir.is_dir():
        raise ModelMissingError(f"no model at {model_dir}")
    if not path.is_file():
        raise ModelCorruptError(
            f"{model_dir} has no {MANIFEST_NAME}: it is not an installed model "
            f"(an interrupted install?). Run `{INSTALL_HINT}` again."
        )
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelCorruptError(f"{path} is unreadable or malformed: {exc}") from exc


def file_identity(path: Path) -> list[int]:
    """What changes when a file is rewritten, replaced or copied (ctime cannot be set back)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _identities(model_dir: Path, manifest: Manifest) -> dict[str, list[int]]:
    return {name: file_identity(model_dir / name) for name in [*manifest.files, MANIFEST_NAME]}


def _write_stamp(model_dir: Path, identities: dict[str, list[int]]) -> None:
    """Record the files as verified; a cache we cannot write to is simply rehashed next time."""
    tmp = model_dir / f"{STAMP_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        tmp.write_text(json.dumps({"stamp_version": 1, "files": identities}), encoding="utf-8")
        os.replace(tmp, model_dir / STAMP_NAME)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _stamp_matches(model_dir: Path, manifest: Manifest) -> bool:
    try:
        stamp = json.loads((model_dir / STAMP_NAME).read_text(encoding="utf-8"))
        return bool(stamp.get("files") == _identities(model_dir, manifest))
    except (OSError, ValueError, AttributeError):
        return False


def verify(model_dir: Path, *, full: bool = False) -> InstalledModel:
    """Check a model directory against its manifest: sizes always, sha256 when `full`.

    A full check that passes leaves a stamp of the files' identities (see `verify_stamped`).
    """
    manifest = read_manifest(model_dir)
    for required in REQUIRED_FILES:
        if required not in manifest.files:
            raise ModelCorruptError(f"{model_dir}: manifest lists no {required}")
    for name, info in manifest.files.items():
        file = model_dir / name
        if not file.is_file():
            raise ModelCorruptError(f"{model_dir}: {name} is missing. Reinstall the model.")
        if file.stat().st_size != int(info["size"]):
            raise ModelCorruptError(
                f"{model_dir}: {name} has {file.stat().st_size} bytes, manifest says "
                f"{info['size']} (truncated or replaced). Reinstall the model."
            )
    if full:
        before = _identities(model_dir, manifest)  # taken first: a change while hashing shows
        for name, info in manifest.files.items():
            if sha256_file(model_dir / name) != info["sha256"]:
                raise ModelCorruptError(
                    f"{model_dir}: {name} fails its sha256 check (damaged or replaced). "
                    f"Reinstall it with `{INSTALL_HINT}`."
                )
        _write_stamp(model_dir, before)
    return InstalledModel(model_dir, manifest)


def verify_stamped(model_dir: Path) -> InstalledModel:
    """The check before a load: full sha256 unless the files are the ones last verified.

    The first load after an install (or after any file was rewritten, replaced or copied)
    hashes every file; later loads compare sizes, times and inodes with the stamp.
    """
    model = verify(model_dir)
    if _stamp_matches(model_dir, model.manifest):
        return model
    return verify(model_dir, full=True)


def gguf_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a known model's GGUF is kept (hidden: not a model directory)."""
    return cache_root(cache_dir) / GGUF_DIR / f"{check_name(name)}.gguf"


def installed_gguf(model: InstalledModel) -> Path | None:
    """The GGUF `model` was converted from, beside it in the cache; None when not there.

    It is checked against the sha256 its manifest pins: hashed in full the first time (2.4 s
    for 491 MB here), then by a stamp of the file's identity, as `verify_stamped` does.
    A file that fails raises `ModelCorruptError`.
    """
    sha256, size = model.manifest.source.get("gguf_sha256"), model.manifest.source.get("gguf_size")
    path = model.path.parent / GGUF_DIR / f"{model.manifest.name}.gguf"
    if not sha256 or not path.is_file():
        return None
    hint = f"Fetch it again with `offpilot model gguf {model.manifest.name}`."
    if path.stat().st_size != size:
        raise ModelCorruptError(f"{path} has {path.stat().st_size} bytes, not {size}. {hint}")
    stamp = path.with_name(path.name + STAMP_NAME)
    try:
        if json.loads(stamp.read_text(encoding="utf-8")).get("file") == file_identity(path):
            return path
    except (OSError, ValueError, AttributeError):
        pass
    before = file_identity(path)
    if sha256_file(path) != sha256:
        raise ModelCorruptError(f"{path} fails its sha256 check (damaged or replaced). {hint}")
    with contextlib.suppress(OSError):
        stamp.write_text(json.dumps({"stamp_version": 1, "file": before}), encoding="utf-8")
    return path


def is_explicit_path(target: str) -> bool:
    """Whether a model setting names a directory rather than a model in the cache."""
    return target in (".", "..") or target.startswith(("/", "./", "../", "~"))


def resolve(
    name_or_path: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A model directory: a name is looked up in the cache only, a directory must be explicit.

    Only an absolute path or one starting with ./, ../ or ~ is a directory, so that a
    directory in the working directory (a repository's) never stands in for a cached model.
    """
    target = name_or_path or DEFAULT_MODEL
    if is_explicit_path(target):
        return Path(target).expanduser().absolute()
    return cache_root(cache_dir) / check_name(target)


def locate(
    name_or_path: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    full: bool = False,
) -> InstalledModel:
    """Find and verify an installed model, with a message that names the install command.

    The files' sha256 are checked unless a stamp shows them unchanged since the last full
    check; `full` checks them regardless.
    """
    model_dir = resolve(name_or_path, cache_dir)
    try:
        return verify(model_dir, full=True) if full else verify_stamped(model_dir)
    except ModelMissingError:
        name = name_or_path or DEFAULT_MODEL
        hint = INSTALL_HINT if name == DEFAULT_MODEL else f"{INSTALL_HINT} {name}"
        raise ModelMissingError(
            f"model {name!r} is not installed (looked in {model_dir}). Install it with `{hint}`."
        ) from None


def list_installed(cache_dir: str | os.PathLike[str] | None = None) -> list[InstalledModel | Path]:
    """Installed models under the cache root; broken directories come back as bare paths."""
    root = cache_root(cache_dir)
    if not root.is_dir():
        return []
    found: list[InstalledModel | Path] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        try:
            found.append(verify(child))
        except ModelError:
            found.append(child)
    return found
