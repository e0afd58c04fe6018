"""The one entry point shared by the server, the CLI and the benchmark.

document snapshot -> context -> prompt -> generate -> postprocess -> completion text.
Its options, and their `--set` syntax, are in completion/options.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from completion import crossfile, gate
from completion.context import Context, extract_context
from completion.document import Document
from completion.engines.interface import Engine, GenerationParams
from completion.generate import generate
from completion.lines import opens_block
from completion.models.specs import PromptBudget
from completion.options import CompletionOptions
from completion.postprocess import PostOptions, postprocess
from completion.prompt import Prompt, build_prompt, healed_rule, strip_healed
from completion.stops import RULE, StopReason, StopRule
from completion.trigger import Mode, should_complete


@dataclass(frozen=True)
class CompletionRequest:
    """A document snapshot and a cursor (code-point offset).

    `documents` are other documents the editor holds (most recently used first) and `root`
    the workspace folder: the sources of cross-file context. `path` should be absolute for
    imports to resolve.
    """

    text: str
    offset: int
    language: str = "python"
    path: str | None = None
    documents: tuple[Document, ...] = ()
    root: str | None = None


@dataclass(frozen=True)
class CompletionResult:
    """What to show (possibly empty) and what it cost."""

    text: str
    stop_reason: str
    prompt_tokens: int = 0
    generated_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    crossfile: tuple[str, ...] = ()  # the cross-file snippets in the prompt (`path:lines`)
    raw: str = ""  # the model's output as the stop rule left it, before post-processing
    mode: str = ""  # the trigger's decision: none, single or multi
    reused_tokens: int = 0  # of `prompt_tokens`, those whose model state the engine had cached
    # The post-processed answer before the gate: `text` when the gate shows it whole, its
    # first line when only that passed, "" shown when the gate hid it (gate.py).
    answer: str = ""
    verdict: gate.Verdict | None = None  # the gate on `answer` (None: empty)
    line_verdict: gate.Verdict | None = None  # the gate on a block's first line alone
    log_probs: tuple[float, ...] = ()  # of each generated token
    first_line: str = ""  # a block's first line, post-processed as a line (`line_verdict`'s)

    @property
    def gated(self) -> bool:
        """True when the gate hid some or all of the answer."""
        return self.text != self.answer


@dataclass(frozen=True)
class _Prepared:
    """The stages before generation, shared by `complete` and `complete_samples`."""

    context: Context
    mode: Mode
    prompt: Prompt
    params: GenerationParams
    stop_rule: StopRule
    post: PostOptions
    context_ms: float
    prompt_ms: float
    trigger_ms: float = 0.0
    crossfile_ms: float = 0.0
    crossfile: tuple[str, ...] = ()
    gate_model: gate.GateModel | None = None  # fitted on the engine's runtime's log-probs


def _prepare(
    engine: Engine, request: CompletionRequest, options: CompletionOptions, warm: bool = False
) -> _Prepared:
    """Context, trigger and prompt stages, timed, and the generation parameters.

    `warm`: the prompt is wanted whatever the trigger says (`warm`), cross-file part included.
    """
    t0 = time.monotonic()
    context = extract_context(request.text, request.offset, request.language, request.path)
    tc = time.monotonic()
    mode = should_complete(context, options.trigger)
    t1 = time.monotonic()
    budget = options.budget(engine.family.windows)
    wanted = warm or mode is not Mode.NONE
    extra = _crossfile(engine, request, context, options, budget) if wanted else None
    tx = time.monotonic()
    prompt = build_prompt(context, engine, budget, extra.text if extra else "")
    t2 = time.monotonic()
    multi = mode is Mode.MULTI
    params = GenerationParams(
        max_new_tokens=options.multiline_max_new_tokens if multi else options.max_new_tokens,
        time_budget_s=options.time_budget_s,
        temperature=options.temperature,
        seed=options.seed,
    )
    post = options.post_for(multi)
    return _Prepared(
        context,
        mode,
        prompt,
        params,
        healed_rule(options.stop_rule(context, mode), prompt.healed),
        post,
        (tc - t0) * 1000,
        (t2 - tx) * 1000,
        (t1 - tc) * 1000,
        (tx - t1) * 1000,
        tuple(s.describe() for s in extra.snippets) if extra else (),
        gate.shipped_model(engine.runtime),
    )


def _crossfile_budget(budget: PromptBudget, share: float) -> int:
    """Tokens cross-file context may take: a share of the context budget, at most the prefix's."""
    total = budget.prefix_tokens + budget.suffix_tokens
    return min(int(share * total), budget.prefix_tokens)


def _crossfile(
    engine: Engine,
    request: CompletionRequest,
    context: Context,
    options: CompletionOptions,
    budget: PromptBudget,
) -> crossfile.Crossfile | None:
    """Cross-file blocks for the prompt, or None when switched off or without sources."""
    windows = options.crossfile and bool(request.documents)
    imports = options.imports and bool(request.path) and os.path.isabs(request.path or "")
    if not (windows or imports):
        return None
    return crossfile.collect(
        request.text,
        context.prefix,
        context.suffix,
        context.language,
        request.path,
        request.documents[: crossfile.MAX_DOCUMENTS] if windows else (),
        request.root,
        crossfile.CrossfileOptions(
            windows=windows,
            imports=imports,
            budget_tokens=_crossfile_budget(budget, options.crossfile_share),
            time_budget_ms=options.crossfile_ms,
        ),
        lambda text: len(engine.encode(text)),
    )


def _timings(
    prep: _Prepared, first_token_ms: float | None, generate_ms: float, post_ms: float
) -> dict[str, float]:
    """Per-stage milliseconds in the order the stages run."""
    return {
        "context": prep.context_ms,
        "trigger": prep.trigger_ms,
        "crossfile": prep.crossfile_ms,
        "prompt": prep.prompt_ms,
        "first_token": first_token_ms or 0.0,
        "generate": generate_ms,
        "postprocess": post_ms,
        "total": prep.context_ms
        + prep.trigger_ms
        + prep.crossfile_ms
        + prep.prompt_ms
        + generate_ms
        + post_ms,
    }


def first_line(text: str) -> str | None:
    """The output's first line once its line break has arrived, when it holds code.

    An output that opens with a line break (the cursor at the end of a line with code, the
    block on the lines below) has the first line with code below as its first line, with
    the break(s) before it: the user sees it on the next line at once, not after the block.
    """
    body = _LEADING_BLANK_LINES.sub("", text, count=1)
    end = body.find("\n")
    if end <= 0 or not body[:end].strip():
        return None
    return text[: len(text) - len(body) + end]


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


# gets a block's first line as soon as it is written and shown, with the gate's verdict on it
OnFirstLine = Callable[[str, gate.Verdict | None], None]


@dataclass
class _FirstLine:
    """A block's first line as the watch saw it: post-processed as a line, and gated alone."""

    seen: bool = False
    text: str = ""  # "" when it opens a block or post-processing left nothing
    verdict: gate.Verdict | None = None


def _gate(
    text: str,
    raw: str,
    log_probs: Sequence[float],
    stop_reason: str,
    prep: _Prepared,
    options: CompletionOptions,
) -> gate.Verdict | None:
    """The gate's verdict on an answer of this request (gate.assess)."""
    return gate.assess(
        text,
        raw,
        tuple(log_probs),
        stop_reason,
        prep.mode.value,
        prep.context,
        options.gate,
        options.gate_shift,
        prep.gate_model,
    )


def _first_line_watch(
    prep: _Prepared, options: CompletionOptions, on_first_line: OnFirstLine | None
) -> tuple[Callable[[str, Sequence[float]], None], _FirstLine]:
    """Post-processes and gates a block's first line once it is written.

    The line goes to `on_first_line` (with the gate's verdict on it, None when unscored)
    when the gate shows it; a first line that opens a block (`if n < 0:`) goes too, as a
    preview of its block (`_preview_header`), but is never kept as an answer alone. The
    state returned is what `complete` falls back to when the gate hides the whole block.
    """
    state = _FirstLine()
    post = options.post_for(False)

    def watch(text: str, log_probs: Sequence[float]) -> None:
        line = None if state.seen else first_line(strip_healed(text, prep.prompt.healed))
        if line is None:
            return
        state.seen = True
        below = "\n" in line  # the first line of a block that starts on the next line
        header = line.lstrip("\n") if below else prep.context.line_prefix + line
        if opens_block(header, prep.context.syntax):
            _preview_header(line, below, log_probs, prep, options, on_first_line)
            return
        # a line below is a one-line block (its indent checked against the code around)
        shown = postprocess(line, prep.context, RULE, options.post_for(True) if below else post)
        if not shown:
            return
        state.text = shown
        state.verdict = _gate(shown, line, log_probs, RULE, prep, options)
        if on_first_line is not None and (state.verdict is None or state.verdict.shown):
            on_first_line(shown, state.verdict)

    return watch, state


def _preview_header(
    line: str,
    below: bool,
    log_probs: Sequence[float],
    prep: _Prepared,
    options: CompletionOptions,
    on_first_line: OnFirstLine | None,
) -> None:
    """Show a block's header (`for i in range(n):`) while its body is written.

    The user sees where the block goes at once instead of after the whole block (4-8 s in
    the editors under a docstring); Tab takes it and the body follows from the same
    generation (cache, reuse). It is a preview only: never an answer alone, so it is not
    the fallback when the gate hides the block (`_FirstLine.text` stays empty), and it is
    not cut for leaving the code unparsed (or a block without its body) until the body comes.
    """
    if on_first_line is None:
        return
    post = dataclasses.replace(
        options.post_for(below), keep_parse=False, syntax=False, indent_fit=False
    )
    shown = postprocess(line, prep.context, RULE, post)
    if not shown or shown.strip() != line.strip():
        return  # post-processing changed it: wait for the block
    verdict = _gate(shown, line, log_probs, RULE, prep, options)
    if verdict is None or verdict.shown:
        on_first_line(shown, verdict)


def _shown(answer: str, verdict: gate.Verdict | None, line: _FirstLine | None) -> str:
    """What the gate lets through: the answer, a block's first line alone, or nothing."""
    if verdict is None or verdict.shown:
        return answer
    if line is None or line.verdict is None or not line.verdict.shown:
        return ""
    return line.text if answer.startswith(line.text) else ""


def complete(
    engine: Engine,
    request: CompletionRequest,
    options: CompletionOptions | None = None,
    cancel: threading.Event | None = None,
    on_first_line: OnFirstLine | None = None,
) -> CompletionResult:
    """Run every stage for one request; `cancel` stops generation between tokens.

    `on_first_line` gets a block's first line as soon as it is written (from the thread
    generating), so that a caller can show it while the rest of the block is generated.
    The gate (gate.py) decides last: the answer, a block's first line alone, or nothing.
    """
    options = options or CompletionOptions()
    prep = _prepare(engine, request, options)
    if prep.mode is Mode.NONE:
        return CompletionResult(
            "", "trigger", 0, 0, _timings(prep, None, 0.0, 0.0), mode=prep.mode.value
        )
    watch, line = None, None
    if prep.mode is Mode.MULTI:
        watch, line = _first_line_watch(prep, options, on_first_line)
    t2 = time.monotonic()
    raw = generate(
        engine,
        prep.prompt.ids,
        prep.params,
        prep.stop_rule,
        cancel,
        prep.prompt.static_len if options.prompt_cache else 0,
        watch,
    )
    t3 = time.monotonic()
    shown = strip_healed(raw.text, prep.prompt.healed)
    answer = postprocess(shown, prep.context, raw.stop_reason, prep.post)
    verdict = _gate(answer, shown, raw.log_probs, raw.stop_reason, prep, options)
    t4 = time.monotonic()
    timings = _timings(prep, raw.first_token_ms, (t3 - t2) * 1000, (t4 - t3) * 1000)
    return CompletionResult(
        _shown(answer, verdict, line),
        raw.stop_reason,
        len(prep.prompt.ids),
        raw.tokens,
        timings,
        prep.crossfile,
        shown,
        prep.mode.value,
        raw.reused_tokens,
        answer,
        verdict,
        line.verdict if line else None,
        raw.log_probs,
        line.text if line else "",
    )


@dataclass(frozen=True)
class Warmed:
    """What `warm` computed: the prompt's tokens, those the engine already held, the time."""

    prompt_tokens: int
    reused_tokens: int
    cancelled: bool
    ms: float


def warm(
    engine: Engine,
    request: CompletionRequest,
    options: CompletionOptions | None = None,
    cancel: threading.Event | None = None,
) -> Warmed:
    """Compute the prompt at a cursor where the user is about to type, and show nothing.

    The first request in a place computes its whole prompt (500-1,000 tokens, seconds on a
    CPU). The engine keeps what it computed (llama.cpp's context, CTranslate2's cached head,
    a server's prompt cache), and a keystroke at this cursor changes only the prompt's last
    tokens (the suffix comes first), so the request after it computes only what was typed.
    `cancel` stops the pass between two chunks; what was computed stays.
    """
    options = options or CompletionOptions()
    t0 = time.monotonic()
    prep = _prepare(engine, request, options, warm=True)
    params = GenerationParams(max_new_tokens=1, time_budget_s=options.time_budget_s)
    static_len = prep.prompt.static_len if options.prompt_cache else 0
    stream = engine.stream(prep.prompt.ids, params, cancel, static_len)
    try:
        next(iter(stream), None)  # the prompt pass happens at the first token
    finally:
        stream.close()
    return Warmed(
        len(prep.prompt.ids),
        stream.reused_tokens,
        stream.reason == StopReason.CANCELLED,
        (time.monotonic() - t0) * 1000,
    )


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
    if prep.mode is Mode.NONE:
        none = CompletionResult(
            "", "trigger", 0, 0, _timings(prep, None, 0.0, 0.0), mode=prep.mode.value
        )
        return [none] * n
    t2 = time.monotonic()
    samples = engine.sample(prep.prompt.ids, prep.params, n, prep.stop_rule, cancel)
    generate_ms = (time.monotonic() - t2) * 1000
    results = []
    for hyp in samples.hypotheses:
        t3 = time.monotonic()
        shown = strip_healed(hyp.text, prep.prompt.healed)
        answer = postprocess(shown, prep.context, hyp.reason, prep.post)
        verdict = _gate(answer, shown, hyp.log_probs, hyp.reason, prep, options)
        post_ms = (time.monotonic() - t3) * 1000
        timings = _timings(prep, samples.first_token_ms, generate_ms, post_ms)
        results.append(
            CompletionResult(
                _shown(answer, verdict, None),
                hyp.reason,
                len(prep.prompt.ids),
                len(hyp.ids),
                timings,
                prep.crossfile,
                shown,
                prep.mode.value,
                answer=answer,
                verdict=verdict,
                log_probs=hyp.log_probs,
            )
        )
    return results
