"""Post-processing stage: turn raw model output into what the editor should show."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from completion.context import Context
from completion.lines import (
    PAIRS,
    block_closer,
    code_above,
    code_below,
    open_brackets,
    opens_block,
    repeats,
)
from completion.syntax import Insertion, in_brackets, in_comment_or_string


def clean_single_line(text: str, context: Context) -> str:
    """One line of completion: trailing blanks trimmed, a repeat of the line's rest dropped."""
    text = text.rstrip()
    if not text.strip():
        return ""
    rest = context.line_suffix.strip()
    if rest:
        if "\n" in text:  # a new line cannot be inserted in the middle of this one
            return ""
        if text.endswith(rest):  # the model rewrote what already follows the cursor
            text = text[: -len(rest)].rstrip()
    return text if text.strip() else ""


def trim_lines(text: str) -> str:
    """Trailing blanks off every line, blank lines off the end."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def drop_line_above_repeat(text: str, context: Context) -> str:
    """Drop a first line that only repeats the line above the cursor, at its indentation.

    The same code at another depth is no repeat: `return False` at the end of a function,
    below the `return False` of the block above it.
    """
    above = code_above(context.prefix).rstrip()
    lines = text.split("\n")
    first = (context.line_prefix + lines[0]).rstrip()
    if above and first == above and len(above.strip()) > 3:
        return "\n".join(lines[1:]).lstrip("\n") if len(lines) > 1 else ""
    return text


def drop_next_line_repeat(text: str, context: Context) -> str:
    """Drop a one-line completion that only repeats the next code line below the cursor."""
    if context.line_suffix.strip() or "\n" in text.strip():
        return text
    below = next(iter(code_below(context.suffix)), "").strip()
    first = (context.line_prefix + text).strip()
    return "" if below and first == below else text


def drop_suffix_repeat(text: str, context: Context) -> str:
    """Drop trailing lines of a multi-line completion that repeat the lines after the cursor."""
    lines = text.split("\n")
    below = [s.strip() for s in code_below(context.suffix)]
    if context.line_suffix.strip() or not below:
        return text
    # the longest tail of the completion equal to the head of the suffix (by code); in a
    # brace language not closers alone, which may close the completion's own blocks (the
    # syntax stage drops a closer too many)
    code = [(i, s.strip()) for i, s in enumerate(lines) if s.strip()]
    language = context.syntax
    for k in range(min(len(code), len(below)), 0, -1):
        tail = [c for _, c in code[-k:]]
        if tail == below[:k] and not all(block_closer(c, language) for c in tail):
            return "\n".join(lines[: code[-k][0]]).rstrip()
    return text


def balance_brackets(text: str, context: Context) -> str:
    """Drop closing brackets at the end that the rest of the cursor's line already supplies.

    The brackets open before the cursor are closed once: when the completion and then the
    closers after the cursor would close more than is open, the completion's last closers go.
    """
    closers = ""
    for ch in context.line_suffix.strip():
        if ch in PAIRS:
            closers += ch
        elif ch not in " \t":
            break
    if not closers:
        return text
    language = context.syntax
    lines = context.prefix.split("\n")[-30:]
    if open_brackets("\n".join(lines), language) is None:
        lines = lines[-1:]  # the window starts inside a bracket: judge the line alone
    opened = open_brackets("\n".join(lines), language)
    if opened is None:
        return text

    def broken(body: str) -> bool:
        return open_brackets("".join(opened) + body + closers, language) is None

    body = text.rstrip()
    while body and body[-1] in PAIRS and broken(body):
        body = body[:-1].rstrip()
    if broken(body):
        return text  # the trim does not help: leave it as it was
    return body


def indent_unit(code: str, default: int = 4) -> int:
    """The file's indentation step: the most common increase from one code line to the next."""
    steps: Counter[int] = Counter()
    last = None
    for line in code.split("\n")[-200:]:
        if not line.strip() or "\t" in line[: len(line) - len(line.lstrip())]:
            continue
        width = len(line) - len(line.lstrip())
        if last is not None and width > last:
            steps[width - last] += 1
        last = width
    return steps.most_common(1)[0][0] if steps else default


def indent_under_opener(text: str, context: Context) -> str:
    """Python: the first line of a block's body goes one level deeper than its header.

    The model sometimes writes the line under `if x:` at the header's depth, an
    IndentationError; the completion then moves right, later lines by the same amount.
    """
    if context.syntax != "python" or context.line_prefix.strip() or not text.strip():
        return text
    above = code_above(context.prefix)
    if not opens_block(above, "python"):
        return text
    lines = text.split("\n")
    first = context.line_prefix + lines[0]
    have = len(first) - len(first.lstrip(" "))
    opener = len(above) - len(above.lstrip(" "))
    if have > opener or first[have : have + 1] == "\t":
        return text
    offset = len(context.prefix)
    if in_comment_or_string(context.prefix + context.suffix, offset, "python"):
        return text  # e.g. a docstring line that happens to read like a header
    pad = " " * (opener + indent_unit(context.prefix) - have)
    return "\n".join(pad + line if line.strip() or i == 0 else line for i, line in enumerate(lines))


def _fits_above(line: str, depth_below: int, *, whole_block: bool) -> bool:
    """Whether a Python line may stand right above a code line `depth_below` deep.

    A plain statement may not stand above deeper code; with `whole_block`, a block header
    needs deeper code below it (its body).
    """
    code = line.split("#", 1)[0].rstrip() if "#" in line else line.rstrip()
    if code.endswith("\\") or open_brackets(code, "python"):
        return True
    depth = len(line) - len(line.lstrip(" "))
    if code.endswith(":"):
        return depth_below > depth or not whole_block
    return depth >= depth_below


def fit_block_below(text: str, context: Context, *, whole_block: bool = False) -> str:
    """Python: end the completion on a line that the code below can follow.

    Right above a deeper line only a block header fits (a plain statement there is an
    IndentationError: unexpected indent); with `whole_block` (a multi-line completion) a
    header must also have its body, in the completion or below it. The completion is cut
    back to its last line that fits; when none does, nothing is returned. Inside brackets,
    strings and comments the indentation is free, and the check is skipped.
    """
    if context.syntax != "python" or context.line_suffix.strip() or not text.strip():
        return text
    below = next(iter(code_below(context.suffix)), "")
    if below.lstrip().startswith(("#", ")", "]", "}")):
        return text
    depth_below = len(below) - len(below.lstrip(" "))  # the end of the file: 0
    lines = (context.line_prefix + text).split("\n")
    if _fits_above(lines[-1], depth_below, whole_block=whole_block):
        return text
    whole, offset = context.prefix + context.suffix, len(context.prefix)
    if in_comment_or_string(whole, offset, "python") or in_brackets(whole, offset, "python"):
        return text
    for k in range(len(lines) - 1, 0, -1):
        if lines[k - 1].strip() and _fits_above(lines[k - 1], depth_below, whole_block=whole_block):
            return "\n".join(lines[:k])[len(context.line_prefix) :]
    return ""


def drop_repetition(text: str, max_repeats: int = 3, language: str = "") -> str:
    """Cut a degenerate run: the same line `max_repeats` times or more keeps one copy.

    What counts as a copy is `lines.repeats` (in a brace language, `}` under `}` does not).
    """
    lines = text.split("\n")
    run = 1
    for i in range(1, len(lines)):
        run = run + 1 if repeats(lines[i], lines[i - 1], language) else 1
        if run >= max_repeats:
            return "\n".join(lines[: i - run + 2])
    return text


def drop_cut_line(text: str, stop_reason: str) -> str:
    """A completion cut by the token cap or time budget loses its unfinished last line."""
    if stop_reason in ("max_tokens", "time_budget") and "\n" in text.strip("\n"):
        return text[: text.rstrip("\n").rfind("\n")]
    return text


MAX_SYNTAX_TRIES = 16


def syntax_truncate(text: str, context: Context, *, keep_parse: bool) -> str:
    """The longest line-prefix of `text` with which the file parses (tree-sitter).

    `prefix + completion + suffix` is parsed for the completion cut after each of its lines,
    longest first, so a completion that runs past its block ends where the code is whole.
    When no cut parses, the text stays, unless `keep_parse` is on and the file parsed
    before: then nothing is returned rather than a completion that breaks the file. A
    language without a grammar is left as it is.
    """
    if not text.strip():
        return text
    check = Insertion(context.prefix, context.suffix, context.syntax)
    before = check.before
    if before is None:
        return text
    lines = text.split("\n")
    tries = 0
    for k in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:k]).rstrip()
        if not candidate.strip() or (k < len(lines) and not lines[k - 1].strip()):
            continue
        if not check.has_error(candidate):
            return candidate
        tries += 1
        if tries >= MAX_SYNTAX_TRIES:
            break
    return "" if keep_parse and not before else text


@dataclass(frozen=True)
class PostOptions:
    """Switches of the post-processing stages (each can be turned off for an ablation).

    `multiline` is no switch: the pipeline sets it per completion from the trigger's mode.
    """

    multiline: bool = False  # the completion may hold several lines
    dedupe: bool = True  # drop repeats of the suffix and of the line above
    balance: bool = True  # balance closing brackets against the rest of the line
    repetition: bool = True  # cut degenerate runs of one line
    reindent: bool = True  # Python: a block's first line goes deeper than its header
    syntax: bool = True  # tree-sitter: end at a whole syntactic unit
    keep_parse: bool = True  # never return a completion that breaks a file that parsed
    indent_fit: bool = True  # Python: a statement does not end right above deeper code


def postprocess(text: str, context: Context, stop_reason: str, options: PostOptions) -> str:
    """Raw model output -> what the editor shows, for single- and multi-line completions."""
    if not options.multiline:
        text = clean_single_line(text, context)
        if not text:
            return ""
        if options.reindent:
            text = indent_under_opener(text, context)
        if options.dedupe:
            text = drop_next_line_repeat(drop_line_above_repeat(text, context), context)
        if options.balance and text:
            text = balance_brackets(text, context)
        if options.keep_parse and text:
            text = syntax_truncate(text, context, keep_parse=True)
        if options.indent_fit and text:
            text = fit_block_below(text, context)
        return text
    text = drop_cut_line(text, stop_reason)
    text = trim_lines(text)
    if options.repetition:
        text = drop_repetition(text, language=context.syntax)
    if options.reindent:
        text = indent_under_opener(text, context)
    if options.dedupe:
        text = drop_suffix_repeat(text, context)
        text = drop_line_above_repeat(text, context)
    if options.balance and text and "\n" not in text:
        text = balance_brackets(text, context)
    if options.syntax and text:
        text = syntax_truncate(text, context, keep_parse=options.keep_parse)
    elif options.keep_parse and text:
        check = Insertion(context.prefix, context.suffix, context.syntax)
        if check.before is False and check.has_error(text):
            text = ""
    if options.indent_fit and text.strip():
        text = fit_block_below(trim_lines(text), context, whole_block=True)
    return trim_lines(text) if text.strip() else ""
