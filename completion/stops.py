"""Where a completion is cut: every stop rule and stop condition, in one place.

- Stop conditions (`StopConditions`): the token cap, the time budget, cancellation and the
  end token, applied to every token by the engine's streaming and batch paths alike.
- Text stop rules (`StopRule`), applied to the decoded text while it streams:
  `single_line_stop` (the line's end) and `block_stop` (the block's end). `final_cut` applies
  a rule once more when the stream ends, and `cut_offline` replays the streaming cut over
  finished output (`eval repost`).
- `stop_rule_for` picks the rule for a trigger mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from completion.context import Context
from completion.languages import spec_for
from completion.lines import (
    CLOSERS,
    block_closer,
    braceless_body,
    bracket_depth,
    code_below,
    code_lines_above,
    indent_of,
    opens_block,
    opens_indent,
    repeats,
    unclosed,
)
from completion.trigger import Mode

StopRule = Callable[[str], int | None]
"""Given the text so far, the index to cut it at (generation stops), or None to go on."""

RULE = "stop_rule"  # the stop reason when a text rule cut the output


class StopReason:
    """Why a stream ended (the engine records it on `Stream.reason`)."""

    END_TOKEN = "end_token"
    MAX_TOKENS = "max_tokens"
    TIME_BUDGET = "time_budget"
    CANCELLED = "cancelled"
    CALLER = "caller"
    BACKEND_ERROR = "backend_error"  # a remote server failed (completion/engines/remote.py)

    # Ends that are no answer for the cursor: never cached, never reused.
    NO_ANSWER = frozenset({CANCELLED, TIME_BUDGET, BACKEND_ERROR})


@dataclass
class StopConditions:
    """The conditions that end a generation whatever its text says.

    `before` is asked of each token as it arrives (is it the end, or was the request
    cancelled?); `after` once the token counts (the cap, the time budget). The streaming
    and the batch path of the engine both ask these, so they stop for the same reasons.
    """

    max_new_tokens: int
    time_budget_s: float | None
    stop_ids: frozenset[int]
    cancel: threading.Event | None = None
    started: float = field(default_factory=time.monotonic)

    def before(self, token: int) -> str | None:
        """`CANCELLED` or `END_TOKEN` for an arriving token, else None (it counts)."""
        if self.cancel is not None and self.cancel.is_set():
            return StopReason.CANCELLED
        if token in self.stop_ids:
            return StopReason.END_TOKEN
        return None

    def after(self, count: int, now: float | None = None) -> str | None:
        """`MAX_TOKENS` or `TIME_BUDGET` once `count` tokens are out, else None."""
        if count >= self.max_new_tokens:
            return StopReason.MAX_TOKENS
        elapsed = (time.monotonic() if now is None else now) - self.started
        if self.time_budget_s is not None and elapsed > self.time_budget_s:
            return StopReason.TIME_BUDGET
        return None


def final_cut(text: str, stop_rule: StopRule) -> int | None:
    """Where `stop_rule` cuts `text` once the stream has ended and its last line is whole."""
    cut = stop_rule(text + "\n")
    return cut if cut is not None and cut < len(text) else None


def cut_offline(text: str, rule: StopRule, reason: str) -> tuple[str, str]:
    """`text` as streaming with `rule` would have ended it, and the stop reason.

    Greedy output made without the rule holds, as a prefix, what the run with the rule
    would have produced; the rule is asked at every length, as streaming asks it.
    """
    for end in range(1, len(text) + 1):
        cut = rule(text[:end])
        if cut is not None:
            return text[:cut], RULE
    cut = final_cut(text, rule)
    return (text[:cut], RULE) if cut is not None else (text, reason)


def stop_rule_for(
    context: Context, mode: Mode, *, block_stop_on: bool = True, repeat_suffix: bool = True
) -> StopRule:
    """The streaming stop rule of a completion of `mode` (line end, or the block's end)."""
    if mode is not Mode.MULTI:
        return single_line_stop
    if not block_stop_on:
        return lambda _text: None
    language = context.syntax
    return block_stop(
        context.line_prefix,
        context.suffix,
        repeat_suffix=repeat_suffix,
        floor=indent_floor(context.prefix, context.suffix, language),
        language=language,
    )


def single_line_stop(text: str) -> int | None:
    """Cut at the first line break: a single-line completion stays on the cursor's line."""
    cut = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=-1)
    return None if cut < 0 else cut


SUFFIX_LINES = 8


def indent_floor(prefix: str, suffix: str, language: str = "") -> int:
    """The least indentation the lines written at the cursor may have.

    Code at the cursor stays at least as deep as both the code line above it (one level
    deeper after a block opener) and the code line below it.
    """
    near = code_lines_above(prefix, 2)
    below = code_below(suffix)
    if not near or not below:
        return 0
    above = near[0]
    if len(near) > 1 and braceless_body(above, near[1], language):
        up = indent_of(near[1])  # `if (x)` + `return y;` above: on at the `if`'s depth
    else:
        up = indent_of(above) + (1 if opens_indent(above, language) else 0)
    return min(up, indent_of(below[0]))


def block_stop(
    line_prefix: str,
    suffix: str,
    *,
    repeat_suffix: bool = True,
    max_repeats: int = 3,
    floor: int = 0,
    language: str = "",
) -> StopRule:
    """A multi-line stop rule: cut where the completion leaves its block.

    The completion continues `line_prefix`; its first line with code sets the block's
    indentation. Generation is cut before the first line that
    - is indented less than that (the block ended) or than `floor`, or follows two blank
      lines (in a brace language, outside the blocks the completion opened);
    - repeats, at the same depth, one of the next `SUFFIX_LINES` lines with code of
      `suffix` (the model is rewriting what follows), when `repeat_suffix` is on;
    - follows a first line that opens a block whose body (one level deeper) the suffix
      already holds (not in Python, where the completion may go on: the body below is
      often the body of a later header);
    - is the `max_repeats`-th copy of the same line in a row (degenerate repetition; the run
      is cut to one copy; closers of nested blocks are no copies, `lines.repeats`).
    Brackets are counted too (strings and comments of `language` aside; `""`: plain-text
    rules). A line that starts by closing the block (`}`, `});`) the cursor's line opened
    ends the completion after it once all the brackets of that line are closed, and
    before it when the suffix closes the block itself; a line that starts by closing the
    block around the cursor is cut, unless nothing in the suffix closes that block (end of
    file, or only code no deeper than the closer follows, or, in a brace language, a closer
    less indented: an outer block's): then it ends the completion. `} else {` goes on; on
    an empty line above the else's body (a brace language) it is the answer. In Python a
    closing bracket ends a literal, not a block: the completion goes on after it, at the
    closer's indentation; and with nothing below the cursor (the end of the file) it may
    finish the enclosing function after the inner block ends (only code at column 0 ends
    it). A line is judged as soon as its first non-blank character arrives (a closing line
    once it is whole), so a stop costs no more tokens than needed.
    """
    below = code_below(suffix)[:SUFFIX_LINES]
    if suffix.split("\n")[0].strip():
        below = []  # the cursor's line goes on: no whole-line repeat to look for
    # lines of the suffix by code and depth: the same code at another depth is no repeat
    # (`return False` of an inner block, written again at the end of the function)
    seen = {s.rstrip().expandtabs(4) for s in below if len(s.strip()) > 4}
    below_indent = indent_of(below[0]) if below else -1
    first_below = below[0].strip() if below else None
    opened = unclosed(line_prefix, language)  # brackets the cursor's line leaves open
    indented = language == "python"  # blocks by indentation only: brackets are literals
    spec = spec_for(language)
    braces = spec is not None and spec.braces
    # Nothing below the cursor (the end of the file): a Python completion may finish the
    # enclosing function after the inner block ends, but not start top-level code.
    last = indented and not below and not suffix.split("\n")[0].strip()

    def dedent_bound(base: int, low: int) -> int:
        """The least indentation of a line after the first: less ends the completion."""
        if last:
            return max(low, min(base, 1))
        return max(low, base)

    def suffix_closes(line: str) -> bool:
        """The suffix goes on inside the block, or closes it itself.

        In a brace language a closer below that is less indented than `line` closes an
        outer block (`}` of an `if` under the `}` of the loop around it): `line` stays.
        """
        if first_below is None:
            return False
        if first_below[0] in CLOSERS:
            if braces:
                return below_indent >= indent_of(line)
            return below_indent <= indent_of(line)
        return below_indent > indent_of(line)

    def rule(text: str) -> int | None:
        full = line_prefix + text
        lines = full.split("\n")
        starts = [0]
        for line in lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        lead = len(line_prefix)

        def before(i: int) -> int:  # cut just before line i (its line break dropped)
            return max(0, starts[i] - 1 - lead)

        def after(i: int) -> int:  # cut just after line i
            return starts[i] + len(lines[i]) - lead

        base: int | None = None
        low = floor
        blanks = 0
        run = 1
        depth = 0
        for i, line in enumerate(lines):
            code = line.strip()
            whole = i < len(lines) - 1
            leading, net = bracket_depth(line, language) if code else (0, 0)
            above, depth = depth, depth + net
            if i == 0 and line_prefix.strip():
                depth = unclosed(line, language)
                continue  # the cursor's line holds code already (a block header)
            if not code:
                if 0 < i < len(lines) - 1:
                    blanks += 1
                continue
            repeat = (
                repeat_suffix
                and whole
                and (line.rstrip().expandtabs(4) in seen or code == first_below)
                and not block_closer(line, language)
            )
            if leading and opened and above - leading < opened:
                # closes the block the cursor's line opened (`}`, `} else {`, `});`)
                if not whole:
                    return None
                if repeat or suffix_closes(line):
                    return before(i)
                if depth <= 0:
                    return after(i)  # every bracket of the cursor's line is closed
                blanks = 0
                continue  # `} else {`: the block goes on
            if leading and not opened and above - leading < 0:
                # closes the block around the cursor
                if not whole:
                    return None
                reopens = depth > above - leading  # `} else {`
                if braces and reopens and not repeat and below_indent > indent_of(line):
                    return after(i)  # the header of the body below, as an opener's
                if repeat or suffix_closes(line) or reopens:
                    return before(i)
                if indented:  # `}` of a dict written over several lines: statements follow
                    base = indent_of(line)
                    low = min(low, base)
                    blanks = 0
                    continue
                return after(i)  # the file ends the block nowhere else
            if base is None:  # the first line with code, judged once it is whole
                if i == len(lines) - 1:
                    return None
                opener = opens_block(line, language)
                if repeat or (not opener and indent_of(line) < low):
                    return before(i) if i > 0 else 0
                base = indent_of(line)
                low = min(low, base)  # a header let through the floor: its siblings too
                if (
                    opener
                    and base < below_indent <= base + 4
                    and not indented
                    and first_below is not None
                    and first_below[0] not in CLOSERS
                ):
                    return after(i)  # its body is already below (a closer there is an
                    # inner block's, which the completion has yet to open)
                continue
            if indent_of(line) < dedent_bound(base, low):
                return before(i)
            if (blanks >= 2 and not (braces and above > 0)) or repeat:
                return before(i)  # (blank lines inside a block the completion opened go on)
            run = run + 1 if repeats(line, lines[i - 1], language) else 1
            if run >= max_repeats:
                return before(i - run + 2)  # one copy of the run is kept
            blanks = 0
        return None

    return rule
