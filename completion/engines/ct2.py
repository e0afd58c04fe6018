"""`CT2Engine`: a converted model run by CTranslate2 on the CPU, with its memory tricks.

The cached prompt head (`static_prompt`) is bounded and freed by a reload plus
`malloc_trim`; the native generator is freed before the interpreter exits. `ctranslate2`
and `tokenizers` are imported lazily, when a model is loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from completion.cpu_load import usable_cores
from completion.engines.interface import (
    UNKNOWN_LOG_PROB,
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
from completion.stops import StopRule

log = logging.getLogger(__name__)

_live_engines: weakref.WeakSet[CT2Engine] = weakref.WeakSet()


@atexit.register
def _release_at_exit() -> None:
    """Stop open streams and free generators before the interpreter tears down.

    A CTranslate2 Generator still alive at interpreter teardown sometimes aborts the process
    ("terminate called without an active exception"); freeing it here avoids that.
    """
    close_open_streams()
    for engine in list(_live_engines):
        engine.close()


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


class CT2Engine(TokenizedEngine):
    """A converted model run by `ctranslate2.Generator` on the CPU."""

    def __init__(self, model: InstalledModel, options: EngineOptions | None = None) -> None:
        import ctranslate2

        options = options or EngineOptions()
        self.options = options
        self._static_heads: set[tuple[int, ...]] = set()
        self._static_tokens = 0
        self.cache_resets = 0
        self.cache_failed = False  # a reload failed: prompts are computed whole from then on
        self.name = model.manifest.name
        self.runtime = "ctranslate2"
        self.family = model.family
        self.fim = self.family.fim
        self.path = model.path
        threads = options.threads or usable_cores()
        self.threads = threads
        started = time.monotonic()
        self._tokens = ModelTokenizer(model)
        self._tokenizer = self._tokens.raw
        try:
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
        self._stop_ids = self._tokens.stop_ids
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
        self.warmup_seconds = warm_up(self)

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
        # CTranslate2 needs one token after the static prompt: with none it starts from no
        # logits and ends at once (a cursor at a checkpoint line's start, nothing typed yet)
        static_len = min(static_len, len(prompt_ids) - 1)
        if 0 < static_len <= self.options.prompt_cache_tokens:
            head = tuple(prompt_ids[:static_len])
            reused = static_len if head in self._static_heads else 0
            if self._remember_static(head):
                kwargs.update(static_prompt=tokens[:static_len], cache_static_prompt=True)
                tokens = tokens[static_len:]
            else:
                reused = 0
        # each token's log-probability: the show-or-not gate's evidence (completion/gate.py);
        # measured: no cost per token that 36 paired answers could tell (56.5 vs 56.5 ms)
        kwargs |= self._decoding(params) | {"return_log_prob": True}

        def callback(_step: Any) -> bool:
            return cancel is not None and cancel.is_set()

        raw = self._generator.generate_tokens(tokens, callback=callback, **kwargs)
        to_id = self._to_tokenizer_id
        steps = (
            (step.token_id if to_id is None else to_id[step.token_id], step.log_prob)
            for step in raw
        )
        stream = Stream(_closing(steps, raw), params, self._stop_ids, cancel)
        stream.reused_tokens = reused
        return stream

    def _decoding(self, params: GenerationParams) -> dict[str, Any]:
        """CTranslate2's length, end-token and sampling arguments, for stream and batch alike."""
        kwargs: dict[str, Any] = {
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
        return kwargs

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
        tracker = HypothesisTracker(count, self.decode, params, self._stop_ids, stop_rule, cancel)
        kwargs: dict[str, Any] = {
            **self._decoding(params),
            "num_hypotheses": count,
            "include_prompt_in_result": False,
            "return_scores": True,  # what fills each step's `log_prob` in a batch
        }
        if greedy:
            kwargs["beam_size"] = 1
        if params.seed is not None and not greedy:
            import ctranslate2

            ctranslate2.set_random_seed(params.seed)

        to_id = self._to_tokenizer_id

        def callback(step: Any) -> bool:
            token_id = step.token_id if to_id is None else to_id[step.token_id]
            log_prob = UNKNOWN_LOG_PROB if step.log_prob is None else step.log_prob
            return tracker.feed(step.hypothesis_id, token_id, log_prob)

        self._generator.generate_batch([tokens], callback=callback, **kwargs)
        return repeat_greedy(tracker.result(), n)


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them after CTranslate2 frees its cache).

    Measured: after a reload that freed 10 cached prompt heads, RSS stayed at 990 MB without
    this and fell to 690-710 MB with it (the model alone: 686 MB).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _id_map(vocabulary_json: Path, tokenizer: Any) -> list[int] | None:
    """CTranslate2 id -> tokenizer id, or None when the two orders agree.

    A model with a pruned output vocabulary (completion/models/vocab_prune.py) has its vocabulary
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


def _closing(steps: Iterator[TokenStep], raw: Any) -> Iterator[TokenStep]:
    """Yield from `steps`; closing this iterator closes CTranslate2's stream too."""
    try:
        yield from steps
    finally:
        raw.close()


def load_engine(model: InstalledModel, options: EngineOptions | None = None) -> CT2Engine:
    """Load a verified model into a CTranslate2 engine."""
    log.info("loading model %s from %s", model.manifest.name, model.path)
    return CT2Engine(model, options)
