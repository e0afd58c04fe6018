"""Where installed models live, what their manifest says, and whether they are intact."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from completion.model_specs import DEFAULT_MODEL, FimOrder, FimTokens, fim_order

MANIFEST_NAME = "offpilot-manifest.json"
MANIFEST_VERSION = 1
CACHE_ENV = "OFFPILOT_CACHE_DIR"
INSTALL_HINT = "offpilot model install"

# Files a CTranslate2 generator directory must hold, plus the tokenizer we copy beside it.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


class ModelError(Exception):
    """A model cannot be used; the message says why and what to do."""


class ModelMissingError(ModelError):
    """No installed model under that name or path."""


class ModelCorruptError(ModelError):
    """A model directory exists but is partial, damaged or from an unknown layout."""


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
            files={str(k): dict(v) for k, v in data["files"].items()},
            source=dict(data.get("source", {})),
            license_note=str(data.get("license_note", "")),
            quantization=str(data.get("quantization", "int8")),
            output_vocabulary=dict(data.get("output_vocabulary") or {}),
        )


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
        if p.is_file() and p.name != MANIFEST_NAME
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


def verify(model_dir: Path, *, full: bool = False) -> InstalledModel:
    """Check a model directory against its manifest: sizes always, sha256 when `full`."""
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
        if full and sha256_file(file) != info["sha256"]:
            raise ModelCorruptError(f"{model_dir}: {name} fails its sha256 check. Reinstall.")
    return InstalledModel(model_dir, manifest)


def resolve(
    name_or_path: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A model directory from a name in the cache or a filesystem path."""
    target = name_or_path or DEFAULT_MODEL
    as_path = Path(target).expanduser()
    if as_path.is_dir() or os.sep in target:
        return as_path
    return cache_root(cache_dir) / target


def locate(
    name_or_path: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    full: bool = False,
) -> InstalledModel:
    """Find and verify an installed model, with a message that names the install command."""
    model_dir = resolve(name_or_path, cache_dir)
    try:
        return verify(model_dir, full=full)
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
