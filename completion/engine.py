"""The generation engine: a CTranslate2 Generator behind a small streaming interface.

The pipeline talks to `Engine` only. `CT2Engine` runs a converted model on the CPU;
`FakeEngine` replays scripted text for fast unit tests. Heavy imports are lazy.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from completion.model_specs import FimOrder, FimTokens
from completion.model_store import InstalledModel, ModelCorruptError
from completion.stops import RULE, StopConditions, StopReason, StopRule, final_cut

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationParams:
    """How much to generate and when to stop, independent of the text produced."""

    max_new_tokens: int = 48
    time_budget_s: float | None = 2.0
    temperature: float = 0.0
    top_p: float = 0.95
    seed: int | None = None


@dataclass(frozen=True)
class Hypothesis:
    """One of n sampled continuations: its ids, its text (cut by the stop rule) and why it ended."""

    ids: list[int]
    text: str
    reason: str


@dataclass(frozen=True)
class Samples:
    """The n continuations of one prompt pass, with the pass's timings."""

    hypotheses: list[Hypothesis]
    first_token_ms: float | None
    ms: float


class _HypothesisTracker:
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
        self.text = [""] * n
        self.reason: list[str | None] = [None] * n
        self._stops = StopConditions(params.max_new_tokens, params.time_budget_s, stop_ids, cancel)
        self.started = self._stops.started
        self.first_token_s: float | None = None
        self._decode = decode
        self._stop_rule = stop_rule

    def feed(self, i: int, token: int) -> bool:
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
            Hypothesis(ids, text, reason or StopReason.END_TOKEN)
            for ids, text, reason in zip(self.ids, self.text, self.reason, strict=True)
        ]
        first = None if self.first_token_s is None else self.first_token_s * 1000
        return Samples(hyps, first, (time.monotonic() - self.started) * 1000)


_open_streams: weakref.WeakSet[Stream] = weakref.WeakSet()
_live_engines: weakref.WeakSet[CT2Engine] = weakref.WeakSet()


@atexit.register
def _release_at_exit() -> None:
    """Stop open streams and free generators before the interpreter tears down.

    A CTranslate2 Generator still alive at interpreter teardown sometimes aborts the process
    ("terminate called without an active exception"); freeing it here avoids that.
    """
    for stream in list(_open_streams):
        stream.close()
    for engine in list(_live_engines):
        engine.close()


class Stream:
    """Token ids as they are generated, with the stop rules every engine shares applied.

    Iterating ends on a stop token, the token cap, the time budget or `cancel`; `reason`
    says which. Closing the stream closes the engine's iterator, which stops its work.
    """

    def __init__(
        self,
        raw: Iterator[int],
        params: GenerationParams,
        stop_ids: frozenset[int],
        cancel: threading.Event | None = None,
    ) -> None:
        self._raw = raw
        self.reason: str = StopReason.CALLER
        self.first_token_s: float | None = None
        self.reused_tokens = 0  # prompt tokens whose model state came from the engine's cache
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
        count = 0
        for token in self._raw:
            if self.first_token_s is None:
                self.first_token_s = time.monotonic() - stops.started
            reason = stops.before(token)
            if reason is not None:
                self.reason = reason
                return
            yield token
            count += 1
            reason = stops.after(count)
            if reason is not None:
                self.reason = reason
                return
        self.reason = StopReason.END_TOKEN

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


class Engine(Protocol):
    """What the pipeline needs from a model."""

    fim: FimTokens | None
    name: str

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


@dataclass(frozen=True)
class EngineOptions:
    """CTranslate2 runtime settings."""

    threads: int = 0  # 0: all cores
    compute_type: str = "int8"
    warmup: bool = True
    # Prompt-head tokens whose model state CTranslate2 may keep. It keeps full-width keys and
    # values: about 170 KB a token for the 0.5B model (measured: a 300-token head adds 50 MB
    # of RSS), so 1536 tokens is about 260 MB. Past it the generator is reloaded (about
    # 0.5 s) to free them. 0 disables the cache.
    prompt_cache_tokens: int = 1536


class CT2Engine:
    """A converted model run by `ctranslate2.Generator` on the CPU."""

    def __init__(self, model: InstalledModel, options: EngineOptions | None = None) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        options = options or EngineOptions()
        self.options = options
        self._static_heads: set[tuple[int, ...]] = set()
        self._static_tokens = 0
        self.cache_resets = 0
        self.cache_failed = False  # a reload failed: prompts are computed whole from then on
        self.name = model.manifest.name
        self.fim = model.manifest.fim
        self.path = model.path
        threads = options.threads or os.cpu_count() or 1
        started = time.monotonic()
        try:
            self._tokenizer = Tokenizer.from_file(str(model.path / "tokenizer.json"))
            self._generator = ctranslate2.Generator(
                str(model.path),
                device="cpu",
                compute_type=options.compute_type,
                intra_threads=threads,
                inter_threads=1,
            )
        except Exception as exc:  # CTranslate2 raises plain RuntimeError/ValueError and more
            raise ModelCorruptError(f"cannot load the model at {model.path}: {exc}") from exc
        self._to_tokenizer_id = _id_map(model.path / "vocabulary.json", self._tokenizer)
        self._stop_ids = frozenset(
            i for t in model.manifest.stop_tokens if (i := self.token_id(t)) is not None
        )
        self.load_seconds = time.monotonic() - started
        _live_engines.add(self)
        self.warmup_seconds = 0.0
        if options.warmup:
            self.warmup()

    def close(self) -> None:
        """Free the model; the engine cannot generate afterwards."""
        self._generator = None

    def warmup(self) -> None:
        """Run one short generation so that the first real request pays no start-up costs."""
        started = time.monotonic()
        stream = self.stream(self.encode("def main():\n    "), GenerationParams(max_new_tokens=2))
        for _ in stream:
            pass
        stream.close()
        self.warmup_seconds = time.monotonic() - started

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _remember_static(self, head: tuple[int, ...]) -> bool:
        """Bound CTranslate2's prompt cache: it only grows until the model is reloaded.

        False when the cache cannot be used: a reload failed once, and from then on every
        prompt is computed whole (the engine keeps answering; the cache stays off).
        """
        if self.cache_failed:
            return False
        if head in self._static_heads:
            return True
        if self._static_tokens + len(head) > self.options.prompt_cache_tokens:
            try:
                self._generator.unload_model()
                _release_freed_memory()
                self._generator.load_model()
                _release_freed_memory()
            except Exception:  # CTranslate2 raises RuntimeError and others
                log.exception("reloading the model to free its prompt cache failed")
                self.cache_failed = True
                with contextlib.suppress(Exception):
                    self._generator.load_model()  # answer without the cache if it can
                return False
            self._static_heads.clear()
            self._static_tokens = 0
            self.cache_resets += 1
        self._static_heads.add(head)
        self._static_tokens += len(head)
        return True

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens skipped."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=True))

    def token_id(self, token: str) -> int | None:
        """The id of a token, if the vocabulary has it."""
        return self._tokenizer.token_to_id(token)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        static_len: int = 0,
    ) -> Stream:
        """Stream token ids after the prompt; stop tokens, caps, budget and `cancel` end it.

        With `static_len`, CTranslate2 caches the model state after `prompt_ids[:static_len]`
        and reuses it for later prompts with the same head (bounded by
        `EngineOptions.prompt_cache_tokens`).
        """
        tokens = [self._tokenizer.id_to_token(i) for i in prompt_ids]
        kwargs: dict[str, Any] = {}
        reused = 0
        if 0 < static_len <= self.options.prompt_cache_tokens:
            head = tuple(prompt_ids[:static_len])
            reused = static_len if head in self._static_heads else 0
            if self._remember_static(head):
                kwargs.update(static_prompt=tokens[:static_len], cache_static_prompt=True)
                tokens = tokens[static_len:]
            else:
                reused = 0
        kwargs |= {
            "max_length": params.max_new_tokens,
            "end_token": [self._tokenizer.id_to_token(i) for i in sorted(self._stop_ids)] or None,
        }
        if params.temperature > 0:
            kwargs.update(
                sampling_topk=0,
                sampling_topp=params.top_p,
                sampling_temperature=params.temperature,
            )
        else:
            kwargs["sampling_topk"] = 1

        def callback(_step: Any) -> bool:
            return cancel is not None and cancel.is_set()

        raw = self._generator.generate_tokens(tokens, callback=callback, **kwargs)
        to_id = self._to_tokenizer_id
        ids = (step.token_id if to_id is None else to_id[step.token_id] for step in raw)
        stream = Stream(_closing(ids, raw), params, self._stop_ids, cancel)
        stream.reused_tokens = reused
        return stream

    def sample(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        n: int,
        stop_rule: StopRule | None = None,
        cancel: threading.Event | None = None,
    ) -> Samples:
        """`n` hypotheses from one `generate_batch` call: the prompt is encoded once.

        Greedy decoding (temperature 0) gives n identical hypotheses; sampling uses the
        temperature and top-p of `params`. Decoding stops once every hypothesis is done.
        """
        tokens = [self._tokenizer.id_to_token(i) for i in prompt_ids]
        greedy = params.temperature <= 0
        count = 1 if greedy else n  # greedy hypotheses are all the same: decode one
        tracker = _HypothesisTracker(count, self.decode, params, self._stop_ids, stop_rule, cancel)
        kwargs: dict[str, Any] = {
            "max_length": params.max_new_tokens,
            "end_token": [self._tokenizer.id_to_token(i) for i in sorted(self._stop_ids)] or None,
            "num_hypotheses": count,
            "include_prompt_in_result": False,
        }
        if params.temperature > 0:
            kwargs.update(
                sampling_topk=0,
                sampling_topp=params.top_p,
                sampling_temperature=params.temperature,
            )
        else:
            kwargs.update(sampling_topk=1, beam_size=1)
        if params.seed is not None and not greedy:
            import ctranslate2

            ctranslate2.set_random_seed(params.seed)

        to_id = self._to_tokenizer_id

        def callback(step: Any) -> bool:
            token_id = step.token_id if to_id is None else to_id[step.token_id]
            return tracker.feed(step.hypothesis_id, token_id)

        self._generator.generate_batch([tokens], callback=callback, **kwargs)
        result = tracker.result()
        if greedy and n > 1:
            return Samples(result.hypotheses * n, result.first_token_ms, result.ms)
        return result


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them after CTranslate2 frees its cache).

    Measured: after a reload that freed 10 cached prompt heads, RSS stayed at 990 MB without
    this and fell to 690-710 MB with it (the model alone: 686 MB).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _id_map(vocabulary_json: Path, tokenizer: Any) -> list[int] | None:
    """CTranslate2 id -> tokenizer id, or None when the two orders agree.

    A model with a pruned output vocabulary (completion/vocab_prune.py) has its vocabulary
    reordered so that the kept tokens come first; CTranslate2 reports ids in that order.
    """
    try:
        vocabulary = json.loads(vocabulary_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # converters without a vocabulary file keep the tokenizer's order
    ids = [tokenizer.token_to_id(token) for token in vocabulary]
    if any(i is None for i in ids):
        raise ModelCorruptError(f"{vocabulary_json} has tokens the tokenizer does not know")
    return None if ids == list(range(len(ids))) else ids


def _closing(ids: Iterator[int], raw: Any) -> Iterator[int]:
    """Yield from `ids`; closing this iterator closes CTranslate2's stream too."""
    try:
        yield from ids
    finally:
        raw.close()


class FakeEngine:
    """A deterministic engine for unit tests: one character per token, scripted output.

    `script` maps a prompt (decoded) to what the model "writes"; the first key found in the
    prompt wins, else `default` is produced. Ids are Unicode code points; the FIM markers are
    private-use characters.
    """

    name = "fake"

    def __init__(
        self,
        script: dict[str, str] | None = None,
        default: str = "",
        step_delay_s: float = 0.0,
        prompt_delay_s: float = 0.0,
        order: FimOrder = FimOrder.SUFFIX_FIRST,
    ) -> None:
        self.fim = FimTokens("\ue000", "\ue001", "\ue002", order)  # the default model's order
        self.script = script or {}
        self.default = default
        self.step_delay_s = step_delay_s
        self.prompt_delay_s = prompt_delay_s
        self.prompts: list[str] = []
        self.static_lens: list[int] = []
        self.heads: set[tuple[int, ...]] = set()  # cached prompt heads, as CT2Engine keeps them
        self.produced_tokens = 0
        self._eos = 0xE00F
        # For `sample`: a prompt key -> the outputs of hypotheses 0, 1, ... (cycled).
        self.variants: dict[str, list[str]] = {}

    def encode(self, text: str) -> list[int]:
        """One id per code point."""
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Code points back to text, markers dropped."""
        return "".join(chr(i) for i in ids if not 0xE000 <= i <= 0xE0FF)

    def token_id(self, token: str) -> int | None:
        """Markers are single private-use characters."""
        return ord(token) if len(token) == 1 else None

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        static_len: int = 0,
    ) -> Stream:
        """Replay the scripted output, honouring the same stop rules as the real engine."""
        prompt = "".join(chr(i) for i in prompt_ids)
        self.static_lens.append(static_len)
        self.prompts.append(prompt)
        output = next((v for k, v in self.script.items() if k in prompt), self.default)
        head = tuple(prompt_ids[:static_len])
        reused = static_len if static_len and head in self.heads else 0
        if static_len:
            self.heads.add(head)

        def produce() -> Iterator[int]:
            time.sleep(self.prompt_delay_s)
            for ch in output:
                time.sleep(self.step_delay_s)
                self.produced_tokens += 1
                yield ord(ch)
            yield self._eos

        stream = Stream(produce(), params, frozenset({self._eos}), cancel)
        stream.reused_tokens = reused
        return stream

    def sample(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        n: int,
        stop_rule: StopRule | None = None,
        cancel: threading.Event | None = None,
    ) -> Samples:
        """`n` scripted hypotheses (from `variants`, else the script) after one prompt pass."""
        prompt = "".join(chr(i) for i in prompt_ids)
        self.prompts.append(prompt)
        single = next((v for k, v in self.script.items() if k in prompt), self.default)
        outputs = next((v for k, v in self.variants.items() if k in prompt), [single])
        tracker = _HypothesisTracker(
            n, self.decode, params, frozenset({self._eos}), stop_rule, cancel
        )
        time.sleep(self.prompt_delay_s)
        pending = [[ord(c) for c in outputs[i % len(outputs)]] + [self._eos] for i in range(n)]
        for step in range(max((len(p) for p in pending), default=0)):
            time.sleep(self.step_delay_s)
            done = True
            for i, ids in enumerate(pending):
                if step < len(ids) and not tracker.feed(i, ids[step]):
                    self.produced_tokens += 1
                    done = False
            if done:
                break
        return tracker.result()


def load_engine(model: InstalledModel, options: EngineOptions | None = None) -> CT2Engine:
    """Load a verified model into a CTranslate2 engine."""
    log.info("loading model %s from %s", model.manifest.name, model.path)
    return CT2Engine(model, options)


def model_path(engine: Engine) -> Path | None:
    """Where an engine's model lives, when it has one on disk."""
    return getattr(engine, "path", None)
