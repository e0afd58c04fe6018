"""The server's document model: LSP line ends, reversed ranges, edits by pieces."""

from __future__ import annotations

import random

import pytest
from lsprotocol import types
from pygls.workspace import PositionCodec

import lsp_server.documents as documents
from completion.positions import offset_at
from lsp_server.documents import LspDocument, PieceText

# characters Python's str.splitlines ends lines at, and LSP does not
NOT_LINE_ENDS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def _edit(doc: LspDocument, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
    doc.apply_change(
        types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(*start), types.Position(*end)), text=text
        )
    )


@pytest.mark.parametrize("separator", NOT_LINE_ENDS)
def test_only_lf_crlf_and_cr_end_lines(separator: str) -> None:
    doc = LspDocument("file:///t.py", f"a = 1{separator}b = 2\r\nc = \rd\n")
    _edit(doc, (1, 4), (1, 4), "3")  # line 1 is "c = ", after the CRLF
    assert doc.source == f"a = 1{separator}b = 2\r\nc = 3\rd\n"
    _edit(doc, (2, 0), (2, 1), "e")  # after the lone CR
    assert doc.source == f"a = 1{separator}b = 2\r\nc = 3\re\n"
    assert doc.lines == (f"a = 1{separator}b = 2\r\n", "c = 3\r", "e\n")


def test_a_reversed_range_is_taken_the_right_way_round() -> None:
    doc = LspDocument("file:///t.py", "one two three\n")
    _edit(doc, (0, 7), (0, 4), "2")
    assert doc.source == "one 2 three\n"


def test_positions_use_the_negotiated_encoding() -> None:
    text = 'x = "😀"\nok\n'
    utf8 = LspDocument("file:///t.py", text, position_codec=PositionCodec("utf-8"))
    _edit(utf8, (0, 9), (0, 9), "!")  # after the emoji: 4 bytes
    assert utf8.source == 'x = "😀!"\nok\n'
    utf16 = LspDocument("file:///t.py", text)
    _edit(utf16, (0, 7), (0, 7), "!")  # after the emoji: 2 units
    assert utf16.source == 'x = "😀!"\nok\n'


def test_piece_text_matches_plain_string_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random edits over tiny pieces: the same text and offsets as on a plain string."""
    rng = random.Random(7)
    alphabet = ["a", " ", "\r", "\n", "\r\n", "é", "😀", "\u2028", "\x0c"]
    for _ in range(400):
        monkeypatch.setattr(documents, "PIECE", rng.randint(1, 6))
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        pieces = PieceText(text)
        for _ in range(12):
            encoding = rng.choice(["utf-8", "utf-16", "utf-32"])
            lines = text.count("\n") + text.count("\r") - text.count("\r\n") + 2
            a = (rng.randint(-1, lines), rng.randint(0, 6))
            b = (rng.randint(-1, lines), rng.randint(0, 6))
            start, stop = offset_at(text, *a, encoding), offset_at(text, *b, encoding)
            assert pieces.offset(*a, encoding) == start
            assert pieces.offset(*b, encoding) == stop
            new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
            low, high = min(start, stop), max(start, stop)
            text = text[:low] + new + text[high:]
            pieces.replace(start, stop, new)
            assert pieces.text == text


def test_an_edit_rebuilds_one_piece_only() -> None:
    text = "value = compute(1, 2)\n" * 20_000  # 440 KB: seven pieces
    pieces = PieceText(text)
    before = list(pieces._pieces)
    at = pieces.offset(19_000, 5)
    pieces.replace(at, at, "x")
    changed = [i for i, (a, b) in enumerate(zip(before, pieces._pieces, strict=True)) if a != b]
    assert len(changed) == 1
    assert pieces.text == text[:at] + "x" + text[at:]
