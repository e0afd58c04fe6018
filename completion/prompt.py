"""Prompt stage: the model's fill-in-the-middle prompt under a token budget."""

from __future__ import annotations

from dataclasses import dataclass

from completion.context import Context
from completion.engine import Engine


@dataclass(frozen=True)
class PromptBudget:
    """Token budget of the prompt, split between the two sides of the cursor."""

    prefix_tokens: int = 384
    suffix_tokens: int = 128


# The cursor's line is kept whole up to this many characters (nearest the cursor).
MAX_LINE_CHARS = 400


@dataclass(frozen=True)
class Prompt:
    """Token ids for the engine, and the text each side kept.

    `ids[:static_len]` is the stable head of the prompt: the FIM prefix marker and the lines
    above the cursor's line. It stays identical while the user types on one line, so the
    engine can cache the model state after it.
    """

    ids: list[int]
    prefix: str
    suffix: str
    static_len: int = 0


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


def fit_prefix(engine: Engine, prefix: str, budget: int) -> str:
    """The end of `prefix` that fits `budget`, cut at line boundaries."""
    lines = prefix.splitlines(keepends=True)
    return "".join(reversed(_keep_lines(engine, lines[::-1], budget, tail=True)))


def fit_suffix(engine: Engine, suffix: str, budget: int) -> str:
    """The start of `suffix` that fits `budget`, cut at line boundaries."""
    return "".join(_keep_lines(engine, suffix.splitlines(keepends=True), budget, tail=False))


def build_prompt(
    context: Context, engine: Engine, budget: PromptBudget | None = None, preamble: str = ""
) -> Prompt:
    """`<prefix marker>preamble prefix<suffix marker>suffix<middle marker>` as ids (PSM order).

    `preamble` (cross-file blocks, a path header: comments) goes first, so that it is part of
    the stable head; its tokens come out of the prefix budget. The prefix is encoded in two
    pieces, the lines above the cursor (under the prefix budget, cut at line boundaries) and
    the cursor's own line, so that the first piece is a stable token prefix while the user
    types.
    """
    budget = budget or PromptBudget()
    cut = context.prefix.rfind("\n") + 1
    prefix_tokens = budget.prefix_tokens
    if preamble:
        prefix_tokens = max(0, prefix_tokens - len(engine.encode(preamble)))
    above = preamble + fit_prefix(engine, context.prefix[:cut], prefix_tokens)
    line = context.prefix[cut:][-MAX_LINE_CHARS:]
    fim = engine.fim
    if fim is None:  # a model without FIM tokens sees the prefix only
        head = engine.encode(above)
        return Prompt(head + engine.encode(line), above + line, "", len(head))
    suffix = fit_suffix(engine, context.suffix, budget.suffix_tokens)
    marker = {t: engine.token_id(t) for t in (fim.prefix, fim.suffix, fim.middle)}
    missing = [t for t, i in marker.items() if i is None]
    if missing:
        raise ValueError(f"the model's vocabulary lacks the FIM tokens {missing}")
    head = [int(marker[fim.prefix] or 0), *engine.encode(above)]
    tail = [*engine.encode(line), int(marker[fim.suffix] or 0), *engine.encode(suffix)]
    return Prompt([*head, *tail, int(marker[fim.middle] or 0)], above + line, suffix, len(head))
