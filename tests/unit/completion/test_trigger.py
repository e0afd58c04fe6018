"""should_complete: none, single-line or multi-line, from the text and syntax at the cursor."""

import pytest
from language_cases import BY_ID, CASES, MID_LINE_OFF, MULTI, NO_COMMENTS, Case, mode

from completion.lines import opens_block
from completion.syntax import in_comment_or_string
from completion.trigger import Mode, TriggerOptions


def test_mid_line_only_before_blanks_or_closers() -> None:
    assert mode("x = foo(|)\n") is Mode.SINGLE
    assert mode("x = foo(a|  ]) \n") is Mode.SINGLE
    assert mode("x = fo|o(a)\n") is Mode.NONE
    assert (
        mode(
            "x = fo|o(a)\n",
            options=TriggerOptions(mid_line_rule=False, multiline=False, mid_word_only=False),
        )
        is Mode.SINGLE
    )


def test_mid_word_only_rule_blocks_only_inside_a_word() -> None:
    narrow = TriggerOptions(multiline=True, mid_word_only=True)
    assert mode("x = fo|o(a)\n", options=narrow) is Mode.NONE
    assert mode("if |x > 0:\n", options=narrow) is Mode.NONE
    assert mode("print(|x, sep='')\n", options=narrow) is Mode.NONE
    assert mode("if x |> 0:\n", options=narrow) is Mode.SINGLE
    assert mode("total = sum(|) + 1\n", options=narrow) is Mode.SINGLE
    assert mode("for i in range(n|):\n", options=narrow) is Mode.SINGLE
    assert mode("name = '|'\n", options=narrow) is Mode.SINGLE  # never multi-line mid-line


def test_a_block_may_follow_wherever_the_line_ends_at_the_cursor() -> None:
    """An empty line, a header, the end of a line with code: the block stop decides the rest."""
    assert mode("def f(x):\n    |\n") is Mode.MULTI
    assert mode("def f(x):|\n") is Mode.MULTI
    assert mode("def f(x):|\n    return x\n") is Mode.MULTI  # the stop rule sees the body
    assert mode("d = {'a':|\n") is Mode.MULTI
    assert mode("x = 1|\n") is Mode.MULTI
    assert mode("x = foo(|)\n") is Mode.SINGLE  # code (a closer) after the cursor


def test_multi_line_off_gives_single_line() -> None:
    assert (
        mode("def f(x):\n    |\n", options=TriggerOptions(multiline=False, mid_word_only=False))
        is Mode.SINGLE
    )


def test_comments_and_strings_off_by_option() -> None:
    off = TriggerOptions(in_comments=False, multiline=False, mid_word_only=False)
    assert mode("# a comment |\nx = 1\n", options=off) is Mode.NONE
    assert mode('s = "abc|"\n', options=off) is Mode.NONE
    assert mode("x = 1  |\n", options=off) is Mode.SINGLE
    assert mode("# a comment |\nx = 1\n") is Mode.MULTI  # on by default


def test_unknown_language_falls_back_to_text_rules() -> None:
    assert in_comment_or_string("# x", 3, "cobol") is None
    assert mode("begin {|\n", "cobol") is Mode.MULTI
    assert mode("some te|xt\n", "cobol") is Mode.NONE
    off = TriggerOptions(in_comments=False, multiline=True, mid_word_only=False)
    assert mode("x = 1\n|\n", "cobol", off) is Mode.MULTI


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_trigger_block_opener_is_multi_line(case: Case) -> None:
    """Nothing after the cursor on its line: a block may follow (a header, a line's end)."""
    assert mode(case.header, case.language, MULTI) is Mode.MULTI
    assert (
        mode(case.header, case.language, TriggerOptions(multiline=False, mid_word_only=False))
        is Mode.SINGLE
    )
    assert mode(case.hole, case.language, MULTI) is Mode.MULTI
    assert mode(case.statement, case.language, MULTI) is Mode.MULTI
    line = case.header[: case.header.index("|")].split("\n")[-1]
    assert opens_block(line, case.language)
    assert not opens_block(case.statement[: case.statement.index("|")], case.language)


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_trigger_mid_line_rule(case: Case) -> None:
    assert mode(case.mid_line, case.language, MULTI) is Mode.NONE
    assert mode(case.mid_line, case.language, MID_LINE_OFF) is Mode.SINGLE


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_trigger_in_comment_or_string_off_by_option(case: Case) -> None:
    for doc in (case.comment, case.string):
        assert mode(doc, case.language, NO_COMMENTS) is Mode.NONE, doc
        assert mode(doc, case.language, MID_LINE_OFF) is Mode.SINGLE, doc  # on by default
    assert mode(case.code, case.language, NO_COMMENTS) is Mode.SINGLE
    assert mode(case.statement, case.language, NO_COMMENTS) is Mode.SINGLE
