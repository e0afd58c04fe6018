"""Assembly: the snippets chosen under the token budget, as comment blocks for the prompt."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable

from completion.crossfile.common import (
    MIN_WINDOW_LINES,
    Crossfile,
    CrossfileOptions,
    Snippet,
    identifiers,
)
from completion.crossfile.definitions import imported_definitions
from completion.crossfile.windows import best_windows
from completion.document import Document
from completion.languages import comment


def format_snippet(snippet: Snippet, language: str) -> str:
    """A snippet as a comment block under a path header."""
    return _header(snippet, language) + _body(snippet.text, language)


def _meaningful(line: str) -> bool:
    s = line.strip()
    return len(s) >= 4 and not s.startswith(("#", "//"))


def duplicated(snippet: Snippet, prompt_lines: set[str], threshold: float = 0.5) -> bool:
    """Whether at least `threshold` of the snippet's code lines are already in the prompt."""
    lines = [line.strip() for line in snippet.text.splitlines() if _meaningful(line)]
    if not lines:
        return True
    return sum(line in prompt_lines for line in lines) / len(lines) >= threshold


def _fit_window(
    snippet: Snippet,
    query: set[str],
    budget: int,
    count: Callable[[str], int],
    language: str,
) -> Snippet | None:
    """The contiguous part of a window with the most query identifiers that fits `budget`."""
    lines = snippet.text.splitlines()
    whole = count(format_snippet(snippet, language))
    if whole <= budget:
        return snippet
    per_char = whole / max(1, sum(len(x) + 3 for x in lines))
    cost = [(len(x) + 3) * per_char for x in lines]
    gain = [len(identifiers(x) & query) for x in lines]
    header = count(comment(f"Compare this snippet from {snippet.path}:", language) + "\n")
    room = budget - header
    best, best_span, lo, total_cost, total_gain = -1, (0, 0), 0, 0.0, 0
    for hi, (c, g) in enumerate(zip(cost, gain, strict=True)):
        total_cost += c
        total_gain += g
        while total_cost > room and lo <= hi:
            total_cost -= cost[lo]
            total_gain -= gain[lo]
            lo += 1
        if lo <= hi and total_gain > best:
            best, best_span = total_gain, (lo, hi + 1)
    s, e = best_span
    while e - s >= MIN_WINDOW_LINES:
        cut = Snippet(
            snippet.path,
            snippet.start + s,
            snippet.start + e,
            "\n".join(lines[s:e]),
            snippet.score,
            "window",
        )
        if count(format_snippet(cut, language)) <= budget:
            return cut if best > 0 else None
        e -= 1
    return None


def assemble(
    candidates: list[Snippet],
    language: str,
    budget: int,
    count: Callable[[str], int],
    prompt_lines: set[str],
    query: set[str],
    estimate: Callable[[str], int] | None = None,
) -> tuple[list[Snippet], int]:
    """The candidates (in priority order) that fit `budget` tokens, without duplicates.

    A window too large for what is left is cut to its most relevant part; a definition too
    large takes its compact form, or is skipped. Snippets of one file share one path header.
    Selection may use a cheap `estimate` of the token count: the result is counted once with
    `count`, selected again with the estimate rescaled when it was over, and trimmed from
    the end if still over. Returns the kept snippets and the token count of their blocks.
    """
    pick = estimate or count
    kept = _select(candidates, language, budget, pick, prompt_lines, query)
    used = count(format_blocks(kept, language)) if kept else 0
    if estimate is not None and used > budget:
        scale = used / max(1, estimate(format_blocks(kept, language)))
        rescaled = lambda text: int(estimate(text) * scale) + 1  # noqa: E731
        kept = _select(candidates, language, budget, rescaled, prompt_lines, query)
        used = count(format_blocks(kept, language)) if kept else 0
    while kept and used > budget:
        kept.pop()  # token merges across lines made the sum an underestimate
        used = count(format_blocks(kept, language)) if kept else 0
    return kept, used


def _select(
    candidates: list[Snippet],
    language: str,
    budget: int,
    count: Callable[[str], int],
    prompt_lines: set[str],
    query: set[str],
) -> list[Snippet]:
    kept: list[Snippet] = []
    used = 0
    for cand in candidates:
        left = budget - used
        if left < 8:
            break
        if duplicated(cand, prompt_lines):
            continue
        if any(k.path == cand.path and k.start < cand.end and cand.start < k.end for k in kept):
            continue  # overlaps what is already in (a definition inside a chosen window)
        header = 0 if any(k.path == cand.path for k in kept) else count(_header(cand, language))
        cost = header + count(_body(cand.text, language))
        if cost > left and cand.compact:
            cand = dataclasses.replace(cand, text=cand.compact, compact="")
            cost = header + count(_body(cand.text, language))
        if cost > left and cand.source == "window":
            fitted = _fit_window(cand, query, left, count, language)
            if fitted is not None:
                cand, cost = fitted, count(format_snippet(fitted, language))
        if cost > left:
            continue
        kept.append(cand)
        used += cost
    return kept


def estimate_tokens(text: str) -> int:
    """A token count guessed from the length (checked with the tokenizer afterwards).

    Code and comments run 3 or more characters a token in code models' vocabularies.
    """
    return len(text) // 3 + 1


def _header(snippet: Snippet, language: str) -> str:
    return comment(f"Compare this snippet from {snippet.path}:", language) + "\n"


def _body(text: str, language: str) -> str:
    return "".join(comment(line.rstrip(), language) + "\n" for line in text.splitlines())


def format_blocks(snippets: list[Snippet], language: str) -> str:
    """Snippets as comment blocks, in order.

    Consecutive snippets of one file share a header and are separated by an empty comment.
    """
    out: list[str] = []
    previous = None
    for snip in snippets:
        if snip.path == previous:
            out.append(comment("", language) + "\n")
        else:
            out.append(_header(snip, language))
        out.append(_body(snip.text, language))
        previous = snip.path
    return "".join(out)


def collect(
    text: str,
    prefix: str,
    suffix: str,
    language: str,
    path: str | None,
    documents: Iterable[Document],
    root: str | None,
    options: CrossfileOptions,
    count: Callable[[str], int],
) -> Crossfile:
    """Cross-file blocks for a cursor, as text for the top of the prompt.

    `text` is the whole document, `prefix`/`suffix` what the prompt may hold of it; `count`
    gives a string's token count. Priority: definitions of names used near the cursor, then
    windows, then the other definitions; in the text, windows come first and definitions last
    (nearest the code), the most relevant of each last. Never raises on bad input files.
    """
    if options.budget_tokens <= 0 or not (options.windows or options.imports):
        return Crossfile()
    deadline = time.monotonic() + options.time_budget_ms / 1000
    above = prefix[: prefix.rfind("\n") + 1]  # the cursor's own line left out: stable
    near_lines = above.splitlines()[-options.query_lines :]
    query = identifiers("\n".join(near_lines))
    here = os.path.abspath(path) if path else None
    docs = [d for d in documents if not (here and d.path and os.path.abspath(d.path) == here)]
    timed_out = False
    defs: list[Snippet] = []
    if options.imports and language == "python":
        open_docs = {os.path.abspath(d.path): d.text for d in docs if d.path}
        near = "\n".join(near_lines) + prefix[len(above) :] + suffix[:400]
        defs, timed_out = _guard(
            lambda: imported_definitions(
                text, near, path, root, open_docs, deadline, usage=prefix[-8000:] + suffix[:4000]
            )
        )
    wins: list[Snippet] = []
    if options.windows and not timed_out and query:
        wins, timed_out = _guard(
            lambda: best_windows(query, docs, language, options, root, deadline)
        )
    prompt_lines = {line.strip() for line in (prefix + "\n" + suffix).splitlines()}
    near_defs = [d for d in defs if d.score >= 1.0]
    far_defs = [d for d in defs if d.score < 1.0]
    kept, used = assemble(
        [*near_defs, *wins, *far_defs],
        language,
        options.budget_tokens,
        count,
        prompt_lines,
        query,
        estimate_tokens,
    )
    # the most relevant block goes last, nearest the code: windows, then definitions (by file)
    best: dict[str, float] = {}
    for snip in kept:
        best[snip.path] = max(best.get(snip.path, 0.0), snip.score)
    order = sorted(kept, key=lambda s: (s.source != "window", best[s.path], s.path, s.score))
    body = format_blocks(order, language)
    return Crossfile(body, tuple(order), used, timed_out)


def _guard(
    fn: Callable[[], tuple[list[Snippet], bool]],
) -> tuple[list[Snippet], bool]:
    """Cross-file context is optional: an unexpected failure gives nothing, not an error."""
    try:
        return fn()
    except (OSError, ValueError, RecursionError, UnicodeError):
        return [], False
