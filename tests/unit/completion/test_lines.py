"""completion/lines.py: the one reading of depth, neighbours, brackets and block headers."""

from __future__ import annotations

import pytest

from completion.lines import (
    block_closer,
    bracket_depth,
    code_above,
    code_below,
    indent_of,
    open_brackets,
    opens_block,
    opens_indent,
    repeats,
    unclosed,
)
from completion.trigger import Mode


def test_indent_counts_a_tab_as_four() -> None:
    assert indent_of("    x") == 4
    assert indent_of("\tx") == 4
    assert indent_of("\t  x") == 6
    assert indent_of("") == 0


def test_neighbours_skip_blank_lines_and_the_cursors_line() -> None:
    prefix = "def f():\n    a = 1\n\n    "
    suffix = "b\n\n    return a\n  \n"
    assert code_above(prefix) == "    a = 1"
    assert code_below(suffix) == ["    return a"]
    assert code_above("x = ") == ""
    assert code_below("") == []


@pytest.mark.parametrize(
    ("line", "language", "header"),
    [
        ("    if x:", "python", True),
        ("    if x:  # the usual case", "python", True),
        ("async def f():", "python", True),
        ('    if s == "a:":', "python", True),
        ("    x = {", "python", False),  # a literal, not a block
        ("    f = lambda:", "python", False),
        ('    print("if x:")', "python", False),
        ("function f() {", "javascript", True),
        ("if (x) { // comment", "javascript", True),
        ('const s = "{";', "javascript", False),
        ("    case 3:", "go", True),
        ("    default:", "c", True),
        ("fn main() {", "rust", True),
        # a C-family control header whose one statement follows without braces
        ("    for (let k = 2; k < n - 1; k++)", "javascript", True),
        ("    } else", "java", True),
        ("else if (f(a) && g(b))", "cpp", True),
        ("    do", "c", True),
        ("if (x) foo(y)", "javascript", False),  # the statement is on the line
        ("if (x) return;", "c", False),
        ("x = (a)", "java", False),
        ("if (x)", "go", False),  # Go and Rust take braces only
        ("while (x)", "rust", False),
        ("note:", "", True),  # plain text: either convention
        ("x {", "", True),
    ],
)
def test_block_headers_by_language(line: str, language: str, header: bool) -> None:
    assert opens_block(line, language) is header


def test_an_open_bracket_deepens_the_next_line_but_is_no_header() -> None:
    assert opens_indent("    x = {", "python")
    assert opens_indent("    call(", "python")
    assert opens_indent("    if x:", "python")
    assert not opens_indent("    return x", "python")
    assert not opens_indent('    s = "("', "python")


def test_brackets_ignore_strings_and_comments() -> None:
    assert open_brackets("f(a, [1, '(']", "python") == ["("]
    assert open_brackets("f(a))", "python") is None
    assert unclosed("} else {", "javascript") == 1
    assert bracket_depth("}) // x(", "javascript") == (2, -2)


@pytest.mark.parametrize(
    ("doc", "language", "expected"),
    [
        ("switch (x) {\ncase 1:|\ncase 2:\n    break;\n}\n", "c", Mode.MULTI),
        ("switch x {\ncase 1:|\n}\n", "go", Mode.MULTI),
        ("switch (x) {\n    default:|\n}\n", "java", Mode.MULTI),
        ("label:|\n", "c", Mode.SINGLE),
        ("if x:|\n", "javascript", Mode.SINGLE),  # a Python header in a brace language
        ("if x {|\n", "python", Mode.SINGLE),  # and the other way round
        ("foo(() => {|\n});\n", "javascript", Mode.MULTI),
    ],
)
def test_block_openers_per_language(doc: str, language: str, expected: Mode) -> None:
    """What opens a block, per language (a block's first line is not shown alone if it does)."""
    line = doc[: doc.index("|")].split("\n")[-1]
    assert opens_block(line, language) is (expected is Mode.MULTI)


def test_closers_of_nested_blocks_are_no_repetition() -> None:
    assert block_closer("    });", "javascript")
    assert block_closer("}", "go")
    assert not block_closer("}", "python")
    assert not block_closer("}", "")
    assert not block_closer("} else {", "java")
    assert not block_closer("", "c")
    assert not repeats("      }", "    }", "rust")
    assert repeats("  x++;", "  x++;", "cpp")
    assert repeats("    ]", "    ]", "python")  # Python and plain text as before
    assert repeats("}", "}", "")


def test_a_javascript_regular_expression_is_no_comment() -> None:
    assert open_brackets("let a = x.split(/\\//)", "javascript") == []
    assert open_brackets("if (/[({]/.test(s)) {", "javascript") == ["{"]
    assert open_brackets("const q = a / (b / c); // (", "javascript") == []
    assert open_brackets("x = a / b / c(", "typescript") == ["("]
