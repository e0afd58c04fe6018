"""The generation engine's interface: what the pipeline asks of a model, and the stream it gets.

The pipeline talks to `Engine` only. Implementations: `CT2Engine` (completion/engines/ct2.py)
runs a converted model with CTranslate2 on the CPU; `RemoteEngine`
(completion/engines/remote.py) asks an OpenAI-compatible server; `FakeEngine`
(completion/engines/fake.py) replays scripted text for fast unit tests. All apply the stop
conditions of completion/stops.py through `Stream` and `HypothesisTracker`.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from completion.models.specs import Family, FimTokens
from completion.stops import RULE, StopConditions, StopReason, StopRule, final_cut

# What an engine's raw iterator yields: a token id and its log-probability under the model
# (`UNKNOWN_LOG_PROB` where the engine cannot tell, e.g. a server without `logprobs`).
TokenStep = tuple[int, float]
UNKNOWN_LOG_PROB = math.nan

# The most a decode may take after its first token (`StopConditions`): past about a second
# a suggestion is mostly wasted; 2 s leaves room for a block.
DEFAULT_TIME_BUDGET_S = 2.0


@dataclass(frozen=True)
class GenerationParams:
    """How much to generate and when to stop, independent of the text produced."""

    max_new_tokens: int = 48  # the single-line token cap: 7-token lines, with room to spare
    time_budget_s: float | None = DEFAULT_TIME_BUDGET_S
    temperature: float = 0.0
    top_p: float = 0.95
    seed: int | None = None


@dataclass(frozen=True)
class Hypothesis:
    """One of n sampled continuations: its ids, its text (cut by the stop rule) and why it ended."""

    ids: list[int]
    text: str
    reason: str
    log_probs: tuple[float, ...] = ()  # one per id


@dataclass(frozen=True)
class Samples:
    """The n continuations of one prompt pass, with the pass's timings."""

    hypotheses: list[Hypothesis]
    first_token_ms: float | None
    ms: float


class HypothesisTracker:
    """Applies the shared stop rules to each hypothesis of a batched generation."""

    def __init__(
        self,
        n: int,
        decode: Callable[[Sequence[int]], str],
        params: GenerationParams,
        stop_ids: frozenset[int],
        stop_rule: StopRule | None,
        cancel: threading.Event | None,
    ) -> None:
        self.ids: list[list[int]] = [[] for _ in range(n)]
        self.log_probs: list[list[float]] = [[] for _ in range(n)]
        self.text = [""] * n
        self.reason: list[str | None] = [None] * n
        self._stops = StopConditions(params.max_new_tokens, params.time_budget_s, stop_ids, cancel)
        self.started = self._stops.started
        self.first_token_s: float | None = None
        self._decode = decode
        self._stop_rule = stop_rule

    def feed(self, i: int, token: int, log_prob: float = UNKNOWN_LOG_PROB) -> bool:
        """Record one token of hypothesis `i`; True once that hypothesis is finished."""
        now = time.monotonic()
        if self.first_token_s is None:
            self.first_token_s = now - self.started
        if self.reason[i] is not None:
            return True
        self.reason[i] = self._stops.before(token)
        if self.reason[i] == StopReason.END_TOKEN:
            cut = final_cut(self.text[i], self._stop_rule) if self._stop_rule else None
            if cut is not None:
                self.text[i], self.reason[i] = self.text[i][:cut], RULE
        elif self.reason[i] is None:
            self.ids[i].append(token)
            self.log_probs[i].append(log_prob)
            self.text[i] = self._decode(self.ids[i])
            cut = self._stop_rule(self.text[i]) if self._stop_rule is not None else None
            if cut is not None:
                self.text[i], self.reason[i] = self.text[i][:cut], RULE
            else:
                self.reason[i] = self._stops.after(len(self.ids[i]), now)
        return self.reason[i] is not None

    def result(self) -> Samples:
        """The hypotheses as they stand (unfinished ones ended by the engine)."""
        hyps = [
            Hypothesis(ids, text, reason or StopReason.END_TOKEN, tuple(lps))
            for ids, text, reason, lps in zip(
                self.ids, self.text, self.reason, self.log_probs, strict=True
            )
        ]
        first = None if self.first_token_s is None else self.first_token_s * 1000
        return Samples(hyps, first, (time.monotonic() - self.started) * 1000)


_open_streams: weakref.WeakSet[Stream] = weakref.WeakSet()


def close_open_streams() -> None:
    """Stop every stream still open (before an engine's native model is freed at exit)."""
    for stream in list(_open_streams):
        stream.close()


class Stream:
    """Token ids as they are generated, with the stop rules every engine shares applied.

    Iterating ends on a stop token, the token cap, the time budget or `cancel`; `reason`
    says which. Closing the stream closes the engine's iterator, which stops its work.
    `log_probs` holds the log-probability of each id yielded so far (the gate's evidence).
    """

    def __init__(
        self,
        raw: Iterator[TokenStep],
        params: GenerationParams,
        stop_ids: frozenset[int],
        cancel: threading.Event | None = None,
    ) -> None:
        self._raw = raw
        self.reason: str = StopReason.CALLER
        self.first_token_s: float | None = None
        self.reused_tokens = 0  # prompt tokens whose model state came from the engine's cache
        self.log_probs: list[float] = []
        self._tokens = self._apply_rules(params, stop_ids, cancel)
        _open_streams.add(self)

    def _apply_rules(
        self, params: GenerationParams, stop_ids: frozenset[int], cancel: threading.Event | None
    ) -> Generator[int, None, None]:
        try:
            yield from self._ruled(params, stop_ids, cancel)
        finally:  # whatever ended it, stop the engine's work now, not at garbage collection
            self._close_raw()
            _open_streams.discard(self)

    def _ruled(
        self, params: GenerationParams, stop_ids: frozenset[int], cancel: threading.Event | None
    ) -> Generator[int, None, None]:
        stops = StopConditions(params.max_new_tokens, params.time_budget_s, stop_ids, cancel)
        for count, (token, log_prob) in enumerate(self._raw, start=1):
            if self.first_token_s is None:
                self.first_token_s = time.monotonic() - stops.started
            reason = stops.before(token)
            if reason is not None:
                self.reason = reason
                return
            self.log_probs.append(log_prob)
            yield token
            reason = stops.after(count)
            if reason is not None:
                self.reason = reason
                return
        # an engine whose source can end for its own reasons says which (a remote server's)
        self.reason = getattr(self._raw, "end_reason", None) or StopReason.END_TOKEN

    def _close_raw(self) -> None:
        close = getattr(self._raw, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> Iterator[int]:
        return self._tokens

    def close(self) -> None:
        """Stop generation now; returns within about one decode step."""
        self._tokens.close()
        self._close_raw()


def warm_up(engine: Engine) -> float:
    """Run one short generation so that the first real request pays no start-up costs.

    Returns the seconds it took.
    """
    started = time.monotonic()
    stream = engine.stream(engine.encode("def main():\n    "), GenerationParams(max_new_tokens=2))
    for _ in stream:
        pass
    stream.close()
    return time.monotonic() - started


def repeat_greedy(result: Samples, n: int) -> Samples:
    """`n` hypotheses where one was decoded: greedy ones are all the same, so one is decoded."""
    if len(result.hypotheses) == 1 < n:
        return Samples(result.hypotheses * n, result.first_token_ms, result.ms)
    return result


class Engine(Protocol):
    """What the pipeline needs from a model."""

    fim: FimTokens | None
    name: str
    # What computes the tokens (llama.cpp, ctranslate2, remote, fake): the same weights give
    # other log-probs in another runtime, and the gate (completion/gate.py) reads them.
    runtime: str
    # The model's family entry (its windows, stop and repository tokens); `fim` is the FIM
    # tokens this model's vocabulary has, None when it has none.
    family: Family

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens skipped."""
        ...

    def token_id(self, token: str) -> int | None:
        """The id of a special token, if the vocabulary has it."""
        ...

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        static_len: int = 0,
    ) -> Stream:
        """Start generating after `prompt_ids`; `prompt_ids[:static_len]` may be cached."""
        ...

    def sample(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        n: int,
        stop_rule: StopRule | None = None,
        cancel: threading.Event | None = None,
    ) -> Samples:
        """`n` continuations of `prompt_ids`, sharing one prompt pass where the engine can.

        Each hypothesis obeys the same rules as `stream` (stop tokens, token cap, time
        budget, cancel) and, when given, the text `stop_rule`.
        """
        ...


def model_path(engine: Engine) -> Path | None:
    """Where an engine's model lives, when it has one on disk."""
    return getattr(engine, "path", None)
