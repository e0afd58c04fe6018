"""Post-processing: what is kept of the model's text, string in, string out.

Re-indentation and indent fitting have their own files (test_reindent, test_indent_fit).
"""

from __future__ import annotations

import pytest
from cursor import context_at
from language_cases import BY_ID, CASES, Case

from completion.context import extract_context
from completion.postprocess import (
    PostOptions,
    balance_brackets,
    clean_single_line,
    drop_line_above_repeat,
    drop_next_line_repeat,
    drop_repetition,
    drop_suffix_repeat,
    postprocess,
    syntax_truncate,
)


def test_clean_single_line_drops_repeat_of_rest_of_line() -> None:
    ctx = extract_context("print(\n", len("print("))
    assert ctx.line_suffix == ""
    ctx = extract_context("x = foo()\n", len("x = foo("))
    assert clean_single_line("a, b)", ctx) == "a, b"
    assert clean_single_line("  \t", ctx) == ""
    assert clean_single_line(")", ctx) == ""
    assert clean_single_line("\n    y = 2", ctx) == ""  # cannot break the line in two


def test_drop_suffix_and_line_above_repeats() -> None:
    c = context_at("def f(x):\n    y = x\n|\n    return y\n")
    assert drop_suffix_repeat("    y += 1\n    return y", c) == "    y += 1"
    assert drop_line_above_repeat("    y = x\n    z = 1", c) == "    z = 1"
    assert drop_line_above_repeat("    z = 1", c) == "    z = 1"
    end = context_at("def f(x):\n    if x:\n        return False\n|")  # the same code, one level up
    assert drop_line_above_repeat("    return False", end) == "    return False"


def test_a_single_line_that_repeats_the_next_line_is_dropped() -> None:
    c = context_at("def f(x):\n    y = x\n|\n\n    return y\n")
    assert drop_next_line_repeat("    return y", c) == ""
    assert drop_next_line_repeat("    y += 1", c) == "    y += 1"
    assert postprocess("    return y", c, "stop_rule", PostOptions()) == ""
    assert postprocess("    return y", c, "stop_rule", PostOptions(dedupe=False)) == "    return y"
    mid = context_at("def f(x):\n    y = |x\n    return y\n")  # text right of the cursor: no rule
    assert drop_next_line_repeat("return y", mid) == "return y"


def test_balance_brackets_against_the_rest_of_the_line() -> None:
    assert balance_brackets("b)", context_at("x = foo(a, |)\n")) == "b"
    assert balance_brackets("b))", context_at("x = foo(bar(a, |))\n")) == "b"
    assert balance_brackets("g(1)", context_at("x = f(|)\n")) == "g(1)"
    assert balance_brackets("2]", context_at("x = [1, |]\n")) == "2"


def test_drop_repetition() -> None:
    assert drop_repetition("a\nb\nb\nb\nb") == "a\nb"
    assert drop_repetition("a\nb\nb") == "a\nb\nb"


def test_syntax_truncate_ends_at_a_whole_unit() -> None:
    c = context_at("def f(x):\n    if x:\n|\n    return 0\n")
    text = "        return 1\n    x = ("
    assert syntax_truncate(text, c, keep_parse=False) == "        return 1"


def test_keep_parse_drops_a_completion_that_breaks_the_file() -> None:
    c = context_at("x = 1\n|\ny = 2\n")
    assert syntax_truncate("z = (", c, keep_parse=True) == ""
    assert syntax_truncate("z = (", c, keep_parse=False) == "z = ("
    assert syntax_truncate("z = 3", c, keep_parse=True) == "z = 3"
    assert syntax_truncate("z = (", context_at("x = 1\n|\n", "cobol"), keep_parse=True) == "z = ("


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("    y = x  \n    return y\n", "    y = x"),
        ("    y = x\n    y = x\n    y = x\n    y = x\n", "    y = x"),
        ("\n\n", ""),
    ],
)
def test_postprocess_multi_line(raw: str, expected: str) -> None:
    c = context_at("def f(x):\n    a = 1\n|\n    return y\n")
    assert postprocess(raw, c, "end_token", PostOptions(multiline=True)) == expected


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_keep_parse_of_a_single_line(case: Case) -> None:
    c = context_at(case.single, case.language)
    options = PostOptions()
    assert postprocess(case.single_ok, c, "end_token", options) == case.single_ok
    assert postprocess(case.single_bad, c, "end_token", options) == ""
    off = PostOptions(keep_parse=False)
    assert postprocess(case.single_bad, c, "end_token", off) == case.single_bad


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_syntax_truncate_of_a_runaway_completion(case: Case) -> None:
    c = context_at(case.hole, case.language)
    assert syntax_truncate(case.runaway, c, keep_parse=True) == case.runaway_cut
    multi = PostOptions(multiline=True)
    assert postprocess(case.runaway, c, "end_token", multi) == case.runaway_cut
    # without the syntax stage keep-parse can only drop it all
    no_syntax = PostOptions(multiline=True, syntax=False)
    assert postprocess(case.runaway, c, "end_token", no_syntax) == ""
    neither = PostOptions(multiline=True, syntax=False, keep_parse=False)
    assert postprocess(case.runaway, c, "end_token", neither) == case.runaway
    broken = case.runaway.split("\n")[-1].strip()  # only the line that breaks the file
    assert syntax_truncate(broken, c, keep_parse=True) == ""
    assert syntax_truncate(broken, c, keep_parse=False) == broken


def test_brace_closers_of_nested_blocks_are_kept() -> None:
    """`}` under `}` is no degenerate run; a closer of the completion's block is no repeat."""
    assert drop_repetition("a {\n b {\n  c {\n  }\n }\n}", language="go").count("}") == 3
    assert drop_repetition("a\n  }\n  }\n  }", language="python") == "a\n  }"  # as before
    c = context_at("void f() {\n    for (;;) {\n|\n    }\n}\n", "java")
    body = "        if (y) {\n            g();\n        }"
    assert drop_suffix_repeat(body, c) == body
    assert postprocess(body + "\n    }", c, "end_token", PostOptions(multiline=True)) == body
