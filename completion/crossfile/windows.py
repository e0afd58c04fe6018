"""Windows of other open documents most like the lines above the cursor (Jaccard)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from completion.crossfile.common import (
    CrossfileOptions,
    Lru,
    Snippet,
    display_path,
    identifiers,
    usable,
)
from completion.document import Document


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def windows(lines: list[str], size: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) line ranges of `size` lines every `stride` lines, the last one flush."""
    if not lines:
        return []
    size, stride = max(1, size), max(1, stride)
    if len(lines) <= size:
        return [(0, len(lines))]
    starts = list(range(0, len(lines) - size + 1, stride))
    if starts[-1] + size < len(lines):
        starts.append(len(lines) - size)
    return [(s, s + size) for s in starts]


_WINDOW_CACHE = Lru(64)


def _document_windows(
    doc: Document, size: int, stride: int
) -> tuple[list[str], list[tuple[int, int, frozenset[str]]]]:
    """A document's lines and windows with their identifier sets (cached on the text)."""
    key = (doc.path, len(doc.text), hash(doc.text), size, stride)
    found = _WINDOW_CACHE.get(key)
    if found is None:
        lines = doc.text.splitlines()
        spans = [
            (s, e, frozenset(identifiers("\n".join(lines[s:e]))))
            for s, e in windows(lines, size, stride)
        ]
        found = (lines, spans)
        _WINDOW_CACHE.put(key, found)
    return found  # type: ignore[no-any-return]


def best_windows(
    query: set[str],
    documents: Iterable[Document],
    language: str,
    options: CrossfileOptions,
    root: str | None = None,
    deadline: float | None = None,
) -> tuple[list[Snippet], bool]:
    """The windows most similar to `query`, at most `max_windows`, not overlapping.

    Documents of another language count at `other_language_penalty` of their score. Returns
    the snippets and whether the deadline cut the search short.
    """
    scored: list[tuple[float, Document, int, int, list[str]]] = []
    timed_out = False
    for doc in documents:
        if deadline is not None and time.monotonic() > deadline:
            timed_out = True
            break
        if not usable(doc.text):
            continue
        factor = 1.0 if doc.language == language else options.other_language_penalty
        lines, spans = _document_windows(doc, options.window_lines, options.window_stride)
        for s, e, ids in spans:
            score = jaccard(query, ids) * factor
            if score >= options.min_score:
                scored.append((score, doc, s, e, lines))
    scored.sort(key=lambda x: -x[0])
    chosen: list[Snippet] = []
    for score, doc, s, e, lines in scored:
        if len(chosen) >= options.max_windows:
            break
        shown = display_path(doc.path, root) or doc.path
        if any(c.path == shown and c.start < e and s < c.end for c in chosen):
            continue
        text = "\n".join(lines[s:e])
        chosen.append(Snippet(shown, s, e, text, score, "window"))
    return chosen, timed_out
