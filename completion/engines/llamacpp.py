"""`LlamaCppEngine`: the model's own 4-bit GGUF run in-process by llama.cpp on the CPU.

Why it is the default where it is installed: decode on a 2-core CPU is bound by the bytes
read per token, and the Q4_K_M weights are half of CTranslate2's int8 (measured here:
21-25 ms a token against 40-48 ms). The GGUF is also the weights as published; the
CTranslate2 model is converted from it. llama.cpp keeps its key/value cache in place, so a
prompt that shares its start with the last one (the suffix-first prompt while typing) only
computes the tokens after the first difference: no head copy per request, and the reuse
survives any edit below the first changed token, not only an exact head. When a prompt
leaves that state behind (another file, a jump), its keys and values are copied aside, and
a later prompt that comes back to that place restores them instead of computing its prompt
again (`_KeptStates`).

The prompt is evaluated in chunks so that `cancel` stops it between two chunks (CTranslate2
cannot interrupt its prompt pass); decode stops within one step. One generation runs at a
time: the context is llama.cpp's single sequence, held by a lock from a stream's first step
to its close. `llama_cpp` and `numpy` are imported when a model is loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import io
import logging
import threading
import time
import weakref
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from completion.cpu_load import usable_cores
from completion.engines.interface import (
    GenerationParams,
    HypothesisTracker,
    Samples,
    Stream,
    TokenStep,
    close_open_streams,
    repeat_greedy,
    warm_up,
)
from completion.models.store import InstalledModel, ModelCorruptError
from completion.models.tokenizer import ModelTokenizer, TokenizedEngine
from completion.stops import StopReason, StopRule

log = logging.getLogger(__name__)

_live_engines: weakref.WeakSet[LlamaCppEngine] = weakref.WeakSet()
CLOSE_WAIT_S = 5.0
# A place is kept when a prompt leaves at least this many of its tokens behind: computing
# them again would cost over a second on 2 cores (6-10 ms a prompt token), copying them
# aside costs about 10 ms (12 KB a token).
KEEP_MIN_TOKENS = 256
# A kept place is restored (about 2 ms) when it spares at least one chunk's computing.
RESTORE_MIN_GAIN = 64


@atexit.register
def _release_at_exit() -> None:
    """Stop open streams and free contexts before the interpreter tears down."""
    close_open_streams()
    for engine in list(_live_engines):
        engine.close()


@dataclass(frozen=True)
class LlamaOptions:
    """llama.cpp runtime settings."""

    threads: int = 0  # 0: all cores
    # Room in the key/value cache for a prompt and its continuation. Qwen2.5-Coder-0.5B keeps
    # 12 KB a token (2 KV heads), so 8,192 tokens is 96 MB: the server's largest
    # `contextTokens` (8,192) plus its generation does not always fit, and a prompt that
    # does not is refused (an empty answer and a log line), never cut.
    context_tokens: int = 8192
    # Prompt tokens per llama.cpp call: `cancel` is looked at between two chunks (64 tokens
    # are 250-300 ms on 2 cores; 64 to 512 a chunk computed a prompt equally fast here).
    chunk_tokens: int = 64
    # The keys and values of places the prompts left (another file, a jump elsewhere), kept
    # to be restored when the user comes back: 96 MB hold about eight prompts of 1,000
    # tokens. 0 keeps none.
    kept_state_bytes: int = 96 * 2**20
    warmup: bool = True


class LlamaCppEngine(TokenizedEngine):
    """A GGUF run by llama.cpp (`llama_cpp.Llama`), with its key/value cache kept in place."""

    def __init__(
        self, model: InstalledModel, gguf: Path, options: LlamaOptions | None = None
    ) -> None:
        import llama_cpp
        import numpy

        self._np = numpy
        self._lib = llama_cpp
        options = options or LlamaOptions()
        self.options = options
        self.name = model.manifest.name
        self.runtime = "llama.cpp"
        self.family = model.family
        self.fim = self.family.fim
        self.path = model.path
        self.gguf = gguf
        self.threads = options.threads or usable_cores()
        started = time.monotonic()
        self._tokens = ModelTokenizer(model)
        self._stop_ids = self._tokens.stop_ids
        _route_native_log(llama_cpp)
        try:
            # verbose: with verbose=False the binding points fds 1 and 2 at /dev/null for
            # the whole load, in every thread (a server's messages and logs were lost); its
            # own prints here (system info, metadata) go nowhere instead
            with contextlib.redirect_stderr(io.StringIO()), _loading():
                self._llm: Any = llama_cpp.Llama(
                    str(gguf),
                    n_ctx=options.context_tokens,
                    n_batch=max(options.chunk_tokens, 64),
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    verbose=True,
                )
            self._llm.verbose = False
        except Exception as exc:  # llama_cpp raises ValueError and RuntimeError
            raise ModelCorruptError(f"cannot load the GGUF at {gguf}: {exc}") from exc
        self._vocab = self._llm.n_vocab()
        self._lock = threading.Lock()
        self._cached: list[int] = []  # the tokens whose keys and values the context holds
        self._kept = _KeptStates(options.kept_state_bytes)
        self.load_seconds = time.monotonic() - started
        _live_engines.add(self)
        self.warmup_seconds = 0.0
        if options.warmup:
            self.warmup()

    def close(self) -> None:
        """Free the model; the engine cannot generate afterwards."""
        # a stream still open holds the context: wait for it (it stops within a step once
        # closed); one abandoned past the wait keeps the memory, rather than hang an exit
        if not self._lock.acquire(timeout=CLOSE_WAIT_S):
            log.warning("a generation still holds the llama.cpp context; not freed")
            return
        try:
            llm, self._llm = self._llm, None
            self._kept.clear()
            if llm is not None:
                llm.close()
        finally:
            self._lock.release()

    def warmup(self) -> None:
        """Run one short generation so that the first real request pays no start-up costs."""
        self.warmup_seconds = warm_up(self)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        static_len: int = 0,
    ) -> Stream:
        """Stream token ids after the prompt; stop tokens, caps, budget and `cancel` end it.

        With `static_len` (the pipeline's prompt cache on), whatever the prompt shares with
        the context's tokens is reused, head or not; with 0, the prompt is computed whole.
        `Stream.reused_tokens` says how many were reused.
        """
        steps = _Steps(self, list(prompt_ids), params, cancel, reuse=static_len > 0)
        stream = Stream(steps, params, self._stop_ids, cancel)
        steps.stream = stream
        return stream

    def sample(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        n: int,
        stop_rule: StopRule | None = None,
        cancel: threading.Event | None = None,
    ) -> Samples:
        """`n` continuations, one after the other; each reuses the prompt's cached state.

        Greedy decoding (temperature 0) decodes one and repeats it: the n are the same.
        """
        greedy = params.temperature <= 0
        count = 1 if greedy else n
        tracker = HypothesisTracker(count, self.decode, params, self._stop_ids, stop_rule, cancel)
        rng = self._np.random.default_rng(params.seed)
        for i in range(count):
            steps = _Steps(self, list(prompt_ids), params, cancel, reuse=True, rng=rng)
            try:
                for token, log_prob in steps:
                    if tracker.feed(i, token, log_prob):
                        break
            finally:
                steps.close()
            if steps.end_reason == StopReason.CANCELLED:
                break
        return repeat_greedy(tracker.result(), n)

    # -- the context, under the lock ------------------------------------------------------

    def _feed(
        self, ids: Sequence[int], cancel: threading.Event | None, reuse: bool = True
    ) -> int | None:
        """Bring the context to `ids`, computing only what it does not hold; the reused count.

        None when `cancel` was set between two chunks (the context then holds a prefix of
        `ids`, which the next prompt may still reuse).
        """
        llm = self._llm
        # the last token is fed again: its logits are needed
        kept = min(_common_prefix(self._cached, ids), len(ids) - 1) if reuse else 0
        if reuse:
            kept = self._come_back(ids, kept)
        llm.n_tokens = kept  # `Llama.eval` drops the cache after n_tokens first
        del self._cached[kept:]
        chunk = self.options.chunk_tokens
        try:
            for start in range(kept, len(ids), chunk):
                if cancel is not None and cancel.is_set():
                    return None
                piece = ids[start : start + chunk]
                llm.eval(piece)
                self._cached.extend(piece)
        except BaseException:
            self._forget()
            raise
        return kept

    def _come_back(self, ids: Sequence[int], kept: int) -> int:
        """Keep the context's place if `ids` leaves it; restore a kept place `ids` returns to.

        The tokens `ids` can reuse afterwards.
        """
        # taken out first: keeping the place being left may push the oldest out of the budget
        found = self._kept.take(ids, more_than=kept + RESTORE_MIN_GAIN)
        if len(self._cached) >= KEEP_MIN_TOKENS and kept < len(self._cached) // 2:
            self._keep_place()
        if found is None:
            return kept
        tokens, data = found
        lib, ctx = self._lib, self._llm.ctx
        if lib.llama_state_seq_set_data(ctx, data, len(data), 0) != len(data):
            log.warning("a kept llama.cpp state did not load; the prompt is computed whole")
            self._forget()
            return 0
        self._cached = list(tokens)
        self._llm.n_tokens = len(tokens)
        self._llm.input_ids[: len(tokens)] = tokens
        return min(_common_prefix(tokens, ids), len(ids) - 1)

    def _keep_place(self) -> None:
        """Copy the context's keys and values aside, with the tokens they are for."""
        lib, ctx = self._lib, self._llm.ctx
        # the sequence holds exactly `_cached`: drop anything after it (a step not counted)
        lib.llama_memory_seq_rm(lib.llama_get_memory(ctx), 0, len(self._cached), -1)
        size = lib.llama_state_seq_get_size(ctx, 0)
        if size > self._kept.capacity:
            return
        data = (ctypes.c_uint8 * size)()
        if lib.llama_state_seq_get_data(ctx, data, size, 0) == size:
            self._kept.put(list(self._cached), data)

    def _forget(self) -> None:
        """Trust nothing the context holds (a llama.cpp call failed or was interrupted)."""
        self._cached.clear()
        self._llm.n_tokens = 0

    def _next(self, params: GenerationParams, rng: Any) -> tuple[int, float]:
        """The next token after the context, and its log-probability under the model."""
        np = self._np
        pointer = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._vocab,))
        top = float(logits.max())
        log_norm = top + float(np.log(np.exp(logits - top).sum()))
        if params.temperature <= 0:
            token = int(logits.argmax())
        else:
            token = _sample(np, logits, params, rng)
        return token, float(logits[token]) - log_norm

    def _step(self, token: int) -> None:
        try:
            self._llm.eval([token])
        except BaseException:
            self._forget()
            raise
        self._cached.append(token)


class _Steps:
    """The raw (token, log-prob) iterator behind a `Stream`: holds the context until closed."""

    def __init__(
        self,
        engine: LlamaCppEngine,
        prompt: list[int],
        params: GenerationParams,
        cancel: threading.Event | None,
        reuse: bool,
        rng: Any = None,
    ) -> None:
        self.engine = engine
        self._reuse = reuse
        self.stream: Stream | None = None
        self.end_reason: str | None = None
        self._it: Generator[TokenStep, None, None] = self._run(prompt, params, cancel, rng)

    def __iter__(self) -> Iterator[TokenStep]:
        return self

    def __next__(self) -> TokenStep:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    def _run(
        self,
        prompt: list[int],
        params: GenerationParams,
        cancel: threading.Event | None,
        rng: Any,
    ) -> Generator[TokenStep, None, None]:
        engine = self.engine
        room = engine.options.context_tokens - len(prompt)
        if not prompt or room <= 0:
            log.warning("a %d-token prompt does not fit the context; no answer", len(prompt))
            self.end_reason = StopReason.BACKEND_ERROR
            return
        if rng is None:
            rng = engine._np.random.default_rng(params.seed)
        with engine._lock:
            if engine._llm is None:
                self.end_reason = StopReason.CANCELLED
                return
            reused = engine._feed(prompt, cancel, self._reuse)
            if reused is None:
                self.end_reason = StopReason.CANCELLED
                return
            if self.stream is not None:
                self.stream.reused_tokens = reused
            for _ in range(min(room, params.max_new_tokens + 1)):
                token, log_prob = engine._next(params, rng)
                yield token, log_prob
                engine._step(token)
            self.end_reason = StopReason.MAX_TOKENS


class _KeptStates:
    """Places the prompts left, newest last, within a byte budget: (tokens, their state).

    A place is taken out when it is restored (the context holds it then) and kept again
    when a prompt leaves it; a new place drops the older ones it holds nearly whole.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._places: list[tuple[list[int], Any]] = []

    def put(self, tokens: list[int], data: Any) -> None:
        self._places = [(t, d) for t, d in self._places if _common_prefix(t, tokens) < 0.9 * len(t)]
        self._places.append((tokens, data))
        while sum(len(d) for _, d in self._places) > self.capacity:
            self._places.pop(0)

    def take(self, ids: Sequence[int], more_than: int) -> tuple[list[int], Any] | None:
        """The place sharing the most tokens with `ids`, if over `more_than`; it leaves."""
        best, shared = None, more_than
        for i, (tokens, _) in enumerate(self._places):
            n = _common_prefix(tokens, ids)
            if n > shared:
                best, shared = i, n
        return None if best is None else self._places.pop(best)

    def clear(self) -> None:
        self._places.clear()

    def __len__(self) -> int:
        return len(self._places)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _sample(np: Any, logits: Any, params: GenerationParams, rng: Any) -> int:
    """A token drawn at the temperature from the smallest set whose mass reaches top-p."""
    scaled = logits.astype(np.float64) / params.temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    order = np.argsort(-probs)
    keep = int(np.searchsorted(np.cumsum(probs[order]), params.top_p)) + 1
    kept = order[:keep]
    weights = probs[kept] / probs[kept].sum()
    return int(rng.choice(kept, p=weights))


_native_log: Any = None  # the ctypes callback llama.cpp logs through (kept alive here)
native_log = logging.getLogger("offpilot.llama.cpp")
_load_state = threading.local()


@contextlib.contextmanager
def _loading() -> Iterator[None]:
    """Marks this thread as loading a model, for `_route_native_log`."""
    _load_state.active = True
    try:
        yield
    finally:
        _load_state.active = False


def _route_native_log(llama_cpp: Any) -> None:
    """llama.cpp's own log -> ours, warnings and errors only (its info is pages a load).

    A warning while a model loads is about the file, whose checksum was verified: the
    published GGUF's "control-looking token" note came at every start. Those go at INFO;
    a warning while generating (a full context, a failed decode) stays a warning.
    """
    global _native_log
    if _native_log is not None:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, _user: Any) -> None:
        # ggml's levels: 1 debug, 2 info, 3 warn, 4 error, 5 the line before's continued
        if level in (3, 4):
            message = text.decode("utf-8", "replace").rstrip()
            if level == 4:
                native_log.error("%s", message)
            elif getattr(_load_state, "active", False):
                native_log.info("%s", message)
            else:
                native_log.warning("%s", message)

    _native_log = forward
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


def load_llamacpp(
    model: InstalledModel, gguf: Path, options: LlamaOptions | None = None
) -> LlamaCppEngine:
    """Load a model's verified GGUF into llama.cpp."""
    log.info("loading model %s from %s (llama.cpp)", model.manifest.name, gguf)
    return LlamaCppEngine(model, gguf, options)
