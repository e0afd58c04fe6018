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
