"""Position encodings, converted once at the boundary.

LSP positions count UTF-16 code units by default; Python strings index code points. Positions
past the end of a line or of the document are clamped, never an error.
"""

from __future__ import annotations


def _utf16_len(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def line_starts(text: str) -> list[int]:
    """Code-point offsets where each line begins (LF, CRLF and CR end lines)."""
    starts = [0]
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\r" and i + 1 < n and text[i + 1] == "\n":
            i += 1
            starts.append(i + 1)
        elif ch in "\r\n":
            starts.append(i + 1)
        i += 1
    return starts


def _line_end(text: str, start: int, next_start: int) -> int:
    """End of a line's content (before its line break)."""
    end = next_start
    if end > start and text[end - 1] == "\n":
        end -= 1
    if end > start and text[end - 1] == "\r":
        end -= 1
    return end


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Code-point offset of an LSP position (clamped to the document)."""
    starts = line_starts(text)
    if line < 0:
        return 0
    if line >= len(starts):
        return len(text)
    start = starts[line]
    end = _line_end(text, start, starts[line + 1] if line + 1 < len(starts) else len(text))
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
