"""How a line of code reads without a parse: depth, neighbours, brackets, block headers.

The trigger, the streaming block stop, post-processing and the server's next-line guess all
ask these questions of the text around the cursor; one home keeps their answers the same
(a tab is 4 columns everywhere, and a trailing comment never hides a header's `:` or `{`).
"""

from __future__ import annotations

import itertools
import re

from completion.languages import spec_for, strip_lexemes

TAB_WIDTH = 4
OPENERS = "([{"
CLOSERS = ")]}"
PAIRS = {")": "(", "]": "[", "}": "{"}

# A Python compound statement's header (it opens a block when it ends with `:`).
_PY_HEADER = re.compile(
    r"^\s*(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
# A `case x:` / `default:` label of a C-family `switch` (Go's `select` too) opens a body.
_CASE_LABEL = re.compile(r"^\s*(case\b.*|default\s*):$")


# A control header of a C-family language up to its condition's `(` (its body may follow
# without braces), and the headers that take no condition.
_BRACELESS = re.compile(r"^\s*(?:\}\s*)?(?:else\s+)?(?:if|for|while)\s*\(")
_BRACELESS_BARE = re.compile(r"^\s*(?:\}\s*)?(?:else|do)$")


def _braceless_header(code: str) -> bool:
    """`if (x)`, `} else`, `for (...)`: a header whose condition closes the line."""
    if _BRACELESS_BARE.match(code):
        return True
    start = _BRACELESS.match(code)
    if not start:
        return False
    depth = 0
    for i in range(start.end() - 1, len(code)):
        depth += (code[i] == "(") - (code[i] == ")")
        if depth == 0:
            return i == len(code) - 1
    return False


def indent_of(line: str) -> int:
    """Width of a line's leading blanks (a tab counts as `TAB_WIDTH`)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(TAB_WIDTH))


def code_above(prefix: str) -> str:
    """The last line with code above the cursor's line (`""` at the top of the file)."""
    return next(iter(code_lines_above(prefix, 1)), "")


def code_lines_above(prefix: str, n: int) -> list[str]:
    """The last `n` lines with code above the cursor's line, nearest first.

    Lazy: a long file's lines far above are never looked at.
    """
    lines = (s for s in reversed(prefix.split("\n")[:-1]) if s.strip())
    return list(itertools.islice(lines, n))


def braceless_body(line: str, header: str, language: str | None) -> bool:
    """Whether `line` is the one statement of a brace-less `header` (`if (x)` + `return;`).

    Its indentation is one level more than the code around it: it does not say how deep
    the code after it goes.
    """
    spec = spec_for(language)
    if spec is None or not spec.braceless or indent_of(line) <= indent_of(header):
        return False
    return _braceless_header(strip_lexemes(header, language).rstrip())


def code_below(suffix: str) -> list[str]:
    """The lines with code below the cursor's line, nearest first."""
    return [s for s in suffix.split("\n")[1:] if s.strip()]


def open_brackets(code: str, language: str | None = "") -> list[str] | None:
    """Brackets left open at the end of `code`; None when a closer has no opener.

    One-line strings and comments of `language` are ignored (`""`: plain-text rules).
    """
    stack: list[str] = []
    for ch in strip_lexemes(code, language):
        if ch in OPENERS:
            stack.append(ch)
        elif ch in PAIRS:
            if not stack or stack[-1] != PAIRS[ch]:
                return None
            stack.pop()
    return stack


def unclosed(code: str, language: str | None) -> int:
    """Brackets left open at the end of one line (`} else {`: 1); unmatched closers count 0."""
    depth = 0
    for ch in strip_lexemes(code, language):
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth = max(0, depth - 1)
    return depth


def bracket_depth(code: str, language: str | None) -> tuple[int, int]:
    """(closers the line starts with, brackets it opens less those it closes)."""
    code = strip_lexemes(code, language)
    rest = code.lstrip(CLOSERS + " \t")
    leading = sum(ch in CLOSERS for ch in code[: len(code) - len(rest)])
    net = sum(ch in OPENERS for ch in code) - sum(ch in CLOSERS for ch in code)
    return leading, net


def block_closer(line: str, language: str | None) -> bool:
    """Whether `line` only closes blocks (`}`, `});`) in a brace language.

    Such a line says nothing by its text: the closers of nested blocks stand one under
    another, and the suffix's `}` closes another block than the completion's. Bracket
    counting judges it instead.
    """
    code = line.strip()
    spec = spec_for(language)
    return bool(code) and spec is not None and spec.braces and not code.strip(CLOSERS + ";,")


def repeats(line: str, previous: str, language: str | None) -> bool:
    """Whether `line` repeats `previous`, as a degenerate run counts copies (no closers)."""
    code = line.strip()
    return bool(code) and code == previous.strip() and not block_closer(line, language)


def opens_block(line: str, language: str | None) -> bool:
    """Whether `line` is a block header: `if x:` (Python), `fn f() {`, `case 1:`, `else`.

    A statement whose body follows, one level deeper. Without a known language either
    convention counts.
    """
    code = strip_lexemes(line, language).rstrip()
    spec = spec_for(language)
    if spec is None:
        return code.endswith((":", "{"))
    if not spec.braces:
        return code.endswith(":") and bool(_PY_HEADER.match(code))
    if spec.braceless and _braceless_header(code):
        return True  # its one statement follows on the next line, one level deeper
    return code.endswith("{") or bool(_CASE_LABEL.match(code))


def opens_indent(line: str, language: str | None) -> bool:
    """Whether the line after `line` goes one level deeper.

    A block header, or an open bracket at its end (`x = {`, `call(`).
    """
    code = strip_lexemes(line, language).rstrip()
    return opens_block(line, language) or code.endswith(tuple(OPENERS))
