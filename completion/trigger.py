"""Trigger stage (`should_complete`): none, single-line or multi-line, decided before generating.

- Inside a comment or a string: no completion when `in_comments` is off (tree-sitter decides;
  a language without a grammar is never "inside").
- Mid-line: only when the rest of the line is blanks or closing brackets (`mid_line_rule`).
- Multi-line (when `multiline` is on): on a line holding only indentation, or at the end of a
  block opener (`def f():`, `if x {`) whose body is still empty. Everything else: one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from completion.context import Context
from completion.syntax import in_comment_or_string


class Mode(StrEnum):
    """What kind of completion to ask for."""

    NONE = "none"
    SINGLE = "single"
    MULTI = "multi"


@dataclass(frozen=True)
class TriggerOptions:
    """Switches of the trigger stage."""

    multiline: bool = False
    mid_line_rule: bool = True
    in_comments: bool = True


CLOSERS = frozenset(")]}")
# A Python line that opens a block when it ends with ':'.
_PY_HEADER = re.compile(
    r"^\s*(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
_BRACE_LANGS = frozenset(
    {"javascript", "javascriptreact", "typescript", "typescriptreact", "go", "rust", "java"}
    | {"c", "cpp", "csharp", "kotlin", "swift", "php", "scala", "dart"}
)


def indent_of(line: str) -> int:
    """Width of a line's leading blanks (a tab counts as 4)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].replace("\t", "    "))


def opens_block(line_prefix: str, language: str) -> bool:
    """Whether the text before the cursor ends a block header (`if x:`, `fn f() {`)."""
    code = line_prefix.rstrip()
    if language == "python":
        return code.endswith(":") and bool(_PY_HEADER.match(code))
    if language in _BRACE_LANGS:
        return code.endswith("{")
    return code.endswith((":", "{"))  # plain text: either convention


def _body_is_empty(context: Context) -> bool:
    """No line below the cursor is indented deeper than the cursor's line."""
    here = indent_of(context.line_prefix)
    for line in context.suffix.split("\n")[1:]:
        if line.strip():
            if line.strip() in ("}", "};", "})", "end"):
                return True
            return indent_of(line) <= here
    return True


def should_complete(context: Context, options: TriggerOptions | None = None) -> Mode:
    """Decide, from the text and syntax at the cursor, what kind of completion to make."""
    options = options or TriggerOptions()
    rest = context.line_suffix.strip()
    if options.mid_line_rule and rest and not set(rest) <= CLOSERS | {" ", "\t"}:
        return Mode.NONE
    if not options.in_comments:
        text = context.prefix + context.suffix
        if in_comment_or_string(text, len(context.prefix), context.language):
            return Mode.NONE
    if not options.multiline or rest:
        return Mode.SINGLE
    if not context.line_prefix.strip():
        return Mode.MULTI
    if opens_block(context.line_prefix, context.language) and _body_is_empty(context):
        return Mode.MULTI
    return Mode.SINGLE
