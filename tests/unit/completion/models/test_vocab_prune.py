"""Output-vocabulary pruning on the tiny CTranslate2 model, through the real engine."""

import json
import re
import shutil
from pathlib import Path

import pytest

from completion.engines.ct2 import CT2Engine, EngineOptions
from completion.engines.interface import GenerationParams
from completion.models.install import install_from_hf
from completion.models.store import InstalledModel, verify
from completion.models.vocab_prune import (
    PruneError,
    code_tokens,
    prune_output_vocabulary,
    read_model_bin,
)

PROMPTS = ["def add(a, b):\n    return ", "import os\nimport ", "for i in range(10):\n    "]
GREEDY = GenerationParams(max_new_tokens=12, time_budget_s=None)
QUIET = {"log": lambda _m: None}


def _outputs(model: InstalledModel, params: GenerationParams = GREEDY) -> list[list[int]]:
    engine = CT2Engine(model, EngineOptions(threads=1, warmup=False))
    return [list(engine.stream(engine.encode(p), params)) for p in PROMPTS]


def _copy(model: InstalledModel, dest: Path) -> Path:
    shutil.copytree(model.path, dest)
    return dest


def _reverify(path: Path) -> InstalledModel:
    """Rewrite the manifest's file list after editing the model files by hand."""
    from completion.models.store import MANIFEST_NAME, describe_files

    manifest = json.loads((path / MANIFEST_NAME).read_text())
    (path / MANIFEST_NAME).unlink()
    manifest["files"] = describe_files(path)
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    return verify(path, full=True)


def test_greedy_output_is_unchanged_when_its_tokens_are_kept(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    full = _outputs(tiny_model)
    vocabulary = json.loads((tiny_model.path / "vocabulary.json").read_text())
    used = {vocabulary[i] for ids in full for i in ids}
    pruned_dir = _copy(tiny_model, tmp_path / "pruned")
    kept = prune_output_vocabulary(pruned_dir, used)
    assert kept < len(vocabulary)
    bins = {v.name: v.shape for v in read_model_bin(pruned_dir / "model.bin").variables}
    assert bins["decoder/projection/weight"][0] == kept
    assert bins["decoder/embeddings/weight"][0] == len(vocabulary)  # every token can be read
    reordered = json.loads((pruned_dir / "vocabulary.json").read_text())
    assert sorted(reordered) == sorted(vocabulary)
    assert reordered != vocabulary
    # argmax over a subset that holds the argmax is the same: identical ids after mapping back
    assert _outputs(_reverify(pruned_dir)) == full


def test_pruned_model_only_writes_kept_tokens(tiny_model: InstalledModel, tmp_path: Path) -> None:
    vocabulary = json.loads((tiny_model.path / "vocabulary.json").read_text())
    keep = {t for t in vocabulary if t.startswith("Ġ") and len(t) > 2}  # a few multi-char words
    pruned = _reverify(_copy(tiny_model, tmp_path / "pruned"))
    prune_output_vocabulary(pruned.path, keep)
    pruned = _reverify(pruned.path)
    sampled = GenerationParams(max_new_tokens=24, time_budget_s=None, temperature=1.5, seed=3)
    written = {vocabulary[i] for ids in _outputs(pruned, sampled) for i in ids}
    assert written, "sampling wrote nothing"
    assert all(t in keep or len(t) == 1 or t.startswith("<") for t in written)


def test_pruning_twice_or_a_broken_file_is_refused(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    pruned = _copy(tiny_model, tmp_path / "pruned")
    prune_output_vocabulary(pruned, {"Ġreturn"})
    with pytest.raises(PruneError, match="already pruned"):
        prune_output_vocabulary(pruned, {"Ġreturn"})
    broken = _copy(tiny_model, tmp_path / "broken")
    (broken / "model.bin").write_bytes((broken / "model.bin").read_bytes()[:1000])
    with pytest.raises(PruneError, match=re.escape("not a CTranslate2 model.bin")):
        prune_output_vocabulary(broken, {"Ġreturn"})


def test_install_prunes_an_installed_model_in_place_and_back(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Full install -> asked pruned: pruned from the installed files -> asked full: rebuilt."""
    cache = tmp_path / "cache"
    full = install_from_hf(str(tiny_checkpoint), "t", cache, **QUIET)
    assert full.built
    assert full.model.manifest.output_vocabulary == {}
    keep = frozenset({"Ġreturn", "Ġimport"})
    pruned = install_from_hf(str(tiny_checkpoint), "t", cache, keep_tokens=keep, **QUIET)
    info = pruned.model.manifest.output_vocabulary
    assert pruned.built
    assert 0 < info["rows"] < info["of"]
    assert verify(pruned.model.path, full=True).manifest.output_vocabulary == info
    again = install_from_hf(str(tiny_checkpoint), "t", cache, keep_tokens=keep, **QUIET)
    assert not again.built  # a verified no-op
    back = install_from_hf(str(tiny_checkpoint), "t", cache, **QUIET)
    assert back.built
    assert back.model.manifest.output_vocabulary == {}
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".install")) == ["t"]


def test_vendored_code_token_list() -> None:
    tokens = code_tokens("qwen2")
    assert tokens is not None
    assert len(tokens) > 40_000
    assert {"def", "Ġreturn", "ĠNone", "();Ċ", "ĠĠĠ"} <= tokens
    assert code_tokens("no-such-family") is None
