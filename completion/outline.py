"""The file's imports and the headers around the cursor, which a cut prefix window loses.

In a file of hundreds of lines the prefix window starts mid-way: the model no longer sees
which names the file imports, nor the `class` and `def` lines it is inside. These lines go
back in, in file order, before the window (`prompt.build_prompt` keeps only those above
the window's first line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IMPORT = re.compile(r"(?:import|from)\s+[\w.]")
_HEADER = re.compile(r"[ \t]*(?:async[ \t]+def|def|class)[ \t]+\w")
MAX_IMPORT_LINES = 60  # an import block longer than this keeps its first lines


@dataclass(frozen=True)
class OutlineLine:
    """One line of the file above the cursor: its row (0-based) and text (with its newline)."""

    row: int
    text: str
    header: bool  # an enclosing `def` or `class` line (else an import)


def outline(above: str, syntax: str) -> tuple[OutlineLine, ...]:
    """The top-level imports and enclosing headers in `above` (the text before the cursor).

    A parenthesised or backslash-continued import keeps all its lines. The headers are
    the nearest `def`/`class` line at each smaller indentation than the cursor's code,
    walking up. Other languages: nothing.
    """
    if syntax != "python":
        return ()
    lines = above.splitlines(keepends=True)
    if not lines:
        return ()
    picked: dict[int, bool] = {}
    imports = 0
    row = 0
    while row < len(lines) and imports < MAX_IMPORT_LINES:
        line = lines[row]
        if _IMPORT.match(line):
            end = row
            while end + 1 < len(lines) and _continues(lines[row : end + 1]):
                end += 1
            for r in range(row, end + 1):
                picked[r] = False
                imports += 1
            row = end + 1
            continue
        row += 1
    indent = _cursor_indent(lines)
    for r in range(len(lines) - 1, -1, -1):
        if indent == 0:
            break
        text = lines[r]
        if not text.strip():
            continue
        width = len(text) - len(text.lstrip(" \t"))
        if width < indent:
            indent = width
            if _HEADER.match(text):
                picked[r] = True
    return tuple(OutlineLine(r, lines[r], picked[r]) for r in sorted(picked))


def _continues(block: list[str]) -> bool:
    text = "".join(block)
    return text.count("(") > text.count(")") or text.rstrip("\r\n").endswith("\\")


def _cursor_indent(lines: list[str]) -> int:
    """The indentation of the code at the cursor: its line's, or the last non-empty line's."""
    for text in reversed(lines):
        if text.strip():
            width = len(text) - len(text.lstrip(" \t"))
            return width + 4 if text.rstrip().endswith(":") else width
    return 0
