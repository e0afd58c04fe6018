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
from functools import cached_property

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

    The time budget counts from the first token: it bounds the decode. The prompt pass
    cannot be interrupted (CTranslate2), so a budget counted from the request's start only
    cut answers mid-expression after a slow, uncached prompt and showed the fragment (real
    files, the eval's busy machine: on 50 seeded `repo-lines` holes, 32 of 37 failures were
    cut by the budget; first token p50 1.6 s).
    """

    max_new_tokens: int
    time_budget_s: float | None
    stop_ids: frozenset[int]
    cancel: threading.Event | None = None
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None

    def before(self, token: int) -> str | None:
        """`CANCELLED` or `END_TOKEN` for an arriving token, else None (it counts)."""
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        if self.cancel is not None and self.cancel.is_set():
            return StopReason.CANCELLED
        if token in self.stop_ids:
            return StopReason.END_TOKEN
        return None

    def after(self, count: int, now: float | None = None) -> str | None:
        """`MAX_TOKENS` or `TIME_BUDGET` once `count` tokens are out, else None."""
        if count >= self.max_new_tokens:
            return StopReason.MAX_TOKENS
        since = self.started if self.first_token_at is None else self.first_token_at
        elapsed = (time.monotonic() if now is None else now) - since
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
    indentation. Each line is judged by the rules of `BLOCK_RULES`, in order (see there),
    as soon as its first non-blank character arrives (a closing line once it is whole), so
    a stop costs no more tokens than needed. `block_cut` also says which rule decided.
    """
    judge = block_cut(
        line_prefix,
        suffix,
        repeat_suffix=repeat_suffix,
        max_repeats=max_repeats,
        floor=floor,
        language=language,
    )
    return lambda text: judge(text).at


@dataclass(frozen=True)
class BlockCut:
    """Where the block stop cuts a text (None: not there yet) and the rule that decided.

    `rule` is the name of a rule of `BLOCK_RULES`: the one that cut, or the one that waits
    for a line to end; "" when no rule decided (the text goes on).
    """

    at: int | None
    rule: str


def block_cut(
    line_prefix: str,
    suffix: str,
    *,
    repeat_suffix: bool = True,
    max_repeats: int = 3,
    floor: int = 0,
    language: str = "",
) -> Callable[[str], BlockCut]:
    """`block_stop`'s judgement of a text, with the rule that made it (for tests, tracing)."""
    block = _Block.read(line_prefix, suffix, repeat_suffix, max_repeats, floor, language)
    return lambda text: _judge(block, text)


@dataclass(frozen=True)
class _Block:
    """What the rules know before the completion: the cursor's line and the suffix, read once."""

    line_prefix: str
    language: str
    repeat_suffix: bool
    max_repeats: int
    floor: int  # the least indentation (`indent_floor`)
    seen: frozenset[str]  # the suffix's next lines with code, indentation kept (`SUFFIX_LINES`)
    first_below: str | None  # the first of them, stripped (None: none, or the line goes on)
    below_indent: int  # its indentation (-1: none)
    opened: int  # brackets the cursor's line leaves open (the block it opens)
    header: bool  # the cursor's line holds code (a block header)
    indented: bool  # Python: blocks by indentation only, brackets are literals
    braces: bool  # a brace language
    last: bool  # Python with nothing below the cursor (the end of the file)

    @staticmethod
    def read(
        line_prefix: str,
        suffix: str,
        repeat_suffix: bool,
        max_repeats: int,
        floor: int,
        language: str,
    ) -> _Block:
        below = code_below(suffix)[:SUFFIX_LINES]
        goes_on = bool(suffix.split("\n")[0].strip())
        if goes_on:
            below = []  # the cursor's line goes on: no whole-line repeat to look for
        spec = spec_for(language)
        indented = language == "python"
        return _Block(
            line_prefix=line_prefix,
            language=language,
            repeat_suffix=repeat_suffix,
            max_repeats=max_repeats,
            floor=floor,
            # by code and depth: the same code at another depth is no repeat (`return
            # False` of an inner block, written again at the end of the function)
            seen=frozenset(s.rstrip().expandtabs(4) for s in below if len(s.strip()) > 4),
            first_below=below[0].strip() if below else None,
            below_indent=indent_of(below[0]) if below else -1,
            opened=unclosed(line_prefix, language),
            header=bool(line_prefix.strip()),
            indented=indented,
            braces=spec is not None and spec.braces,
            last=indented and not below and not goes_on,
        )

    def dedent_bound(self, base: int, low: int) -> int:
        """The least indentation of a line after the first: less ends the completion.

        At the end of a Python file the enclosing function may be finished after the inner
        block ends (only code at column 0 ends it).
        """
        return max(low, min(base, 1)) if self.last else max(low, base)

    def suffix_closes(self, line: _Line) -> bool:
        """The suffix goes on inside the block `line` closes, or closes it itself.

        In a brace language a closer below that is less indented than `line` closes an
        outer block (`}` of an `if` under the `}` of the loop around it): `line` stays.
        """
        if self.first_below is None:
            return False
        if self.first_below[0] in CLOSERS:
            if self.braces:
                return self.below_indent >= line.indent
            return self.below_indent <= line.indent
        return self.below_indent > line.indent


@dataclass(frozen=True)
class _Scan:
    """What the rules carry from one line of the completion to the next."""

    base: int | None = None  # the block's indentation: its first line with code's
    low: int = 0  # the least indentation of a line after the first (the floor, or less)
    blanks: int = 0  # blank lines since the last line with code
    run: int = 1  # copies of the same line in a row, this one included


@dataclass(frozen=True)
class _Line:
    """One line of the completion (the first one starts with `line_prefix`) and its facts."""

    block: _Block
    i: int  # its index (0: the cursor's line)
    text: str
    previous: str  # the line before it
    whole: bool  # its line break has arrived
    leading: int  # the closers it starts with (strings and comments aside)
    above: int  # the bracket depth before it (the cursor's line: 0)
    depth: int  # the bracket depth after it
    code: str  # the line stripped ("": blank)
    indent: int
    closes_own: bool  # it starts by closing the block the cursor's line opened
    closes_outer: bool  # it starts by closing the block around the cursor

    @staticmethod
    def read(b: _Block, lines: list[str], i: int, depth: int) -> _Line:
        """Line `i` of `lines`, the bracket depth before it `depth`."""
        text = lines[i]
        code = text.strip()
        if i == 0 and b.header:  # the brackets the cursor's line leaves open
            leading, above, depth = 0, 0, unclosed(text, b.language)
        else:
            leading, net = bracket_depth(text, b.language) if code else (0, 0)
            above, depth = depth, depth + net
        closes = leading > 0 and above - leading < b.opened  # (`< 0` with none opened)
        return _Line(
            b,
            i,
            text,
            lines[i - 1],
            i < len(lines) - 1,
            leading,
            above,
            depth,
            code,
            indent_of(text),
            closes_own=closes and bool(b.opened),
            closes_outer=closes and not b.opened,
        )

    @cached_property
    def opener(self) -> bool:
        """It opens a block (a header): its body follows, one level deeper."""
        return opens_block(self.text, self.block.language)

    @cached_property
    def repeat(self) -> bool:
        """It stands, at its depth, among the suffix's next lines (not a closer-only line)."""
        b = self.block
        return (
            b.repeat_suffix
            and self.whole
            and (self.text.rstrip().expandtabs(4) in b.seen or self.code == b.first_below)
            and not block_closer(self.text, b.language)
        )

    @property
    def reopens(self) -> bool:
        """It opens a block again after its closers (`} else {`)."""
        return self.depth > self.above - self.leading


@dataclass(frozen=True)
class _Cut:
    """Cut before line `line` (its line break dropped), or after it."""

    line: int
    after: bool = False


class _Wait:
    """Undecided until the line is whole: no cut yet."""


WAIT = _Wait()
_Step = _Cut | _Wait | _Scan | None  # a cut, a wait, the next line with a new state, no say
BlockRule = Callable[[_Block, _Scan, _Line], _Step]

# The rules, in the order `BLOCK_RULES` applies them to each line. A rule that returns None
# has no say on the line; the first one that does decides it.


def cursor_line(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The cursor's line holds code already (a block header): it is the user's, not judged."""
    return s if line.i == 0 and b.header else None


def blank_line(b: _Block, s: _Scan, line: _Line) -> _Step:
    """A blank line ends nothing by itself; whole ones are counted for `blank_lines`."""
    if line.code:
        return None
    return _Scan(s.base, s.low, s.blanks + 1, s.run) if line.i > 0 and line.whole else s


def suffix_repeat(b: _Block, s: _Scan, line: _Line) -> _Step:
    """A line of the suffix again at its depth: the model is rewriting what follows."""
    return _Cut(line.i) if line.repeat else None


def closer_pending(b: _Block, s: _Scan, line: _Line) -> _Step:
    """A closing line is judged once whole: `}` may become `} else {`, `})` become `});`."""
    return WAIT if (line.closes_own or line.closes_outer) and not line.whole else None


def suffix_closes_block(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The cursor's block is closed, but the suffix goes on inside it or closes it itself."""
    return _Cut(line.i) if line.closes_own and b.suffix_closes(line) else None


def block_closed(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The closer of the cursor's block, every bracket of the cursor's line closed: done."""
    return _Cut(line.i, after=True) if line.closes_own and line.depth <= 0 else None


def else_goes_on(b: _Block, s: _Scan, line: _Line) -> _Step:
    """`} else {` of the cursor's block: the block goes on."""
    return _Scan(s.base, s.low, 0, s.run) if line.closes_own else None


def else_above_its_body(b: _Block, s: _Scan, line: _Line) -> _Step:
    """`} else {` on an empty line above the else's body (a brace language): the answer."""
    body_below = b.below_indent > line.indent
    if line.closes_outer and b.braces and line.reopens and body_below:
        return _Cut(line.i, after=True)
    return None


def suffix_closes_outer(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The block around the cursor is closed, but the suffix goes on in it or closes it."""
    return _Cut(line.i) if line.closes_outer and b.suffix_closes(line) else None


def outer_reopens(b: _Block, s: _Scan, line: _Line) -> _Step:
    """`} else {` closing the block around the cursor: the rest is left to the user."""
    return _Cut(line.i) if line.closes_outer and line.reopens else None


def python_literal_closer(b: _Block, s: _Scan, line: _Line) -> _Step:
    """In Python a closer ends a literal (a dict over lines), not a block: statements follow.

    The completion goes on at the closer's indentation.
    """
    if not (line.closes_outer and b.indented):
        return None
    return _Scan(line.indent, min(s.low, line.indent), 0, s.run)


def outer_block_closed(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The closer of the block around the cursor, which nothing in the suffix closes: done.

    The file ends, or only code no deeper follows, or an outer block's closer (less deep).
    """
    return _Cut(line.i, after=True) if line.closes_outer else None


def first_line_pending(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The first line with code sets the block's indentation: it is judged once whole."""
    return WAIT if s.base is None and not line.whole else None


def first_line_below_floor(b: _Block, s: _Scan, line: _Line) -> _Step:
    """A first line less deep than the code around the cursor (a header may be: `elif`)."""
    if s.base is None and not line.opener and line.indent < s.low:
        return _Cut(line.i)
    return None


def header_with_body_below(b: _Block, s: _Scan, line: _Line) -> _Step:
    """A first line that opens a block whose body (one level deeper) the suffix holds.

    Not in Python, where the body below is often a later header's. A closer below is an
    inner block's, which the completion has yet to open: it goes on.
    """
    if (
        s.base is None
        and line.opener
        and not b.indented
        and b.first_below is not None
        and line.indent < b.below_indent <= line.indent + 4
        and b.first_below[0] not in CLOSERS
    ):
        return _Cut(line.i, after=True)
    return None


def first_line(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The first line with code: its indentation is the block's.

    A header let through the floor lowers the floor to its own depth, for its siblings.
    """
    if s.base is not None:
        return None
    return _Scan(line.indent, min(s.low, line.indent), s.blanks, s.run)


def dedent(b: _Block, s: _Scan, line: _Line) -> _Step:
    """Less indented than the block or the floor: the block has ended."""
    if s.base is not None and line.indent < b.dedent_bound(s.base, s.low):
        return _Cut(line.i)
    return None


def blank_lines(b: _Block, s: _Scan, line: _Line) -> _Step:
    """Code after two blank lines is new code.

    In a brace language, blank lines inside a block the completion opened go on.
    """
    return _Cut(line.i) if s.blanks >= 2 and not (b.braces and line.above > 0) else None


def degenerate_run(b: _Block, s: _Scan, line: _Line) -> _Step:
    """The `max_repeats`-th copy of a line in a row: degenerate, cut to one copy.

    The closers of nested blocks are no copies (`lines.repeats`).
    """
    run = s.run + 1 if repeats(line.text, line.previous, b.language) else 1
    return _Cut(line.i - run + 2) if run >= b.max_repeats else None


def goes_on(b: _Block, s: _Scan, line: _Line) -> _Step:
    """A line inside the block: on to the next, the copies of it counted."""
    run = s.run + 1 if repeats(line.text, line.previous, b.language) else 1
    return _Scan(s.base, s.low, 0, run)


BLOCK_RULES: tuple[BlockRule, ...] = (
    cursor_line,
    blank_line,
    suffix_repeat,
    closer_pending,
    suffix_closes_block,
    block_closed,
    else_goes_on,
    else_above_its_body,
    suffix_closes_outer,
    outer_reopens,
    python_literal_closer,
    outer_block_closed,
    first_line_pending,
    first_line_below_floor,
    header_with_body_below,
    first_line,
    dedent,
    blank_lines,
    degenerate_run,
    goes_on,
)
"""The block stop's rules, in the order they are asked about each line.

The cursor's line and blank lines pass; a line of the suffix again is cut wherever it
stands; then closing lines (of the block the cursor's line opened, then of the block around
the cursor), the first line with code (which sets the block's indentation), and every later
line: its indentation, the blank lines before it, copies of it.
"""


def _judge(b: _Block, text: str) -> BlockCut:
    """Apply `BLOCK_RULES` line by line to `line_prefix + text`: the first cut or wait."""
    lines = (b.line_prefix + text).split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    lead = len(b.line_prefix)
    scan = _Scan(low=b.floor)
    depth = 0
    for i in range(len(lines)):
        facts = _Line.read(b, lines, i, depth)
        depth = facts.depth
        for rule in BLOCK_RULES:
            step = rule(b, scan, facts)
            if step is None:
                continue
            if isinstance(step, _Scan):
                scan = step
                break
            if isinstance(step, _Wait):
                return BlockCut(None, rule.__name__)
            k = step.line
            at = starts[k] + len(lines[k]) - lead if step.after else max(0, starts[k] - 1 - lead)
            return BlockCut(at, rule.__name__)
    return BlockCut(None, "")
