"""The one entry point shared by the server, the CLI and the benchmark.

document snapshot -> context -> prompt -> generate -> postprocess -> completion text.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from completion.context import extract_context
from completion.engine import Engine, GenerationParams
from completion.generate import generate, single_line_stop
from completion.postprocess import clean_single_line
from completion.prompt import PromptBudget, build_prompt


@dataclass(frozen=True)
class CompletionOptions:
    """Tunable pipeline settings, all defaulted."""

    max_new_tokens: int = 48
    time_budget_s: float = 2.0
    prefix_tokens: int = 384
    suffix_tokens: int = 128
    temperature: float = 0.0
    seed: int | None = None


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


def complete(
    engine: Engine,
    request: CompletionRequest,
    options: CompletionOptions | None = None,
    cancel: threading.Event | None = None,
) -> CompletionResult:
    """Run every stage for one request; `cancel` stops generation between tokens."""
    options = options or CompletionOptions()
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
    raw = generate(engine, prompt.ids, params, single_line_stop, cancel)
    t3 = time.monotonic()
    text = clean_single_line(raw.text, context)
    t4 = time.monotonic()
    timings = {
        "context": (t1 - t0) * 1000,
        "prompt": (t2 - t1) * 1000,
        "first_token": raw.first_token_ms or 0.0,
        "generate": (t3 - t2) * 1000,
        "postprocess": (t4 - t3) * 1000,
        "total": (t4 - t0) * 1000,
    }
    return CompletionResult(text, raw.stop_reason, len(prompt.ids), raw.tokens, timings)
