"""The server's request flow on a FakeEngine: cache, type-through, reuse, supersede, cancel."""

import asyncio
import time
from concurrent.futures import Future

import pytest

from completion.engine import Engine, FakeEngine
from lsp_server.completer import Completer, Snapshot
from lsp_server.config import ServerConfig

TEXT = "def add(a, b):\n    return \n"
CURSOR = TEXT.index("return ") + 7


def ready(engine: Engine) -> Future[Engine]:
    f: Future[Engine] = Future()
    f.set_result(engine)
    return f


def snap(text: str = TEXT, offset: int = CURSOR) -> Snapshot:
    return Snapshot("file:///a.py", text, offset, "python")


async def test_cache_and_type_through_skip_the_model() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0))
    first = await completer.complete(snap(), ready(engine))
    assert (first.text, first.source) == ("a + b", "model")
    again = await completer.complete(snap(), ready(engine))
    assert (again.text, again.source) == ("a + b", "cache")
    typed = TEXT[:CURSOR] + "a +" + TEXT[CURSOR:]
    through = await completer.complete(snap(typed, CURSOR + 3), ready(engine))
    assert (through.text, through.source) == (" b", "cache")
    assert len(engine.prompts) == 1


async def test_in_flight_generation_is_reused_when_typing_matches() -> None:
    engine = FakeEngine(default="a + b\n", step_delay_s=0.05)
    completer = Completer(ServerConfig(debounce_ms=0))
    first = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.05)
    typed = TEXT[:CURSOR] + "a" + TEXT[CURSOR:]
    second = await completer.complete(snap(typed, CURSOR + 1), ready(engine))
    assert (second.text, second.source) == (" + b", "reused")
    assert (await first).text == "a + b"
    assert len(engine.prompts) == 1


async def test_newer_request_supersedes_during_debounce() -> None:
    engine = FakeEngine(default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=50))
    typed = TEXT[:CURSOR] + "z" + TEXT[CURSOR:]
    old = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.01)
    new = await completer.complete(snap(typed, CURSOR + 1), ready(engine))
    assert (await old).source == "superseded"
    assert new.source == "model"
    assert len(engine.prompts) == 1


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
    assert ahead.text == "def add(a, b):\n    return a + b\n    \n"
    assert ahead.offset == len("def add(a, b):\n    return a + b\n    ")
    header = "def add(a, b):\n"
    deeper = next_line_snapshot(snap(header, len(header) - 1), "")
    assert deeper is not None and deeper.text == "def add(a, b):\n    \n"
    assert next_line_snapshot(snap(), "a +\nb") is None  # a multi-line suggestion
    assert next_line_snapshot(snap(TEXT, CURSOR - 3), "") is None  # mid-line
    assert next_line_snapshot(snap("\n", 0), "") is None  # an empty line


async def test_prefetch_answers_the_next_line_without_waiting() -> None:
    engine = FakeEngine(script={"return a + b\n": "print(1)\n"}, default="a + b\n")
    completer = Completer(ServerConfig(debounce_ms=0))
    first = await completer.complete(snap(), ready(engine))
    assert first.text == "a + b"
    await asyncio.sleep(0.1)  # the user reads the suggestion; the prefetch runs meanwhile
    accepted = TEXT[:CURSOR] + "a + b\n    " + TEXT[CURSOR:]
    nxt = await completer.complete(snap(accepted, CURSOR + 10), ready(engine))
    assert (nxt.text, nxt.source) == ("print(1)", "cache")
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
    assert (nxt.text, nxt.source) == ("print(1)", "reused")
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
    assert len(engine.prompts) == 1 and not completer._prefetches


async def test_a_request_in_another_document_supersedes_the_one_in_flight() -> None:
    engine = FakeEngine(default="a + b" * 200 + "\n", step_delay_s=0.002)
    completer = Completer(ServerConfig(debounce_ms=0, prefetch=False))
    old = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.05)
    other = Snapshot("file:///b.py", TEXT, CURSOR, "python")
    started = time.monotonic()
    new = await completer.complete(other, ready(engine))
    assert (await old).source == "cancelled"
    assert new.source == "model" and time.monotonic() - started < 1.5


async def test_the_time_budget_counts_from_the_requests_arrival() -> None:
    """A request queued behind a long generation gets only what is left of its budget."""
    engine = FakeEngine(default="a + b\n", prompt_delay_s=0.3)
    completer = Completer(ServerConfig(debounce_ms=0, time_budget_ms=200, prefetch=False))
    completer.generation_lock.acquire()  # another generation holds the engine
    waiting = asyncio.ensure_future(completer.complete(snap(), ready(engine)))
    await asyncio.sleep(0.3)
    completer.generation_lock.release()
    late = await waiting
    assert late.text == "" and late.source == "model" and late.stop_reason == "time_budget"
    assert engine.prompts == []  # past its budget before it started: the model never ran
    engine.prompt_delay_s = 0.0
    again = await completer.complete(snap(), ready(engine))  # not cached: asked again
    assert (again.text, again.source) == ("a + b", "model")
