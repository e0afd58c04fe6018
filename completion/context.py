"""Context stage: the text around the cursor, as plain strings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from completion.languages import resolve_language

# Bounds the work on huge files before any tokenisation: far more than a prompt can hold.
MAX_PREFIX_CHARS = 24_000
MAX_SUFFIX_CHARS = 8_000
# A statement most likely starts here: after a blank line, a line at column 0 that begins
# with a name, a decorator or a comment, or an indented `def`, `class` or decorator (a
# method). A window cut there does not start (or end) inside a multi-line string or
# comment, so the syntax stages see the code as it is.
_TOP_LEVEL = re.compile(r"\n[ \t]*\n(?=[A-Za-z_@#/]|[ \t]+(?:async def |def |class |@))")


@dataclass(frozen=True)
class Context:
    """What surrounds the cursor: prefix and suffix (possibly windowed) and the current line."""

    prefix: str
    suffix: str
    line_prefix: str
    line_suffix: str
    language: str = "python"  # the editor's id: crossfile's comment syntax knows 77 of them
    path: str | None = None
    # The supported language whose grammar and rules the stages apply (`""`: plain text),
    # resolved once from `language` and `path`.
    syntax: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "syntax", resolve_language(self.language, self.path))


def extract_context(
    text: str, offset: int, language: str = "python", path: str | None = None
) -> Context:
    """Split the document at the cursor; very long sides are windowed at line boundaries.

    A window edge goes where a statement starts (`_TOP_LEVEL`) when the outer half of the
    window has one (the window is still far larger than a prompt).
    """
    offset = max(0, min(offset, len(text)))
    prefix, suffix = text[:offset], text[offset:]
    if len(prefix) > MAX_PREFIX_CHARS:
        window = prefix[-MAX_PREFIX_CHARS:]
        top = _TOP_LEVEL.search(window, 0, len(window) // 2)
        if top:
            prefix = window[top.end() :]
        else:
            prefix = window[window.find("\n") + 1 :] if "\n" in window else window
    if len(suffix) > MAX_SUFFIX_CHARS:
        window = suffix[:MAX_SUFFIX_CHARS]
        tops = [m.start() for m in _TOP_LEVEL.finditer(window, len(window) // 2)]
        if tops:
            suffix = window[: tops[-1] + 1]
        else:
            suffix = window[: window.rfind("\n") + 1] if "\n" in window else window
    line_prefix = prefix[prefix.rfind("\n") + 1 :]
    newline = suffix.find("\n")
    line_suffix = (suffix if newline < 0 else suffix[:newline]).rstrip("\r")
    return Context(prefix, suffix, line_prefix, line_suffix, language, path)
