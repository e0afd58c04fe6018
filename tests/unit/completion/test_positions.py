import pytest

from completion.positions import line_starts, offset_at, position_at

TEXT = "a😀b\r\n日本語x\nlast"


def test_line_starts_handle_crlf_and_lf() -> None:
    assert line_starts(TEXT) == [0, 5, 10]
    assert line_starts("a\rb") == [0, 2]


@pytest.mark.parametrize(
    ("line", "character", "expected"),
    [
        (0, 0, 0),
        (0, 1, 1),  # after "a"
        (0, 3, 2),  # after the emoji: two UTF-16 units
        (0, 2, 1),  # inside the surrogate pair: stays before the emoji
        (0, 4, 3),  # after "b"
        (0, 99, 3),  # past the end of the line: clamped before "\r\n"
        (1, 3, 8),  # CJK: one unit each
        (1, 4, 9),
        (2, 4, 14),
        (9, 0, len(TEXT)),  # past the last line
        (-1, 5, 0),
    ],
)
def test_offset_at_utf16(line: int, character: int, expected: int) -> None:
    assert offset_at(TEXT, line, character) == expected


def test_offset_at_other_encodings() -> None:
    assert offset_at(TEXT, 0, 5, "utf-8") == 2  # "a" + 4 bytes of emoji
    assert offset_at(TEXT, 1, 3, "utf-8") == 6  # one CJK char is 3 bytes
    assert offset_at(TEXT, 0, 2, "utf-32") == 2


@pytest.mark.parametrize("offset", range(len(TEXT) + 1))
def test_position_round_trip(offset: int) -> None:
    line, character = position_at(TEXT, offset)
    back = offset_at(TEXT, line, character)
    # offsets inside a CRLF pair map to the end of the line content
    assert back == offset or TEXT[back:offset] in ("\r", "\r\n")
