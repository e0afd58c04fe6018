"""The published GGUF re-encoded for llama.cpp: the same model, made once, never fatal."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from completion.models.requantize import reencoded_gguf
from completion.models.store import InstalledModel

pytestmark = pytest.mark.real_model

llama_cpp = pytest.importorskip("llama_cpp")

CODE = '''import os


def walk(root: str) -> list[str]:
    """Every file under root, sorted."""
    found = []
    for path, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            found.append(os.path.join(path, name))
    return found


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
'''


@pytest.fixture(scope="module")
def published(real_gguf: Path) -> Path:
    return real_gguf


def _next_tokens(gguf: Path) -> tuple[list[int], list[float]]:
    """The model's likeliest next token at every position of CODE, and its log-prob."""
    import numpy

    llm = llama_cpp.Llama(str(gguf), n_ctx=512, logits_all=True, n_threads=2, verbose=False)
    try:
        ids = llm.tokenize(CODE.encode(), add_bos=False)
        llm.eval(ids)
        logits = numpy.array(llm.scores[: len(ids)], dtype=numpy.float64)
    finally:
        llm.close()
    top = logits.max(axis=1, keepdims=True)
    log_probs = logits - top - numpy.log(numpy.exp(logits - top).sum(axis=1, keepdims=True))
    return log_probs.argmax(axis=1).tolist(), log_probs.max(axis=1).tolist()


def test_the_re_encoded_gguf_is_the_same_model(
    real_model: InstalledModel, published: Path, tmp_path: Path
) -> None:
    source = tmp_path / published.name
    source.symlink_to(published)
    made = reencoded_gguf(source, real_model.manifest.name)
    assert made == tmp_path / f"{published.stem}.q8_0.gguf"
    assert made.stat().st_size > published.stat().st_size  # 8 bits where most were 5
    tokens, log_probs = _next_tokens(published)
    made_tokens, made_log_probs = _next_tokens(made)
    same = sum(a == b for a, b in zip(tokens, made_tokens, strict=True)) / len(tokens)
    assert same >= 0.97, f"the likeliest next token agrees at {same:.1%} of the positions"
    drift = [abs(a - b) for a, b in zip(log_probs, made_log_probs, strict=True)]
    assert sum(drift) / len(drift) < 0.05  # what the gate reads stays what it was fitted on


def test_it_is_made_once_again_when_changed_and_never_fatal(
    real_model: InstalledModel,
    published: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = real_model.manifest.name
    source = tmp_path / published.name
    source.symlink_to(published)
    made = reencoded_gguf(source, name)
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counted(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        runs.append(args)
        return real_run(args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "run", counted)
    assert reencoded_gguf(source, name) == made
    assert runs == []  # kept: its stamp matches
    size = made.stat().st_size
    with open(made, "ab") as fh:  # changed after it was made
        fh.write(b"\0")
    assert reencoded_gguf(source, name) == made
    assert len(runs) == 1
    assert made.stat().st_size == size
    # a model whose spec names no re-encoding runs as published
    assert reencoded_gguf(source, "no-such-model") == source
    # a source the quantizer cannot read: the published file, a warning, no leftovers
    junk = tmp_path / "junk" / published.name
    junk.parent.mkdir()
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    with caplog.at_level(logging.WARNING):
        assert reencoded_gguf(junk, name) == junk
    assert "cannot re-encode" in caplog.text
    assert sorted(p.name for p in junk.parent.iterdir()) == [published.name]
