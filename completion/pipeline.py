"""The one entry point shared by the server, the CLI and the benchmark.

document snapshot -> context -> prompt -> generate -> postprocess -> completion text.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from completion.context import Context, extract_context
from completion.engine import Engine, GenerationParams
from completion.generate import generate, single_line_stop
from completion.postprocess import clean_single_line
from completion.prompt import Prompt, PromptBudget, build_prompt


@dataclass(frozen=True)
class CompletionOptions:
    """Tunable pipeline settings, all defaulted."""

    max_new_tokens: int = 48
    time_budget_s: float = 2.0
    prefix_tokens: int = 384
    suffix_tokens: int = 128
    temperature: float = 0.0
    seed: int | None = None
    prompt_cache: bool = True  # let the engine cache the prompt's stable head


@dataclass(frozen=True)
class CompletionRequest:
    """A document snapshot and a cursor (code-point offset)."""

    text: str
    offset: int
    language: str = "python"
    path: str | None = None


@dataclass(frozen=True)
class CompletionResult:
    """What to show (possibly empty) and what it cost."""

    text: str
    stop_reason: str
    prompt_tokens: int = 0
    generated_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Prepared:
    """The stages before generation, shared by `complete` and `complete_samples`."""

    context: Context
    prompt: Prompt
    params: GenerationParams
    context_ms: float
    prompt_ms: float


def _prepare(engine: Engine, request: CompletionRequest, options: CompletionOptions) -> _Prepared:
    """Context and prompt stages, timed, and the generation parameters."""
    t0 = time.monotonic()
    context = extract_context(request.text, request.offset, request.language, request.path)
    t1 = time.monotonic()
    prompt = build_prompt(
        context, engine, PromptBudget(options.prefix_tokens, options.suffix_tokens)
    )
    t2 = time.monotonic()
    params = GenerationParams(
        max_new_tokens=options.max_new_tokens,
        time_budget_s=options.time_budget_s,
        temperature=options.temperature,
        seed=options.seed,
    )
    return _Prepared(context, prompt, params, (t1 - t0) * 1000, (t2 - t1) * 1000)


def _timings(
    prep: _Prepared, first_token_ms: float | None, generate_ms: float, post_ms: float
) -> dict[str, float]:
    """Per-stage milliseconds in the order the stages run."""
    return {
        "context": prep.context_ms,
        "prompt": prep.prompt_ms,
        "first_token": first_token_ms or 0.0,
        "generate": generate_ms,
        "postprocess": post_ms,
        "total": prep.context_ms + prep.prompt_ms + generate_ms + post_ms,
    }


def complete(
    engine: Engine,
    request: CompletionRequest,
    options: CompletionOptions | None = None,
    cancel: threading.Event | None = None,
) -> CompletionResult:
    """Run every stage for one request; `cancel` stops generation between tokens."""
    options = options or CompletionOptions()
    prep = _prepare(engine, request, options)
    t2 = time.monotonic()
    raw = generate(
        engine,
        prep.prompt.ids,
        prep.params,
        single_line_stop,
        cancel,
        prep.prompt.static_len if options.prompt_cache else 0,
    )
    t3 = time.monotonic()
    text = clean_single_line(raw.text, prep.context)
    t4 = time.monotonic()
    timings = _timings(prep, raw.first_token_ms, (t3 - t2) * 1000, (t4 - t3) * 1000)
    return CompletionResult(text, raw.stop_reason, len(prep.prompt.ids), raw.tokens, timings)


def complete_samples(
    engine: Engine,
    request: CompletionRequest,
    options: CompletionOptions | None = None,
    n: int = 1,
    cancel: threading.Event | None = None,
) -> list[CompletionResult]:
    """`n` completions for one request from one shared prompt pass (`Engine.sample`).

    Same context, prompt, stop rule and post-processing as `complete`; sampling follows
    `options.temperature` (0 gives n copies of the greedy answer). Each result carries the
    shared prompt and generation timings; `postprocess` is its own.
    """
    options = options or CompletionOptions()
    prep = _prepare(engine, request, options)
    t2 = time.monotonic()
    samples = engine.sample(prep.prompt.ids, prep.params, n, single_line_stop, cancel)
    generate_ms = (time.monotonic() - t2) * 1000
    results = []
    for hyp in samples.hypotheses:
        t3 = time.monotonic()
        text = clean_single_line(hyp.text, prep.context)
        post_ms = (time.monotonic() - t3) * 1000
        timings = _timings(prep, samples.first_token_ms, generate_ms, post_ms)
        results.append(
            CompletionResult(text, hyp.reason, len(prep.prompt.ids), len(hyp.ids), timings)
        )
    return results
