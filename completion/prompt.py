"""Prompt stage: the model's fill-in-the-middle prompt under a token budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from completion.context import Context
from completion.engines.interface import Engine
from completion.models.specs import FimOrder, PromptBudget

# The cursor's line is kept whole up to this many characters (nearest the cursor).
MAX_LINE_CHARS = 400


@dataclass(frozen=True)
class Prompt:
    """Token ids for the engine, and the text each side kept.

    `ids[:static_len]` is the stable head of the prompt: the markers, the suffix window
    (suffix-first order) and the lines above the last checkpoint. It stays identical while
    the user types forward below the checkpoint, so the engine can cache the model state
    after it.
    """

    ids: list[int]
    prefix: str
    suffix: str
    static_len: int = 0
    # Blanks at the end of the cursor's line left out of the prompt (`return |`): the model
    # writes them with the next word (` a`, one token), so its output starts with them.
    healed: str = ""


# The head of the prefix ends at a line whose number (in the document's text before the
# cursor) is a multiple of this, so it moves in chunks while the user types forward: within
# a chunk only the lines since the checkpoint and the cursor's line are new to the model.
# 8 lines: the head is reused for about 8 line ends, and the uncached tail stays short
# (typing replay of stdlib code, suffix-first head: first token p50 145 ms against 334 ms
# with the whole prompt every time, ../docs/latency.md).
CHECKPOINT_LINES = 8


def _keep_lines(engine: Engine, lines: list[str], budget: int, *, tail: bool) -> list[str]:
    """The lines, in order, that fit `budget`; a first line too long keeps its near end."""
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = len(engine.encode(line))
        if used + cost > budget:
            if not kept:  # one huge line: keep the characters closest to the cursor
                chars = max(1, budget * 3)
                kept.append(line[-chars:] if tail else line[:chars])
            break
        kept.append(line)
        used += cost
    return kept


# The window above the checkpoint starts at a line whose number is a multiple of this, so
# it moves in steps too: when the checkpoint moves, the head's old tokens stay its first
# ones and an engine that reuses a cached common prefix (llama.cpp) computes only the new
# lines, not the whole window again. The window is then between the budget less one step
# and the budget; a step that does not fit the budget falls back to the plain window.
WINDOW_STEP_LINES = 32


def fit_prefix(engine: Engine, prefix: str, budget: int) -> str:
    """The end of `prefix` that fits `budget`, cut at line boundaries.

    It starts at a multiple of `WINDOW_STEP_LINES` (counted from the start of `prefix`)
    where one falls inside the window that fits.
    """
    lines = prefix.splitlines(keepends=True)
    kept = _keep_lines(engine, lines[::-1], budget, tail=True)
    first = len(lines) - len(kept)
    start = -(-first // WINDOW_STEP_LINES) * WINDOW_STEP_LINES
    if first < start < len(lines):
        return "".join(lines[start:])
    return "".join(reversed(kept))


def fit_suffix(engine: Engine, suffix: str, budget: int) -> str:
    """The start of `suffix` that fits `budget`, cut at line boundaries."""
    return "".join(_keep_lines(engine, suffix.splitlines(keepends=True), budget, tail=False))


def heal_blanks(line: str) -> str:
    """The blanks ending the cursor's line, which the prompt leaves out (token healing).

    BPE models write a space together with the word after it, so a prompt that ends in
    blanks is off the model's training distribution: after `return ` the 0.5B model wrote
    ` a + b` (a double space), and after an editor's auto-indent it wrote ` return` (one
    space too deep). On 60 single-line holes with the cursor after the indentation, the
    first line matched the reference 0 times without healing and 38 times with it, as
    often as with the cursor at column 0.
    """
    return line[len(line.rstrip(" \t")) :]


def strip_healed(text: str, healed: str) -> str:
    """The model's output without the blanks the prompt left out (see `heal_blanks`)."""
    if not healed:
        return text
    if text.startswith(healed):
        return text[len(healed) :]
    return "" if healed.startswith(text) else text


def healed_rule(rule: Callable[[str], int | None], healed: str) -> Callable[[str], int | None]:
    """`rule` judging the output as `strip_healed` leaves it, cutting the raw output."""
    if not healed:
        return rule

    def judged(text: str) -> int | None:
        shown = strip_healed(text, healed)
        cut = rule(shown)
        return None if cut is None else cut + len(text) - len(shown)

    return judged


def split_prefix(lines_above: str) -> tuple[str, str]:
    """Whole lines above the cursor's line as (those above the checkpoint, those after it)."""
    lines = lines_above.splitlines(keepends=True)
    checkpoint = len(lines) - len(lines) % CHECKPOINT_LINES
    return "".join(lines[:checkpoint]), "".join(lines[checkpoint:])


def build_prompt(
    context: Context,
    engine: Engine,
    budget: PromptBudget | None = None,
    preamble: str = "",
) -> Prompt:
    """The fill-in-the-middle prompt as ids, in the order of the model's family.

    Suffix-first: `<prefix marker><suffix marker>suffix<middle marker>preamble prefix`;
    PSM: `<prefix marker>preamble prefix<suffix marker>suffix<middle marker>`.
    `preamble` (cross-file blocks as comments) goes right before the prefix's code, inside
    the stable head; its tokens come out of the prefix budget. The prefix is encoded in two
    pieces: the lines above the checkpoint (`split_prefix`, under the prefix budget, cut at
    line boundaries), which stay a stable token prefix while the user types forward, and
    the rest up to the cursor. Without `budget`, the windows of the engine's model family.
    """
    budget = budget or engine.family.windows
    cut = context.prefix.rfind("\n") + 1
    above, recent = split_prefix(context.prefix[:cut])
    extra = len(engine.encode(preamble)) if preamble else 0
    prefix_tokens = max(0, budget.prefix_tokens - extra)
    above = preamble + fit_prefix(engine, above, prefix_tokens)
    line = context.prefix[cut:][-MAX_LINE_CHARS:]
    healed = heal_blanks(line)
    near = recent + line[: len(line) - len(healed)]
    fim = engine.fim
    if fim is None:  # a model without FIM tokens sees the prefix only
        head = engine.encode(above)
        return Prompt(head + engine.encode(near), above + near, "", len(head), healed)
    suffix = fit_suffix(engine, context.suffix, budget.suffix_tokens)
    marker = {t: engine.token_id(t) for t in (fim.prefix, fim.suffix, fim.middle)}
    missing = [t for t, i in marker.items() if i is None]
    if missing:
        raise ValueError(f"the model's vocabulary lacks the FIM tokens {missing}")
    pre, suf, mid = (int(marker[t] or 0) for t in (fim.prefix, fim.suffix, fim.middle))
    if fim.order is FimOrder.SUFFIX_FIRST:
        head = [pre, suf, *engine.encode(suffix), mid, *engine.encode(above)]
        ids = [*head, *engine.encode(near)]
    else:
        head = [pre, *engine.encode(above)]
        ids = [*head, *engine.encode(near), suf, *engine.encode(suffix), mid]
    return Prompt(ids, above + near, suffix, len(head), healed)
