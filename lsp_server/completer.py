"""The server's request flow around the pipeline.

Cache, in-flight reuse, debounce, supersession and cancellation. Protocol-free: it takes
plain snapshots and returns text.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from completion import gate
from completion.engines.interface import Engine
from completion.languages import resolve_language
from completion.lines import opens_indent
from completion.options import CompletionOptions
from completion.pipeline import (
    CompletionRequest,
    CompletionResult,
    OnFirstLine,
    Warmed,
    complete,
    warm,
)
from completion.stops import StopReason
from lsp_server.cache import CompletionCache, CursorKey, typed_since
from lsp_server.config import ServerConfig

log = logging.getLogger("offpilot.completer")


@dataclass(frozen=True)
class Snapshot:
    """The pipeline's request, and the document it came from (the cache's and reuse's key)."""

    uri: str
    request: CompletionRequest


class Source(StrEnum):
    """How a request was answered: every value a trace's `source` or a log line can take."""

    MODEL = "model"  # generated for this request (or its block's first line, shown early)
    CACHE = "cache"  # the cache held the answer at this cursor
    TYPETHROUGH = "typethrough"  # the user typed into a cached answer: its rest
    PREFETCH = "prefetch"  # computed ahead (the next line) before anyone asked
    REUSED = "reused"  # the generation in flight for an earlier keystroke, still matching
    SUPERSEDED = "superseded"  # a newer request came during the debounce or the load
    SKIPPED = "skipped"  # a prefetch that gave way to a real request
    DISABLED = "disabled"  # off for this language (or altogether)
    BINARY = "binary"  # the text around the cursor holds NUL bytes
    CANCELLED = "cancelled"  # $/cancelRequest, a newer request, or shutdown
    ERROR = "error"  # the pipeline raised (logged)
    NOT_OPEN = "not_open"  # the document was never opened
    NO_MODEL = "no_model"  # the model is missing or broken


_T = TypeVar("_T")
NO_RESULT = CompletionResult("", "")
# gets a block's rest once written: request id, uri, result, ms since arrival, gate threshold
OnBlock = Callable[[int | str | None, str, CompletionResult, float, float | None], None]
# A request this soon after the one before is part of a burst (an editor that asks at every
# keystroke): only then does the server debounce. One after a quiet spell (a client that
# debounces itself, a user who paused) starts at once: the replay's pauses waited 41 ms
# each for nothing (docs/latency.md).
BURST_S = 0.25
# answers that may be on screen: after one at a line's end, the next line is prefetched
SHOWN = frozenset({Source.MODEL, Source.CACHE, Source.TYPETHROUGH, Source.PREFETCH, Source.REUSED})


@dataclass(frozen=True)
class Outcome:
    """The pipeline's result for a request (what to show) and how it was served."""

    source: Source
    result: CompletionResult = NO_RESULT
    # how far the user's own record moved the gate's threshold for this request's language
    # (`Completer.gate_shift`); None: the request never reached the completer
    gate_shift: float | None = None
    # the least score shown for this request (`Completer.gate_threshold`): the one an answer
    # was or would have been judged by; None: the gate is off, or never reached
    gate_threshold: float | None = None

    @classmethod
    def served(cls, source: Source, text: str, timings_ms: dict[str, float]) -> Outcome:
        """An answer that needed no generation of its own (cache, reuse): shown as it was."""
        return cls(source, CompletionResult(text, "", timings_ms=timings_ms, answer=text))


@dataclass
class _InFlight:
    key: CursorKey
    cancel: threading.Event
    result: asyncio.Future[CompletionResult]


def next_line_snapshot(snap: Snapshot, shown: str) -> Snapshot | None:
    """The document after the user accepts `shown` at the end of a line and presses Enter.

    The editor's auto-indent is guessed: the line's indentation, one level deeper after a
    line that opens a block or a bracket. None when the cursor is not at a line's end or the
    suggestion spans lines.
    """
    text, offset = snap.request.text, snap.request.offset
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    if text[offset:end].strip() or "\n" in shown:
        return None
    line = text[text.rfind("\n", 0, offset) + 1 : offset] + shown
    if not line.strip():
        return None
    indent = line[: len(line) - len(line.lstrip())]
    if opens_indent(line, resolve_language(snap.request.language, snap.request.path)):
        indent += "\t" if indent.startswith("\t") else "    "
    inserted = shown + "\n" + indent
    ahead = dataclasses.replace(
        snap.request, text=text[:offset] + inserted + text[offset:], offset=offset + len(inserted)
    )
    return dataclasses.replace(snap, request=ahead)


def binary_near_cursor(request: CompletionRequest) -> bool:
    """Whether the text around the cursor holds NUL bytes (a binary file: nothing to complete)."""
    return "\x00" in request.text[max(0, request.offset - 4096) : request.offset + 4096]


def completion_options(config: ServerConfig, gate_shift: float = 0.0) -> CompletionOptions:
    """Pipeline options from the user's settings, the gate's threshold moved by `gate_shift`."""
    return CompletionOptions(
        max_new_tokens=config.max_tokens,
        time_budget_s=config.time_budget_ms / 1000,
        prefix_tokens=config.prefix_tokens,
        suffix_tokens=config.suffix_tokens,
        prompt_cache=config.prompt_cache,
        trigger=dataclasses.replace(CompletionOptions.trigger, multiline=config.multiline),
        crossfile=config.crossfile,
        imports=config.crossfile,
        gate=config.gate,
        gate_shift=gate_shift,
    )


def format_stages(timings_ms: dict[str, float]) -> str:
    """`name=12ms ...`: the one log format of stage timings, for people.

    Programs read the same figures from the trace records (lsp_server/trace.py).
    """
    return " ".join(f"{k}={v:.0f}ms" for k, v in timings_ms.items())


def _settle(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


class Completer:
    """Serves completions for many documents from one engine, one generation at a time."""

    def __init__(
        self,
        config: ServerConfig,
        on_busy: Callable[[bool], None] | None = None,
        on_block: OnBlock | None = None,
        verdicts: Callable[[str], tuple[int, int]] | None = None,
    ) -> None:
        self.config = config
        self.cache = CompletionCache()
        self.generation_lock = threading.Lock()
        self._in_flight: dict[str, _InFlight] = {}
        self._latest = 0  # the newest request's number: it supersedes all older ones
        self._last_arrival = -BURST_S  # when the newest request came (monotonic seconds)
        self._seq = itertools.count(1)
        self._on_busy = on_busy or (lambda _busy: None)
        self._on_block = on_block or (
            lambda _id, _uri, _result, _ms, _threshold: None
        )  # on the loop
        # a language's (accepted, rejected) by this user, from memory (StatsWriter.verdicts)
        self._verdicts = verdicts or (lambda _language: (0, 0))
        self.sources: Counter[str] = Counter()  # how requests were answered
        self._prefetches: set[asyncio.Future[None]] = set()
        self._warming: threading.Event | None = None  # the cancel flag of the warm running
        self.warms: Counter[str] = Counter()  # how cursor rests were taken (`warm`)
        self.closed = False  # `close`: the server is shutting down; nothing new starts

    def gate_shift(self, language: str) -> float:
        """How far this user's accepts and rejects in `language` move the gate's threshold."""
        return gate.user_shift(*self._verdicts(language))

    def gate_threshold(self, runtime: str, language: str, shift: float) -> float | None:
        """The least score shown in `language`, the user's `shift` applied; None: gate off.

        The parameters are the engine's `runtime`'s (gate.shipped_model): "" before the model
        is loaded gives the default engine's.
        """
        return gate.shipped_model(runtime).threshold(self.config.gate, shift, language)

    def _run(
        self,
        engine: Engine,
        request: CompletionRequest,
        cancel: threading.Event,
        arrived: float,
        on_first_line: OnFirstLine | None = None,
        gate_shift: float = 0.0,
        waits: dict[str, float] | None = None,
    ) -> CompletionResult:
        """Generate under the engine's lock; `waits` gets what was waited before it started."""
        queued = time.monotonic()
        with self.generation_lock:
            started = time.monotonic()
            # what the user waited before the pipeline started: the server's debounce (and a
            # model load) before `queued`, another generation holding the engine after it
            waited = {"wait": (queued - arrived) * 1000, "queue": (started - queued) * 1000}
            if waits is not None:
                waits.update(waited)
            if cancel.is_set() or self.closed:
                return CompletionResult("", "cancelled", timings_ms=waited)
            options = completion_options(self.config, gate_shift)
            # the time budget counts from the request's arrival: debounce and queueing included
            left = options.time_budget_s - (started - arrived)
            if left <= 0:
                return CompletionResult("", StopReason.TIME_BUDGET, timings_ms=waited)
            self._on_busy(True)
            try:
                result = complete(
                    engine,
                    request,
                    dataclasses.replace(options, time_budget_s=left),
                    cancel,
                    on_first_line,
                )
            finally:
                self._on_busy(False)
            return dataclasses.replace(result, timings_ms=waited | result.timings_ms)

    async def complete(
        self, snap: Snapshot, engine_future: Future[Engine], request_id: int | str | None = None
    ) -> Outcome:
        """The completion to show at a cursor, or an empty outcome.

        `request_id` only labels the trace record of a block's rest (`on_trace`).
        """
        try:
            outcome = await self._complete(snap, engine_future, request_id=request_id)
        except asyncio.CancelledError:
            self.sources["cancelled"] += 1
            raise
        self.sources[outcome.source] += 1
        wanted = self.config.prefetch and self.config.cache and not self.closed
        if wanted and outcome.source in SHOWN:
            ahead = next_line_snapshot(snap, outcome.result.text)
            if ahead is not None:
                task = asyncio.ensure_future(self._prefetch(ahead, engine_future))
                self._prefetches.add(task)
                task.add_done_callback(self._prefetches.discard)
        return outcome

    async def _prefetch(self, snap: Snapshot, engine_future: Future[Engine]) -> None:
        """Compute and cache the completion at `snap` before anyone asks for it.

        It runs like a request without debounce: a real request at the same cursor reuses it
        while it runs, and one anywhere else in the document supersedes it.
        """
        flight = self._in_flight.get(snap.uri)
        if flight is not None:  # the rest of a block being written may hold the next line
            with contextlib.suppress(Exception):
                await asyncio.shield(flight.result)
        key = CursorKey.at(snap.uri, snap.request.text, snap.request.offset)
        if self.cache.get(key) is not None:
            return
        try:
            outcome = await self._complete(snap, engine_future, speculative=True)
        except Exception:  # a speculative request must never disturb the real ones
            log.exception("prefetch failed")
            return
        self.sources["prefetch_" + outcome.source] += 1

    async def warm(self, snap: Snapshot, engine_future: Future[Engine]) -> Warmed | None:
        """Compute the prompt where the cursor rests, before a keystroke there asks for it.

        A client says where the cursor came to rest (`offpilot/cursorRested`); the first
        request in a place otherwise computes its whole prompt while the user waits. Real
        requests come first: a warm starts only when nothing is generating, and any request
        cancels it (within one prompt chunk, what was computed stays). None: not started.
        """
        request = snap.request
        if (
            self.closed
            or not self.config.warm
            or not self.config.language_enabled(request.language)
            or engine_future.cancelled()
            or self._in_flight
            or binary_near_cursor(request)
        ):
            self.warms["skipped"] += 1
            return None
        if self._warming is not None:  # the cursor moved on: the place it left is not wanted
            self._warming.set()
        cancel = threading.Event()
        self._warming = cancel
        try:
            try:  # a cursor that rests while the model loads is warmed once it is ready
                engine = await asyncio.wrap_future(engine_future)
            except Exception:  # no model: the requests report it
                self.warms["skipped"] += 1
                return None
            options = completion_options(self.config, self.gate_shift(request.language))

            def run() -> Warmed | None:
                with self.generation_lock:
                    if cancel.is_set() or self.closed:
                        return None
                    return warm(engine, request, options, cancel)

            warmed = await asyncio.get_running_loop().run_in_executor(None, run)
        finally:
            if self._warming is cancel:
                self._warming = None
        self.warms["cancelled" if warmed is None or warmed.cancelled else "computed"] += 1
        return warmed

    async def _complete(
        self,
        snap: Snapshot,
        engine_future: Future[Engine],
        speculative: bool = False,
        request_id: int | str | None = None,
    ) -> Outcome:
        """`_answer`, with the gate shift it applied (read once, for the trace to report)."""
        language = snap.request.language
        shift = self.gate_shift(language)
        outcome = await self._answer(snap, engine_future, shift, speculative, request_id)
        loaded = engine_future.done() and not engine_future.cancelled()
        runtime = engine_future.result().runtime if loaded and not engine_future.exception() else ""
        threshold = self.gate_threshold(runtime, language, shift)
        return dataclasses.replace(outcome, gate_shift=shift, gate_threshold=threshold)

    async def _answer(
        self,
        snap: Snapshot,
        engine_future: Future[Engine],
        gate_shift: float,
        speculative: bool,
        request_id: int | str | None,
    ) -> Outcome:
        request = snap.request
        if self.closed:
            return Outcome(Source.CANCELLED)
        if not self.config.language_enabled(request.language):
            return Outcome(Source.DISABLED)
        if binary_near_cursor(request):
            return Outcome(Source.BINARY)
        key = CursorKey.at(snap.uri, request.text, request.offset)
        t0 = time.monotonic()
        cached = self.cache.get(key) if self.config.cache else None
        if cached is not None:
            waited = {"total": (time.monotonic() - t0) * 1000}
            return Outcome.served(Source(self.cache.last_hit), cached, waited)

        if not speculative:  # a prefetch supersedes nothing and is not debounced
            if self._warming is not None:  # the user is typing: the request computes on
                self._warming.set()
            seq = next(self._seq)
            self._latest = seq
            burst = t0 - self._last_arrival < BURST_S
            self._last_arrival = t0
            reused = await self._reuse_in_flight(key) if self.config.cache else None
            if reused is not None:
                return reused
            if self.config.debounce_ms and burst:
                await asyncio.sleep(self.config.debounce_ms / 1000)
                if self._latest != seq:
                    return Outcome(Source.SUPERSEDED)
        loading = not engine_future.done()
        engine = await asyncio.wrap_future(engine_future)
        if loading:  # the load is no part of the wait the time budget bounds
            if not speculative and self._latest != seq:
                return Outcome(Source.SUPERSEDED)
            t0 = time.monotonic()
        if self.closed:
            return Outcome(Source.CANCELLED)
        if self._in_flight and speculative:  # a real request is running: it has priority
            return Outcome(Source.SKIPPED)
        # A newer request supersedes every older one, in any document: the user is here now.
        # (One engine serves all documents; an old generation would only make this one wait.)
        for previous in self._in_flight.values():
            previous.cancel.set()
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        # A block's first line is shown as soon as it is written; the rest lands in the cache
        # (and in-flight reuse), where the next request at this cursor, or the one after the
        # user accepts the line, finds it. Without the cache there is nowhere to keep it.
        early: asyncio.Future[tuple[str, gate.Verdict | None]] = loop.create_future()
        on_first_line = None
        if self.config.cache and not speculative:

            def on_first_line(line: str, verdict: gate.Verdict | None) -> None:
                loop.call_soon_threadsafe(_settle, early, (line, verdict))

        waits: dict[str, float] = {}  # a first line shown early reports them too
        task = loop.run_in_executor(
            None, self._run, engine, request, cancel, t0, on_first_line, gate_shift, waits
        )
        flight = _InFlight(key, cancel, task)
        self._in_flight[snap.uri] = flight

        def landed(done: asyncio.Future[CompletionResult]) -> None:
            if self._in_flight.get(snap.uri) is flight:
                del self._in_flight[snap.uri]
            if early.done() and not done.cancelled() and done.exception() is None:
                ms = (time.monotonic() - t0) * 1000
                threshold = self.gate_threshold(engine.runtime, request.language, gate_shift)
                self._keep(key, done.result(), cancel, ms, request_id, threshold)

        task.add_done_callback(landed)
        try:
            await asyncio.wait((task, early), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancel.set()  # $/cancelRequest: the engine stops within one decode step
            raise
        if not task.done():
            line, verdict = early.result()
            shown_ms = (time.monotonic() - t0) * 1000
            timings = {**waits, "first_line": shown_ms, "total": shown_ms}
            # the line passed the gate alone (the pipeline hands out no other)
            shown = CompletionResult(
                line,
                "first_line",
                timings_ms=timings,
                mode="multi",
                answer=line,
                verdict=verdict,
            )
            return Outcome(Source.MODEL, shown)
        early.cancel()
        result = task.result()
        if cancel.is_set() or result.stop_reason == "cancelled":
            return Outcome(Source.CANCELLED, CompletionResult("", "", timings_ms=result.timings_ms))
        if self.config.cache and result.stop_reason not in StopReason.NO_ANSWER:
            # an answer cut by the clock, or a backend's failure, is no answer to keep; what
            # is kept is what is shown (`text`): an answer the gate hid is never served later
            self.cache.put(key, result.text, prefetched=speculative)
        return Outcome(Source.MODEL, result)

    def _keep(
        self,
        key: CursorKey,
        result: CompletionResult,
        cancel: threading.Event,
        ms: float,
        request_id: int | str | None = None,
        gate_threshold: float | None = None,
    ) -> None:
        """Cache the block whose first line was already shown (its first line alone, gated)."""
        if cancel.is_set() or result.stop_reason in StopReason.NO_ANSWER:
            return
        self.cache.put(key, result.text)
        stages = format_stages(result.timings_ms)
        log.info(
            "block ready: source=block stop=%s %s since_arrival=%.0fms "
            "prompt_tokens=%d reused_tokens=%d -> %r",
            result.stop_reason, stages, ms, result.prompt_tokens, result.reused_tokens,
            result.text,
        )  # fmt: skip
        self._on_block(request_id, key.uri, result, ms, gate_threshold)

    async def _reuse_in_flight(self, key: CursorKey) -> Outcome | None:
        """Wait for a generation in flight whose output may still match what was typed."""
        flight = self._in_flight.get(key.uri)
        if flight is None or flight.cancel.is_set():
            return None
        typed = typed_since(flight.key, key)
        if typed is None:
            return None
        try:
            result = await asyncio.shield(flight.result)
        except Exception:  # the other request's failure is not ours: generate afresh
            return None
        failed = result.stop_reason in (StopReason.CANCELLED, StopReason.BACKEND_ERROR)
        if failed or not result.text.startswith(typed):
            return None
        self.cache.put(flight.key, result.text)
        rest = result.text[len(typed) :]
        # at the very cursor it was made for (a prefetch), even an empty answer is the answer
        if rest or not typed:
            return Outcome.served(Source.REUSED, rest, result.timings_ms)
        return None

    def close(self) -> None:
        """Stop every generation in flight and every prefetch; start none from now on."""
        self.closed = True
        if self._warming is not None:
            self._warming.set()
        for task in list(self._prefetches):
            task.cancel()
        for flight in self._in_flight.values():
            flight.cancel.set()

    def forget(self, uri: str) -> None:
        """A document was closed."""
        self.cache.forget(uri)
        if flight := self._in_flight.pop(uri, None):
            flight.cancel.set()
