"""The real CTranslate2 engine, on the tiny random-weight model the suite builds."""

import gc
import threading
import time
from collections.abc import Iterator

import pytest

from completion.engines.ct2 import CT2Engine, EngineOptions, load_engine
from completion.engines.interface import GenerationParams
from completion.models.store import InstalledModel, ModelCorruptError
from completion.stops import StopReason
from completion.trigger import TriggerOptions


@pytest.fixture(scope="module")
def engine(tiny_model: InstalledModel) -> Iterator[CT2Engine]:
    engine = load_engine(tiny_model)
    yield engine
    # freed here, not at exit: a generator that ran `generate_batch` and is freed by the
    # atexit hook sometimes aborts the process ("Resource deadlock avoided", seen 2 in 6)
    engine.close()
    gc.collect()


def test_load_and_warmup(engine: CT2Engine) -> None:
    assert engine.load_seconds > 0
    assert engine.warmup_seconds > 0
    assert engine.fim is not None
    assert engine.token_id("<|fim_middle|>") is not None


def test_encode_decode_round_trip(engine: CT2Engine) -> None:
    text = "def add(a, b):\n    return a + b  # 日本語 😀\r\n"
    assert engine.decode(engine.encode(text)) == text


def test_stream_stops_at_token_cap(engine: CT2Engine) -> None:
    stream = engine.stream(engine.encode("import os\n"), GenerationParams(max_new_tokens=7))
    tokens = list(stream)
    assert len(tokens) <= 7
    assert stream.reason in (StopReason.MAX_TOKENS, StopReason.END_TOKEN)
    assert stream.first_token_s is not None


def test_greedy_is_deterministic(engine: CT2Engine) -> None:
    params = GenerationParams(max_new_tokens=12)
    prompt = engine.encode("for i in range(10):\n")
    assert list(engine.stream(prompt, params)) == list(engine.stream(prompt, params))


def test_stop_flag_and_close_end_the_work(engine: CT2Engine) -> None:
    before = threading.active_count()
    cancel = threading.Event()
    stream = engine.stream(engine.encode("x"), GenerationParams(max_new_tokens=500), cancel)
    got = []
    for token in stream:
        got.append(token)
        if len(got) == 3:
            cancel.set()
    stream.close()
    assert stream.reason == StopReason.CANCELLED
    assert len(got) == 3
    time.sleep(0.05)
    assert threading.active_count() <= before  # no generation thread left running


def test_early_close_by_caller(engine: CT2Engine) -> None:
    before = threading.active_count()
    stream = engine.stream(engine.encode("y"), GenerationParams(max_new_tokens=500))
    next(iter(stream))
    stream.close()
    time.sleep(0.05)
    assert threading.active_count() <= before


def test_time_budget(engine: CT2Engine) -> None:
    params = GenerationParams(max_new_tokens=4000, time_budget_s=0.0)
    stream = engine.stream(engine.encode("z"), params)
    tokens = list(stream)
    assert len(tokens) == 1
    assert stream.reason == StopReason.TIME_BUDGET


def test_corrupt_weights_are_reported(tiny_model: InstalledModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for f in tiny_model.path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    size = (tmp_path / "model.bin").stat().st_size
    (tmp_path / "model.bin").write_bytes(b"\x00" * size)  # same size, garbage content
    broken = InstalledModel(tmp_path, tiny_model.manifest)
    with pytest.raises(ModelCorruptError, match="cannot load the model"):
        CT2Engine(broken)


def test_static_prompt_cache_is_bounded(tiny_model: InstalledModel) -> None:

    heads = ("import os\n", "import sys\n", "import os\n", "import re\n")
    probe = CT2Engine(tiny_model, EngineOptions(warmup=False))
    room_for_two = len(probe.encode(heads[0])) + len(probe.encode(heads[1]))
    engine = CT2Engine(tiny_model, EngineOptions(prompt_cache_tokens=room_for_two, warmup=False))
    params = GenerationParams(max_new_tokens=4)
    for head in heads:
        ids = engine.encode(head) + engine.encode("x = ")
        out = list(engine.stream(ids, params, static_len=len(engine.encode(head))))
        assert 1 <= len(out) <= 4
    assert engine.cache_resets == 1  # the third distinct head reloaded the model


def test_abandoned_stream_does_not_abort_the_process(tiny_model: InstalledModel) -> None:
    import subprocess
    import sys

    code = (
        "from completion.models.store import verify\n"
        "from completion.engines.interface import GenerationParams\n"
        "from completion.engines.ct2 import load_engine\n"
        f"e = load_engine(verify(__import__('pathlib').Path({str(tiny_model.path)!r})))\n"
        "s = e.stream(e.encode('x'), GenerationParams(max_new_tokens=500, time_budget_s=None))\n"
        "it = iter(s); next(it); next(it)\n"  # never closed by the caller
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]


def test_a_cached_head_never_leaks_into_another_prompt(tiny_model: InstalledModel) -> None:
    """Edits above the cursor, a changed suffix, another file: the same answer as cache-off."""
    from completion.options import CompletionOptions
    from completion.pipeline import CompletionRequest, complete

    engine = CT2Engine(tiny_model, EngineOptions(warmup=False, prompt_cache_tokens=600))
    body = "".join(f"    v{i} = {i}\n" for i in range(12))
    base = f"def f(a):\n{body}    return \n\nprint(f(1))\n"
    cursor = base.index("return ") + 7
    edited = base.replace("v3 = 3", "v3 = 33")  # above the cursor, inside the cached head
    other_suffix = base.replace("print(f(1))", "print(f(2))")
    requests = [
        CompletionRequest(base, cursor),
        CompletionRequest(base[:cursor] + "a" + base[cursor:], cursor + 1),  # typed forward
        CompletionRequest(edited, cursor + 1),
        CompletionRequest(other_suffix, cursor),
        CompletionRequest("import os\n\n" + base, cursor + 11, path="/ws/other.py"),
        CompletionRequest(base, cursor),  # back to the first: its head is cached
    ]
    on = CompletionOptions(
        trigger=TriggerOptions(multiline=False), prompt_cache=True, max_new_tokens=6
    )
    off = CompletionOptions(
        trigger=TriggerOptions(multiline=False), prompt_cache=False, max_new_tokens=6
    )
    reused = []
    for request in requests:
        cached = complete(engine, request, on)
        assert cached.raw == complete(engine, request, off).raw, request.text
        reused.append(cached.reused_tokens)
    assert reused[0] == 0
    assert reused[1] > 0  # the cache did serve
    assert reused[-1] > 0
    assert reused[2] == 0  # a changed head is computed afresh
    assert reused[3] == 0


def test_a_failed_cache_reload_leaves_the_engine_answering(tiny_model: InstalledModel) -> None:
    engine = CT2Engine(tiny_model, EngineOptions(warmup=False, prompt_cache_tokens=8))
    params = GenerationParams(max_new_tokens=3)

    class FailingReload:
        """The real generator, whose reload fails half way (after freeing the model)."""

        def __init__(self, generator: object) -> None:
            self.generator = generator

        def __getattr__(self, name: str) -> object:
            return getattr(self.generator, name)

        def unload_model(self) -> None:
            self.generator.unload_model()  # type: ignore[attr-defined]
            raise RuntimeError("out of memory")

    engine._generator = FailingReload(engine._generator)
    for head in ("import os\n", "import sys\n", "import re\n"):
        ids = engine.encode(head) + engine.encode("x = ")
        stream = engine.stream(ids, params, static_len=len(engine.encode(head)))
        assert 1 <= len(list(stream)) <= 3  # answered, with the cache or without it
    assert engine.cache_failed
    assert stream.reused_tokens == 0


def test_a_head_that_is_the_whole_prompt_still_answers(tiny_model: InstalledModel) -> None:
    """A cursor at the start of a checkpoint line leaves no tail after the cached head.

    CTranslate2 given a static prompt and no token after it ends at once: the real model
    answered nothing on 4 of 40 single-line holes. The engine keeps one token outside.
    """
    engine = load_engine(tiny_model, EngineOptions(warmup=False))
    ids = engine.encode("def add(a, b):\n    return a + b\n\nclass Point:\n    ")
    params = GenerationParams(max_new_tokens=8, time_budget_s=None)
    uncached = list(engine.stream(ids, params))
    assert uncached
    for _ in range(2):  # the head computed, then reused
        assert list(engine.stream(ids, params, static_len=len(ids))) == uncached


def test_every_token_comes_with_its_log_prob(engine: CT2Engine) -> None:
    """The stream and the batch both carry one log-prob per token (the gate's evidence)."""
    stream = engine.stream(engine.encode("def f(x):\n    return"), GenerationParams(8))
    ids = list(stream)
    stream.close()
    assert len(stream.log_probs) == len(ids) > 0
    assert all(-100 < p <= 0 for p in stream.log_probs)
    greedy = engine.sample(engine.encode("def f(x):\n    return"), GenerationParams(8), n=1)
    hyp = greedy.hypotheses[0]
    assert hyp.ids == ids[: len(hyp.ids)]
    assert len(hyp.log_probs) == len(hyp.ids)
    assert list(hyp.log_probs) == pytest.approx(stream.log_probs[: len(hyp.ids)], abs=1e-3)
