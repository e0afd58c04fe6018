"""Where the replay types: a definition in the middle of the file, code below the cursor."""

from __future__ import annotations

from offpilot.bench.replay.session import (
    ReplayOptions,
    chunks_of_lines,
    first_line_as_typed,
    split_for_typing,
)

FILE = "import os\n\n\n" + "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(9))


def test_middle_types_the_definition_nearest_the_middle_with_the_rest_below() -> None:
    above, typed, below = split_for_typing(FILE, ReplayOptions(start_lines=1))
    assert above + typed + below == FILE
    assert typed == "def f4():\n    return 4\n\n\n"
    assert below.startswith("def f5():")
    assert above.endswith("    return 3\n\n\n")


def test_end_types_after_the_first_lines_and_a_file_without_definitions_too() -> None:
    above, typed, below = split_for_typing(FILE, ReplayOptions(start_lines=3, at="end"))
    assert (above, below) == ("import os\n\n\n", "")
    assert typed == FILE[len(above) :]
    plain = "x = 1\n" * 20
    assert split_for_typing(plain, ReplayOptions(start_lines=2)) == (
        "x = 1\n" * 2,
        "x = 1\n" * 18,
        "",
    )


def test_a_suggestion_is_checked_against_the_line_the_user_types_next() -> None:
    # at a line's end the suggestion brings the newline and indent the user has yet to type
    assert first_line_as_typed("\n    return 4", "\n    return 4\n\n\ndef f5():")
    assert first_line_as_typed("return 4\n\n", "return 4\n")  # after Enter and the indent
    assert first_line_as_typed("x = 1\ny = 2", "x = 1\ny = 3\n")  # the first line decides
    assert not first_line_as_typed("return 5", "return 4\n")
    assert not first_line_as_typed("return", "return 4\n")  # a prefix is not the line
    assert not first_line_as_typed("\n\n", "\n")  # nothing shown to match


def test_two_files_take_turns_in_pieces_of_lines_each_starting_on_code() -> None:
    text = "def f():\n    x = 1\n    y = 2\n    return x\n\n\nz = 3\n"
    pieces = chunks_of_lines(text, 2)
    assert "".join(pieces) == text
    # blank lines count as lines
    assert pieces == ["def f():\n    x = 1\n    ", "y = 2\n    return x\n", "\n\n", "z = 3\n"]
    assert chunks_of_lines(text, 0) == [text]
    assert chunks_of_lines("", 3) == []
