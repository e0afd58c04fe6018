"""Bounds on what one LSP frame may make the server read.

pygls reads a frame's body with `stdin.read(Content-Length)`: a header claiming
99999999999999 bytes raised MemoryError outside its error handling, and the message loop
died. `GuardedReader` wraps the stream pygls reads: a body over MAX_FRAME is not read;
the frame is dropped with a warning and reading resumes at the next `Content-Length`
header, wherever the dropped bytes end. A header line over MAX_LINE is cut the same way.
`GuardedAsyncReader` does the same for `--tcp`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import BinaryIO

log = logging.getLogger("offpilot.server")

MAX_FRAME = 64 << 20  # bytes in one message body (a 50 MB document fits, JSON-escaped)
MAX_LINE = 64 << 10  # bytes in one header line
_HEADER = re.compile(rb"Content-Length: \d+\r\n")  # the header pygls looks for
_TAIL = 64  # bytes of an overlong line kept: enough to hold a header that ends it


def _header_in(line: bytes) -> bytes | None:
    """The `Content-Length` header that ends `line` (after dropped bytes), or None."""
    at = line.rfind(b"Content-Length: ")
    return line[at:] if at >= 0 and _HEADER.fullmatch(line, at) else None


def _dropped(size: int) -> None:
    log.warning(
        "dropped a message of %d bytes (the limit is %d); reading on at the next header",
        size, MAX_FRAME,
    )  # fmt: skip


class GuardedReader:
    """The `readline`/`read` stream that pygls' message loop reads, with MAX_FRAME enforced."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._resync = False  # after a dropped frame: look for the next header in any line

    def readline(self) -> bytes:
        """One header line; after a dropped frame, the next header found inside a line."""
        line = self._stream.readline(MAX_LINE)
        if len(line) == MAX_LINE and not line.endswith(b"\n"):
            line = self._skip_line(line)
        if self._resync and (header := _header_in(line)) is not None:
            self._resync = False
            return header
        return line

    def read(self, size: int) -> bytes:
        """A frame's body; one over MAX_FRAME is left unread and stands for no message."""
        if size <= MAX_FRAME:
            return self._stream.read(size)
        _dropped(size)
        self._resync = True
        return b"null"  # parses to None, which the protocol ignores

    def _skip_line(self, start: bytes) -> bytes:
        """Read an overlong line to its end, keeping only its tail."""
        log.warning("skipping a line of more than %d bytes in the message stream", MAX_LINE)
        self._resync = True
        tail = start[-_TAIL:]
        while chunk := self._stream.readline(MAX_LINE):
            tail = (tail + chunk)[-_TAIL:]
            if chunk.endswith(b"\n"):
                break
        return tail


class GuardedAsyncReader:
    """The same bounds for `--tcp`, over the asyncio stream pygls' `run_async` reads.

    An oversized body is not read: the frame is dropped with a warning and reading resumes
    at the next `Content-Length` header. A line past the stream's limit (asyncio raises
    ValueError and discards it) reads as a header line that means nothing.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._resync = False

    async def readline(self) -> bytes:
        """One header line; after a dropped frame, the next header found inside a line."""
        try:
            line = await self._reader.readline()
        except ValueError:  # asyncio's LimitOverrun: the line is gone from its buffer
            log.warning("skipping an overlong line in the message stream")
            self._resync = True
            return b"X-Offpilot-Dropped: line\r\n"
        if self._resync:
            header = _header_in(line)
            if header is None:
                return b"X-Offpilot-Dropped: body\r\n" if line else line
            self._resync = False
            return header
        return line

    async def readexactly(self, n: int) -> bytes:
        """A frame's body; one over MAX_FRAME is left unread and stands for no message."""
        if n <= MAX_FRAME:
            return await self._reader.readexactly(n)
        _dropped(n)
        self._resync = True
        return b"null"
