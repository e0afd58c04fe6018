"""The frame guard under pygls' message loop: oversized frames and lines are dropped."""

from __future__ import annotations

import io

from lsp_server.framing import MAX_FRAME, MAX_LINE, GuardedReader


def _frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_frame_over_the_limit_is_left_unread_and_the_next_header_found() -> None:
    stream = io.BytesIO(b"Content-Length: 99999999999999\r\n\r\n{}" + _frame(b'{"id": 1}'))
    reader = GuardedReader(stream)
    assert reader.readline() == b"Content-Length: 99999999999999\r\n"
    assert reader.readline() == b"\r\n"
    assert reader.read(99999999999999) == b"null"  # no message; nothing was allocated
    assert reader.readline() == b"Content-Length: 9\r\n"  # found behind the dropped "{}"
    assert reader.readline() == b"\r\n"
    assert reader.read(9) == b'{"id": 1}'


def test_a_frame_at_the_limit_is_read() -> None:
    reader = GuardedReader(io.BytesIO(b"x" * MAX_FRAME))
    assert len(reader.read(MAX_FRAME)) == MAX_FRAME


def test_an_overlong_line_is_skipped_to_its_end() -> None:
    stream = io.BytesIO(b"X-Junk: " + b"y" * (3 * MAX_LINE) + b"\r\n" + _frame(b"{}"))
    reader = GuardedReader(stream)
    assert len(reader.readline()) <= 64  # the tail only
    assert reader.readline() == b"Content-Length: 2\r\n"
    assert reader.readline() == b"\r\n"
    assert reader.read(2) == b"{}"
