"""The llama.cpp engine on the real default model's GGUF, and how the engine is chosen."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import math
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from completion.engines import choose
from completion.engines.choose import local_engine, open_engine
from completion.engines.ct2 import CT2Engine
from completion.engines.interface import GenerationParams, Stream
from completion.models.requantize import reencoded_gguf
from completion.models.store import (
    GGUF_DIR,
    InstalledModel,
    ModelCorruptError,
    ModelError,
    installed_gguf,
)
from completion.stops import StopReason

pytestmark = pytest.mark.real_model

llamacpp = pytest.importorskip("completion.engines.llamacpp")


@pytest.fixture(scope="module")
def gguf(real_gguf: Path) -> Path:
    return real_gguf


@pytest.fixture(scope="module")
def engine(real_model: InstalledModel, gguf: Path) -> Iterator[llamacpp.LlamaCppEngine]:
    _, runs = local_engine(real_model)  # the file llama.cpp runs
    assert runs is not None
    engine = llamacpp.LlamaCppEngine(real_model, runs)
    yield engine
    engine.close()


def _fim(engine: llamacpp.LlamaCppEngine, prefix: str, suffix: str = "") -> list[int]:
    """The suffix-first FIM prompt the pipeline builds for this family."""
    assert engine.fim is not None
    pre, suf, mid = (engine.token_id(t) for t in (engine.fim.prefix, engine.fim.suffix,
                                                   engine.fim.middle))  # fmt: skip
    return [pre, suf, *engine.encode(suffix), mid, *engine.encode(prefix)]  # type: ignore[list-item]


def _text(
    engine: llamacpp.LlamaCppEngine, prompt: list[int], **params: object
) -> tuple[str, Stream]:
    # correctness, not latency: no time budget, so a busy machine cannot cut the answer
    stream = engine.stream(
        prompt, GenerationParams(time_budget_s=None, **params), static_len=len(prompt) - 1
    )  # type: ignore[arg-type]
    ids = list(stream)
    stream.close()
    return engine.decode(ids), stream


def test_the_default_engine_is_llama_cpp_where_the_gguf_is_installed(
    real_model: InstalledModel, gguf: Path, tiny_model: InstalledModel
) -> None:
    assert local_engine(real_model)[0] == "llama.cpp"
    assert local_engine(real_model, "ctranslate2") == ("ctranslate2", None)
    # a model with no GGUF (the tests' tiny one) runs on CTranslate2, unless asked otherwise
    assert local_engine(tiny_model) == ("ctranslate2", None)
    with pytest.raises(ModelError, match="offpilot model gguf"):
        local_engine(tiny_model, "llama.cpp")
    with pytest.raises(ModelError, match="unknown engine"):
        local_engine(real_model, "vllm")
    assert isinstance(open_engine(tiny_model), CT2Engine)


def test_the_re_encoded_gguf_runs_only_where_it_is_timed_faster(
    real_model: InstalledModel,
    gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = reencoded_gguf(gguf, real_model.manifest.name)
    assert made == gguf.with_name(f"{gguf.stem}.q8_0.gguf")
    # timed even where the test machine is busy (a user's busy machine waits for a later load)
    monkeypatch.setattr(choose.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    choose._verdicts.clear()
    faster = choose.llama_faster(made, gguf)  # timed here once, then kept
    assert local_engine(real_model) == ("llama.cpp", made if faster else gguf)
    stamps = list(gguf.parent.glob(".llama-faster-*"))
    assert any(json.loads(p.read_text())["faster"] == faster for p in stamps)

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("timed again")

    monkeypatch.setattr(subprocess, "run", no_child)
    choose._verdicts.clear()  # as in a new process: the kept verdict is read
    assert choose.llama_faster(made, gguf) == faster
    monkeypatch.undo()
    monkeypatch.setattr(choose.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    # a file llama.cpp cannot load is never faster; nothing is kept about it
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(64))
    with caplog.at_level(logging.WARNING):
        assert choose.llama_faster(junk, gguf) is False
    assert "cannot time" in caplog.text
    assert len(list(gguf.parent.glob(".llama-faster-*"))) == len(stamps)


def test_a_damaged_gguf_falls_back_to_ctranslate2_with_a_warning(
    real_model: InstalledModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the model's manifest, in a cache whose GGUF has the pinned size and other bytes
    model = dataclasses.replace(real_model, path=tmp_path / real_model.manifest.name)
    damaged = tmp_path / GGUF_DIR / f"{real_model.manifest.name}.gguf"
    damaged.parent.mkdir()
    with open(damaged, "wb") as fh:
        fh.truncate(int(real_model.manifest.source["gguf_size"]))
    with pytest.raises(ModelCorruptError, match="sha256"):
        installed_gguf(model)
    with caplog.at_level(logging.WARNING):
        assert local_engine(model) == ("ctranslate2", None)
    assert "sha256" in caplog.text
    with pytest.raises(ModelCorruptError):
        local_engine(model, "llama.cpp")
    damaged.write_bytes(b"GGUF")  # cut short: the size tells at once
    with pytest.raises(ModelCorruptError, match="bytes"):
        installed_gguf(model)


def test_llama_cpp_warnings_about_the_loaded_file_are_not_warnings_to_the_user(
    real_model: InstalledModel, gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="offpilot.llama.cpp"):
        llamacpp.LlamaCppEngine(
            real_model, gguf, llamacpp.LlamaOptions(context_tokens=256, warmup=False)
        ).close()
        loading = [r for r in caplog.records if r.name == "offpilot.llama.cpp"]
        # the published GGUF's vocabulary note, at every load: said, but not as a warning
        assert any("control-looking token" in r.getMessage() for r in loading)
        assert all(r.levelno == logging.INFO for r in loading)
        caplog.clear()
        # what llama.cpp says after the load keeps its level
        llamacpp._native_log(3, b"decode: failed to find a memory slot\n", None)
        llamacpp._native_log(4, b"decode: failed to decode\n", None)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "decode: failed to find a memory slot"),
        (logging.ERROR, "decode: failed to decode"),
    ]


def test_greedy_answer_and_log_probs(engine: llamacpp.LlamaCppEngine) -> None:
    text, stream = _text(engine, _fim(engine, "def add(a, b):\n    return"), max_new_tokens=8)
    assert text.startswith(" a + b")
    log_probs = stream.log_probs
    assert log_probs
    assert all(math.isfinite(lp) and lp <= 0 for lp in log_probs)


def test_a_prompt_that_shares_its_start_reuses_it(engine: llamacpp.LlamaCppEngine) -> None:
    source = Path(threading.__file__).read_text(encoding="utf-8")[:4000]
    first = _fim(engine, source)
    _text(engine, first, max_new_tokens=2)
    # typing at the end: everything before the new tokens is reused
    typed = _fim(engine, source + "    x = ")
    _, stream = _text(engine, typed, max_new_tokens=2)
    shared = next(
        (i for i, (a, b) in enumerate(zip(first, typed, strict=False)) if a != b), len(first)
    )
    assert shared > len(first) - 4  # the last tokens of `first` may merge with what follows
    assert stream.reused_tokens >= shared
    # with no static head (the naive setting) nothing is reused
    stream = engine.stream(typed, GenerationParams(max_new_tokens=1))
    list(stream)
    stream.close()
    assert stream.reused_tokens == 0
    # the answer does not depend on what the context held before
    warm, _ = _text(engine, typed, max_new_tokens=6)
    other = _fim(engine, "import os\n")
    _text(engine, other, max_new_tokens=1)
    cold, _ = _text(engine, typed, max_new_tokens=6)
    assert warm == cold


def test_a_place_left_and_come_back_to_is_restored_not_computed(
    real_model: InstalledModel, gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = Path(threading.__file__).read_text(encoding="utf-8")
    engine = llamacpp.LlamaCppEngine(real_model, gguf, llamacpp.LlamaOptions(warmup=False))
    try:
        here = _fim(engine, source[:3000], source[3000:4500])  # about 1,000 tokens
        there = _fim(engine, source[9000:11000], source[11000:12000])  # another file's
        _text(engine, here, max_new_tokens=1)
        # the context as it stands after a keystroke at `here`: all but the last token held
        warm_text, warm = _text(engine, here, max_new_tokens=8)
        assert warm.reused_tokens == len(here) - 1
        _text(engine, there, max_new_tokens=2)  # the user works elsewhere
        _text(engine, there + engine.encode("x"), max_new_tokens=2)  # typing: nothing kept
        assert len(engine._kept) == 1
        # back: restored, not computed, and the very same answer and log-probs
        back_text, back = _text(engine, here, max_new_tokens=8)
        assert back.reused_tokens == len(here) - 1
        assert (back_text, back.log_probs) == (warm_text, warm.log_probs)
        assert len(engine._kept) == 1  # `there` is kept now
        # a kept state that does not load: a warning, and the prompt computed whole
        _, data = engine._kept._places[0]
        ctypes.memset(data, 0xFF, 64)
        runs = []
        for prompt in (there, _fim(engine, "import os\n")):  # no reuse: nothing kept
            cold = engine.stream(prompt, GenerationParams(max_new_tokens=2, time_budget_s=None))
            runs.append(list(cold))
            cold.close()
        with caplog.at_level(logging.WARNING, logger="completion.engines.llamacpp"):
            again_text, again = _text(engine, there, max_new_tokens=2)
        assert "did not load" in caplog.text
        assert again.reused_tokens == 0
        assert again_text == engine.decode(runs[0])
    finally:
        engine.close()
    # room for one place: coming back to it, the place being left does not push it out
    engine = llamacpp.LlamaCppEngine(real_model, gguf, llamacpp.LlamaOptions(warmup=False))
    try:
        _text(engine, here, max_new_tokens=1)
        _text(engine, there, max_new_tokens=1)
        [(_, data)] = engine._kept._places
        engine._kept.capacity = len(data) * 3 // 2
        _, back = _text(engine, here, max_new_tokens=1)
        assert back.reused_tokens == len(here) - 1
        assert len(engine._kept) == 1  # `there`, kept in its place
    finally:
        engine.close()
    # none kept with no room for them: coming back computes the prompt again
    engine = llamacpp.LlamaCppEngine(
        real_model, gguf, llamacpp.LlamaOptions(warmup=False, kept_state_bytes=0)
    )
    try:
        _text(engine, here, max_new_tokens=1)
        _text(engine, there, max_new_tokens=1)
        _, back = _text(engine, here, max_new_tokens=1)
        assert back.reused_tokens < 8
        assert len(engine._kept) == 0
    finally:
        engine.close()


def test_cancel_stops_the_prompt_pass(engine: llamacpp.LlamaCppEngine) -> None:
    source = Path(threading.__file__).read_text(encoding="utf-8")
    prompt = _fim(engine, source[:12_000])[:3000]
    cancel = threading.Event()
    cancel.set()
    stream = engine.stream(prompt, GenerationParams(max_new_tokens=8), cancel)
    assert list(stream) == []
    assert stream.reason == StopReason.CANCELLED
    # set while the prompt is computed (3,000 tokens: seconds): it ends there, no token
    cancel = threading.Event()
    stream = engine.stream(prompt, GenerationParams(max_new_tokens=8), cancel, len(prompt) - 1)
    threading.Timer(0.2, cancel.set).start()
    assert list(stream) == []
    assert stream.reason == StopReason.CANCELLED
    # the context is free again, and what was computed is reused
    text, _ = _text(engine, _fim(engine, "def add(a, b):\n    return"), max_new_tokens=4)
    assert text.startswith(" a + b")


def test_a_stream_closed_early_frees_the_context(engine: llamacpp.LlamaCppEngine) -> None:
    prompt = _fim(engine, "def fib(n):\n")
    stream = engine.stream(prompt, GenerationParams(max_new_tokens=40))
    next(iter(stream))
    stream.close()
    done = threading.Event()

    def again() -> None:
        _text(engine, prompt, max_new_tokens=2)
        done.set()

    threading.Thread(target=again, daemon=True).start()
    assert done.wait(30), "a closed stream kept the llama.cpp context"


def test_a_prompt_larger_than_the_context_is_no_answer(
    real_model: InstalledModel, gguf: Path
) -> None:
    small = llamacpp.LlamaCppEngine(
        real_model, gguf, llamacpp.LlamaOptions(context_tokens=64, warmup=False)
    )
    try:
        stream = small.stream(small.encode("x = 1\n" * 40), GenerationParams(max_new_tokens=4))
        assert list(stream) == []
        assert stream.reason == StopReason.BACKEND_ERROR
    finally:
        small.close()


def test_sample(engine: llamacpp.LlamaCppEngine) -> None:
    prompt = _fim(engine, "def add(a, b):\n    return")
    greedy = engine.sample(prompt, GenerationParams(max_new_tokens=6, time_budget_s=None), 3)
    assert len({h.text for h in greedy.hypotheses}) == 1
    assert greedy.hypotheses[0].text.startswith(" a + b")
    sampled = engine.sample(prompt, GenerationParams(max_new_tokens=6, temperature=0.8, seed=3), 4)
    assert len(sampled.hypotheses) == 4
    assert all(len(h.log_probs) == len(h.ids) for h in sampled.hypotheses)


def test_a_llama_cpp_that_dies_on_this_cpu_is_never_loaded(
    real_model: InstalledModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A build for another CPU dies of SIGILL: a child process finds out, not the server."""
    from completion.engines import choose

    monkeypatch.setattr(choose, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    gguf = tmp_path / "model.gguf"
    assert choose.llama_runs(gguf) == "killed by SIGILL"

    def no_second_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the verdict is kept: no second test run")

    monkeypatch.setattr(choose.subprocess, "run", no_second_run)
    assert choose.llama_runs(gguf) == "killed by SIGILL"
    monkeypatch.setattr(choose, "llama_runs", lambda gguf: "killed by SIGILL")
    with caplog.at_level(logging.WARNING):
        assert local_engine(real_model) == ("ctranslate2", None)
    assert "does not run on this CPU (killed by SIGILL" in caplog.text
    with pytest.raises(ModelCorruptError, match="SIGILL"):
        local_engine(real_model, "llama.cpp")
