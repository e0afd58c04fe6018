"""Trigger stage (`should_complete`): none, single-line or multi-line, decided before generating.

- Inside a comment or a string: no completion when `in_comments` is off (tree-sitter decides;
  a language without a grammar is never "inside").
- Mid-line: only when the rest of the line is blanks or closing brackets (`mid_line_rule`);
  with `mid_word_only`, the narrower rule of the benchmark: none only right before a word
  character (completing inside a word rarely helps), anywhere else one line.
- Multi-line (when `multiline` is on): wherever nothing but blanks or closers follows the
  cursor on its line: an empty line, a block opener (`def f():`, `if x {`), the end of a
  line with code (a completion that starts mid-statement and runs across lines is a block
  too). With code after the cursor on its line: one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from completion.context import Context
from completion.lines import CLOSERS
from completion.syntax import in_comment_or_string


class Mode(StrEnum):
    """What kind of completion to ask for."""

    NONE = "none"
    SINGLE = "single"
    MULTI = "multi"


@dataclass(frozen=True)
class TriggerOptions:
    """Switches of the trigger stage; the defaults are the product's (off for an ablation)."""

    # Multi-line completions wherever nothing follows the cursor on its line. On: with the
    # suffix-first prompt it gains on single-line holes too (a header comes with its body),
    # see docs/quality.md.
    multiline: bool = True
    # No completion mid-line unless the rest of the line is closers (`--set trigger=0`)...
    mid_line_rule: bool = True
    # ... narrowed: none only right before a word character. random-span-light pass@1: 0.134
    # with the strict rule, 0.159 narrowed (it skips 11 holes instead of 30 of 164)
    mid_word_only: bool = True
    in_comments: bool = True  # complete inside comments and strings


_WORD_CHAR = re.compile(r"\w")


def should_complete(context: Context, options: TriggerOptions | None = None) -> Mode:
    """Decide, from the text and syntax at the cursor, what kind of completion to make."""
    options = options or TriggerOptions()
    language = context.syntax
    rest = context.line_suffix.strip()
    if (
        options.mid_line_rule
        and rest
        and not set(rest) <= set(CLOSERS + " \t")
        and (not options.mid_word_only or _WORD_CHAR.match(context.line_suffix))
    ):
        return Mode.NONE
    if not options.in_comments:
        text = context.prefix + context.suffix
        if in_comment_or_string(text, len(context.prefix), language):
            return Mode.NONE
    if not options.multiline or rest:
        return Mode.SINGLE
    # Nothing but blanks or closers after the cursor on its line (an empty line, a header,
    # the end of a line with code): a block may follow. The block stop ends it where one
    # line is the answer, and a block's first line is shown as soon as it is written.
    # Measured at the end of a line with code: random-span-light 0.287 with one line there,
    # 0.329 as a block (+7, -0 of 164; docs/quality.md).
    return Mode.MULTI
