"""The server's request flow on a FakeEngine: cache, type-through, reuse, supersede, cancel."""

import asyncio
import time
from concurrent.futures import Future
from typing import Any

import pytest

from completion import gate
from completion.engines.fake import FakeEngine
from completion.engines.interface import Engine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, CompletionResult
from lsp_server import completer as completer_module
from lsp_server.cache import CursorKey
from lsp_server.completer import Completer, Snapshot, completion_options
from lsp_server.config import ServerConfig

TEXT = "def add(a, b):\n    return \n"
CURSOR = TEXT.index("return ") + 7


def ready(engine: Engine) -> Future[Engine]:
    f: Future[Engine] = Future()
    f.set_result(engine)
    return f


async def settled(completer: Completer) -> None:
    """Wait until no generation is in flight (a block's rest may still be written)."""
    for _ in range(500):
        if not completer._in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a generation is still in flight")


def snap(text: str = TEXT, offset: int = CURSOR) -> Snapshot:
    return Snapshot("file:///a.py", CompletionRequest(text, offset, "python"))


async def test_cache_and_type_through_skip_the_model() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    first = await completer.complete(snap(), ready(engine))
    assert (first.result.text, first.source) == ("a + b", "model")
    await settled(completer)  # the rest of the generation (nothing more) lands
    again = await completer.complete(snap(), ready(engine))
    assert (again.result.text, again.source) == ("a + b", "cache")
    typed = TEXT[:CURSOR] + "a +" + TEXT[CURSOR:]
    through = await completer.complete(snap(typed, CURSOR + 3), ready(engine))
    assert (through.result.text, through.source) == (" b", "typethrough")
    assert len(engine.prompts) == 1


async def test_in_flight_generation_is_reused_when_typing_matches() -> None:
    engine = FakeEngine(default="a + b\n", step_delay_s=0.05)
    completer = Completer(ServerConfig(debounce_ms=0))
    first = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.05)
    typed = TEXT[:CURSOR] + "a" + TEXT[CURSOR:]
    second = await completer.complete(snap(typed, CURSOR + 1), ready(engine))
    assert (second.result.text, second.source) == (" + b", "reused")
    assert (await first).result.text == "a + b"
    assert len(engine.prompts) == 1


async def test_in_a_burst_a_newer_request_supersedes_during_debounce() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=50, prefetch=False))
    await completer.complete(snap(), ready(engine))  # the burst's first: not debounced
    typed = TEXT[:CURSOR] + "z" + TEXT[CURSOR:]
    old = asyncio.ensure_future(completer.complete(snap(typed, CURSOR + 1), ready(engine)))
    await asyncio.sleep(0.01)
    typed = TEXT[:CURSOR] + "zz" + TEXT[CURSOR:]
    new = await completer.complete(snap(typed, CURSOR + 2), ready(engine))
    assert (await old).source == "superseded"
    assert new.source == "model"
    assert len(engine.prompts) == 2


async def test_a_request_after_a_quiet_spell_is_not_debounced() -> None:
    """A client that debounces itself (or a user's pause) is not made to wait again."""
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=5000, prefetch=False))
    first = await asyncio.wait_for(completer.complete(snap(), ready(engine)), 2)
    assert first.source == "model"
    assert first.result.timings_ms["wait"] < 1000


async def test_cancel_stops_generation_within_a_step() -> None:
    engine = FakeEngine(default="x" * 10_000, step_delay_s=0.005)
    completer = Completer(ServerConfig(debounce_ms=0, max_tokens=10_000, time_budget_ms=60_000))
    task = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    t0 = time.monotonic()
    produced = engine.produced_tokens
    await asyncio.sleep(0.1)
    assert engine.produced_tokens <= produced + 1  # the worker stopped within one step
    assert time.monotonic() - t0 < 1
    assert not completer.generation_lock.locked()


async def test_disabled_language_and_binary_text() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(languages={"python": False}))
    assert (await completer.complete(snap(), ready(engine))).source == "disabled"
    completer = Completer(ServerConfig())
    assert (await completer.complete(snap("a\x00b", 1), ready(engine))).source == "binary"


def test_next_line_snapshot_guesses_the_editor_after_accept_and_enter() -> None:
    from lsp_server.completer import next_line_snapshot

    ahead = next_line_snapshot(snap(), "a + b")
    assert ahead is not None
    assert ahead.request.text == "def add(a, b):\n    return a + b\n    \n"
    assert ahead.request.offset == len("def add(a, b):\n    return a + b\n    ")
    header = "def add(a, b):\n"
    deeper = next_line_snapshot(snap(header, len(header) - 1), "")
    assert deeper is not None
    assert deeper.request.text == "def add(a, b):\n    \n"
    assert next_line_snapshot(snap(), "a +\nb") is None  # a multi-line suggestion
    assert next_line_snapshot(snap(TEXT, CURSOR - 3), "") is None  # mid-line
    assert next_line_snapshot(snap("\n", 0), "") is None  # an empty line


async def test_prefetch_answers_the_next_line_without_waiting() -> None:
    engine = FakeEngine(script={"return a + b\n": "print(1)\n"}, default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0))
    first = await completer.complete(snap(), ready(engine))
    assert first.result.text == "a + b"
    await asyncio.sleep(0.1)  # the user reads the suggestion; the prefetch runs meanwhile
    accepted = TEXT[:CURSOR] + "a + b\n    " + TEXT[CURSOR:]
    nxt = await completer.complete(snap(accepted, CURSOR + 10), ready(engine))
    assert (nxt.result.text, nxt.source) == ("print(1)", "prefetch")
    assert completer.sources["prefetch_model"] >= 1


async def test_prefetch_in_flight_is_reused_or_superseded() -> None:
    engine = FakeEngine(script={"return a + b\n": "print(1)\n"}, default="a + b\n")
    engine.step_delay_s = 0.02
    completer = Completer(ServerConfig(debounce_ms=0))
    await completer.complete(snap(), ready(engine))
    await asyncio.sleep(0.01)  # the prefetch starts
    accepted = TEXT[:CURSOR] + "a + b\n    " + TEXT[CURSOR:]
    # asked while the prefetch is still generating: its answer is awaited
    nxt = await completer.complete(snap(accepted, CURSOR + 10), ready(engine))
    assert (nxt.result.text, nxt.source) == ("print(1)", "reused")
    # the user typed something else while a prefetch ran: it is cancelled, the request served
    await asyncio.sleep(0.01)  # the prefetch after that answer starts
    assert completer._prefetches
    elsewhere = TEXT[:CURSOR] + "a - b" + TEXT[CURSOR:]
    answer = await completer.complete(snap(elsewhere, CURSOR + 5), ready(engine))
    assert answer.source == "model"
    await asyncio.sleep(0.05)
    assert completer.sources["prefetch_cancelled"] >= 1


async def test_prefetch_can_be_switched_off() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    await completer.complete(snap(), ready(engine))
    await asyncio.sleep(0.1)
    assert len(engine.prompts) == 1
    assert not completer._prefetches


async def test_a_request_in_another_document_supersedes_the_one_in_flight() -> None:
    engine = FakeEngine(default="a + b" * 200 + "\n", step_delay_s=0.002)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    old = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.05)
    other = Snapshot("file:///b.py", CompletionRequest(TEXT, CURSOR, "python"))
    started = time.monotonic()
    new = await completer.complete(other, ready(engine))
    assert (await old).source == "cancelled"
    assert new.source == "model"
    assert time.monotonic() - started < 1.5


async def test_the_time_budget_counts_from_the_requests_arrival() -> None:
    """A request queued behind a long generation gets only what is left of its budget."""
    engine = FakeEngine(default="a + b\n", prompt_delay_s=0.3)
    completer = Completer(ServerConfig(debounce_ms=0, time_budget_ms=200, prefetch=False))
    completer.generation_lock.acquire()  # another generation holds the engine
    waiting = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.3)
    completer.generation_lock.release()
    late = await waiting
    assert late.result.text == ""
    assert late.source == "model"
    assert late.result.stop_reason == "time_budget"
    assert engine.prompts == []  # past its budget before it started: the model never ran
    engine.prompt_delay_s = 0.0
    again = await completer.complete(snap(), ready(engine))  # not cached: asked again
    assert (again.result.text, again.source) == ("a + b", "model")


BLOCK_DOC = "def f(n):\n    \n\nprint(f(1))\n"
BLOCK_CURSOR = BLOCK_DOC.index("    \n") + 4


async def test_a_blocks_first_line_is_shown_before_the_rest_is_written() -> None:
    """Accepting the first line finds the rest of the block, from the same generation."""
    block = "total = 0\n    for i in range(n):\n        total += i\n    return total\n"
    engine = FakeEngine(default=block, step_delay_s=0.02)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    started = time.monotonic()
    first = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    waited = time.monotonic() - started
    assert (first.result.text, first.result.stop_reason) == ("total = 0", "first_line")
    assert waited < 0.02 * len(block) / 2  # well before the block's end
    accepted = BLOCK_DOC[:BLOCK_CURSOR] + "total = 0" + BLOCK_DOC[BLOCK_CURSOR:]
    rest = await completer.complete(snap(accepted, BLOCK_CURSOR + 9), ready(engine))
    assert rest.source == "reused"
    assert rest.result.text == "\n    for i in range(n):\n        total += i\n    return total"
    again = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    assert (again.source, again.result.text) == ("cache", block.rstrip("\n"))
    assert len(engine.prompts) == 1


LINE_END_DOC = "def f(n):\n    total = 0\n\nprint(f(1))\n"
LINE_END_CURSOR = LINE_END_DOC.index("total = 0") + len("total = 0")


async def test_at_a_lines_end_the_first_line_below_is_shown_before_the_block() -> None:
    """A block that starts on the next line shows that line early, break included."""
    block = "\n    total += n\n    for i in range(n):\n        total += i\n    return total\n"
    engine = FakeEngine(default=block, step_delay_s=0.02)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    started = time.monotonic()
    first = await completer.complete(snap(LINE_END_DOC, LINE_END_CURSOR), ready(engine))
    waited = time.monotonic() - started
    assert (first.result.text, first.result.stop_reason) == ("\n    total += n", "first_line")
    assert waited < 0.02 * len(block)  # well before the block's end
    await settled(completer)
    whole = await completer.complete(snap(LINE_END_DOC, LINE_END_CURSOR), ready(engine))
    assert whole.source == "cache"
    assert whole.result.text.startswith("\n    total += n\n    for i in range(n):")
    assert len(engine.prompts) == 1


async def test_at_a_lines_end_a_header_below_is_shown_early_too() -> None:
    engine = FakeEngine(default="\n    if n < 0:\n        return 0\n\n", step_delay_s=0.01)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    shown = await completer.complete(snap(LINE_END_DOC, LINE_END_CURSOR), ready(engine))
    assert (shown.result.text, shown.result.stop_reason) == ("\n    if n < 0:", "first_line")
    await settled(completer)
    whole = await completer.complete(snap(LINE_END_DOC, LINE_END_CURSOR), ready(engine))
    assert whole.result.text == "\n    if n < 0:\n        return 0"


async def test_a_header_is_shown_early_and_its_body_follows() -> None:
    """The first grey line under a docstring comes with the header, not after the block."""
    engine = FakeEngine(default="if n < 0:\n        return 0\n    return n\n", step_delay_s=0.01)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    shown = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    assert (shown.result.text, shown.result.stop_reason) == ("if n < 0:", "first_line")
    accepted = BLOCK_DOC[:BLOCK_CURSOR] + "if n < 0:" + BLOCK_DOC[BLOCK_CURSOR:]
    rest = await completer.complete(snap(accepted, BLOCK_CURSOR + 9), ready(engine))
    assert rest.source in ("reused", "typethrough")
    assert rest.result.text == "\n        return 0\n    return n"


async def test_typing_elsewhere_stops_the_rest_of_a_block() -> None:
    engine = FakeEngine(default="x = 1\n" + "    y = 2\n" * 300, step_delay_s=0.005)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    first = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    assert first.result.text == "x = 1"
    moved = await completer.complete(snap(), ready(engine))  # another line: a new request
    assert moved.source == "model"
    assert engine.produced_tokens < len("    y = 2\n") * 300  # the block's rest was stopped
    assert completer.cache.get(CursorKey.at("file:///a.py", BLOCK_DOC, BLOCK_CURSOR)) is None


async def test_shutdown_stops_the_rest_of_a_block_and_its_prefetch() -> None:
    """The client exits while a block's rest is written: nothing goes on generating."""
    engine = FakeEngine(default="x = 1\n" + "    y = 2\n" * 300, step_delay_s=0.005)
    completer = Completer(ServerConfig(debounce_ms=0))
    first = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    assert first.result.text == "x = 1"
    completer.close()
    await settled(completer)  # within a few decode steps, not the 3,000 tokens left
    assert engine.produced_tokens < len("    y = 2\n") * 300
    after = await completer.complete(snap(), ready(engine))
    assert after.source == "cancelled"


UNSURE = -6.0  # every token's log-prob (p < 0.003): an answer the gate hides at any point


def test_completion_options_carry_the_gate_and_the_users_shift() -> None:
    default = completion_options(ServerConfig())
    assert (default.gate, default.gate_shift) == (gate.DEFAULT_POINT, 0.0)
    quiet = completion_options(ServerConfig(gate="quiet"), 0.1)
    assert (quiet.gate, quiet.gate_shift) == ("quiet", 0.1)


async def test_the_users_record_in_a_language_moves_its_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipeline gets `user_shift` of the request's language's accepts and rejects."""
    record = {"python": (2, 40), "rust": (1, 1)}
    used: list[CompletionOptions] = []
    pipeline = completer_module.complete

    def spy(
        engine: Engine, request: CompletionRequest, options: CompletionOptions, *rest: Any
    ) -> CompletionResult:
        used.append(options)
        return pipeline(engine, request, options, *rest)

    monkeypatch.setattr(completer_module, "complete", spy)
    # one line, not a block: the answer is cached before `complete` returns (a block's first
    # line returns early, and its cache entry lands later: a race with the third request)
    completer = Completer(
        ServerConfig(debounce_ms=0, prefetch=False, gate="quiet", multiline=False),
        verdicts=lambda language: record.get(language, (0, 0)),
    )
    engine = FakeEngine(default="a + b\n")
    python = await completer.complete(snap(), ready(engine))
    rust = Snapshot("file:///a.rs", CompletionRequest("fn f() -> i32 {\n    \n}\n", 20, "rust"))
    other = await completer.complete(rust, ready(engine))
    assert 0 < gate.user_shift(2, 40) <= gate.MAX_SHIFT
    assert python.gate_shift == completer.gate_shift("python") == gate.user_shift(2, 40)
    assert other.gate_shift == 0.0  # two verdicts: too few to move it
    assert [(o.gate, o.gate_shift) for o in used] == [("quiet", python.gate_shift), ("quiet", 0)]
    cached = await completer.complete(snap(), ready(engine))
    assert (cached.source, cached.gate_shift) == ("cache", python.gate_shift)


async def test_a_requests_threshold_is_its_engines_runtimes_and_languages() -> None:
    """Reported beside every outcome, a cached one too (which no verdict of its own carries)."""
    completer = Completer(
        ServerConfig(debounce_ms=0, prefetch=False, multiline=False),
        verdicts=lambda language: (2, 40) if language == "python" else (0, 0),
    )
    engine = FakeEngine(default="a + b\n")
    engine.runtime = "ctranslate2"
    shift = completer.gate_shift("python")
    expected = gate.shipped_model("ctranslate2").threshold(gate.DEFAULT_POINT, shift, "python")
    assert expected != gate.shipped_model().threshold(gate.DEFAULT_POINT, shift, "python")
    made = await completer.complete(snap(), ready(engine))
    cached = await completer.complete(snap(), ready(engine))
    assert [made.source, cached.source] == ["model", "cache"]
    assert made.gate_threshold == cached.gate_threshold == expected
    loading: Future[Engine] = Future()  # before the model is loaded: the default parameters
    off = Completer(ServerConfig(debounce_ms=0, prefetch=False, gate="off"))
    disabled = Completer(ServerConfig(debounce_ms=0, prefetch=False, languages={"python": False}))
    unloaded = await disabled.complete(snap(), loading)
    assert unloaded.source == "disabled"
    assert unloaded.gate_threshold == gate.shipped_model().threshold(
        gate.DEFAULT_POINT, 0.0, "python"
    )
    assert (await off.complete(snap(), ready(engine))).gate_threshold is None


async def test_an_answer_the_gate_hides_is_never_served_later() -> None:
    """Not at its cursor from the cache, nor by typing its first characters, nor in flight."""
    engine = FakeEngine(default="a + b\n", log_prob=UNSURE, step_delay_s=0.02)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    first = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.03)
    typed = TEXT[:CURSOR] + "a" + TEXT[CURSOR:]  # typed while the hidden answer is written
    during = await completer.complete(snap(typed, CURSOR + 1), ready(engine))
    hidden = await first
    assert (hidden.source, hidden.result.answer, hidden.result.text) == ("model", "a + b", "")
    assert hidden.result.gated
    assert during.source != "reused"
    assert " + b" not in during.result.text
    await settled(completer)
    again = await completer.complete(snap(), ready(engine))
    assert (again.source, again.result.text) == ("cache", "")  # still hidden; no new generation
    through = await completer.complete(
        snap(TEXT[:CURSOR] + "a +" + TEXT[CURSOR:], CURSOR + 3), ready(engine)
    )
    assert through.source == "model"  # not type-through: the model had to be asked again
    assert through.result.text == ""
    assert completer.cache.hits == 1


async def test_a_block_the_gate_hides_but_its_first_line_keeps_only_that_line() -> None:
    """The first line, sure, is shown at once; the rest, unsure, is never served."""
    first_line = "total = 0"
    block = first_line + "\n    for i in range(n):\n        total += i\n    return total\n"
    engine = FakeEngine(default=block, step_delay_s=0.005)
    engine.log_probs = {"": [-0.01] * (len(first_line) + 1) + [UNSURE]}  # "" is in every prompt
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    shown = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    assert (shown.result.text, shown.result.stop_reason) == (first_line, "first_line")
    await settled(completer)
    again = await completer.complete(snap(BLOCK_DOC, BLOCK_CURSOR), ready(engine))
    assert (again.source, again.result.text) == ("cache", first_line)
    accepted = BLOCK_DOC[:BLOCK_CURSOR] + first_line + BLOCK_DOC[BLOCK_CURSOR:]
    rest = await completer.complete(snap(accepted, BLOCK_CURSOR + len(first_line)), ready(engine))
    assert rest.source == "model"  # neither type-through nor reuse: the rest was hidden
    assert "for i in range(n)" not in rest.result.text


async def test_a_warm_computes_the_prompt_where_the_cursor_rests_and_shows_nothing() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    warmed = await completer.warm(snap(), ready(engine))
    assert warmed is not None
    assert not warmed.cancelled
    assert warmed.prompt_tokens == len(engine.prompts[0])
    assert engine.produced_tokens <= 1  # the prompt pass, not an answer
    assert completer.warms == {"computed": 1}
    assert len(completer.cache) == 0  # nothing to show was made
    # the user types at the cursor: the request's prompt starts with what the warm computed
    typed = TEXT[:CURSOR] + "a" + TEXT[CURSOR:]
    answer = await completer.complete(snap(typed, CURSOR + 1), ready(engine))
    assert answer.source == "model"
    assert engine.prompts[1].startswith(engine.prompts[0][: len(engine.prompts[0]) - 1])


async def test_a_cursor_that_rests_while_the_model_loads_is_warmed_once_it_is_ready() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    loading: Future[Engine] = Future()
    warming = asyncio.ensure_future(completer.warm(snap(), loading))
    await asyncio.sleep(0.05)
    assert not warming.done()
    loading.set_result(engine)
    warmed = await asyncio.wait_for(warming, 5)
    assert warmed is not None
    assert not warmed.cancelled
    assert len(engine.prompts) == 1


async def test_a_keystroke_cancels_the_warm_and_is_answered() -> None:
    engine = FakeEngine(default="a + b\n", prompt_delay_s=0.3)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    warming = asyncio.ensure_future(completer.warm(snap(), ready(engine)))
    await asyncio.sleep(0.05)
    typed = TEXT[:CURSOR] + "a" + TEXT[CURSOR:]
    answer = await completer.complete(snap(typed, CURSOR + 1), ready(engine))
    assert answer.source == "model"
    assert answer.result.text
    warmed = await warming
    assert warmed is not None
    assert warmed.cancelled
    assert completer.warms == {"cancelled": 1}


async def test_no_warm_while_generating_loading_disabled_or_switched_off() -> None:
    engine = FakeEngine(default="a + b" * 50 + "\n", step_delay_s=0.01)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    answering = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.05)
    assert await completer.warm(snap(), ready(engine)) is None  # the request comes first
    await answering
    await settled(completer)
    broken: Future[Engine] = Future()
    broken.set_exception(RuntimeError("no model"))
    assert await completer.warm(snap(), broken) is None
    for config in (ServerConfig(warm=False), ServerConfig(languages={"python": False})):
        assert await Completer(config).warm(snap(), ready(engine)) is None
    assert await completer.warm(snap("a\x00b", 1), ready(engine)) is None
    assert completer.warms == {"skipped": 3}
    assert len(engine.prompts) == 1
