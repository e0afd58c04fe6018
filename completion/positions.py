"""Position encodings, converted once at the boundary.

LSP positions count UTF-16 code units by default; Python strings index code points. Positions
past the end of a line or of the document are clamped, never an error.
"""

from __future__ import annotations

import re


def _utf16_len(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


_BREAK = re.compile(r"\r\n|\r|\n")


def line_starts(text: str) -> list[int]:
    """Code-point offsets where each line begins (LF, CRLF and CR end lines)."""
    return [0, *(m.end() for m in _BREAK.finditer(text))]


def _line_span(text: str, line: int) -> tuple[int, int] | None:
    """(start, end of content) of a line, or None past the last line; scans only up to it."""
    start = 0
    breaks = _BREAK.finditer(text)
    for _ in range(line):
        m = next(breaks, None)
        if m is None:
            return None
        start = m.end()
    m = next(breaks, None)
    return start, len(text) if m is None else m.start()


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Code-point offset of an LSP position (clamped to the document)."""
    if line < 0:
        return 0
    span = _line_span(text, line)
    if span is None:
        return len(text)
    start, end = span
    if encoding == "utf-32":
        return min(start + max(character, 0), end)
    units = 0
    i = start
    while i < end and units < character:
        units += len(text[i].encode("utf-8")) if encoding == "utf-8" else _utf16_len(text[i])
        if units > character:  # inside a surrogate pair or multi-byte char: stay before it
            break
        i += 1
    return i


def position_at(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    """LSP (line, character) of a code-point offset."""
    offset = max(0, min(offset, len(text)))
    starts = line_starts(text)
    lo, hi = 0, len(starts) - 1
    while lo < hi:  # last line start <= offset
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    segment = text[starts[lo] : offset]
    if encoding == "utf-32":
        return lo, len(segment)
    if encoding == "utf-8":
        return lo, len(segment.encode("utf-8"))
    return lo, sum(_utf16_len(c) for c in segment)
