r"""Open documents as the server keeps them: LSP's line ends, and edits that cost the edit.

pygls' `TextDocument` ends lines where Python's `str.splitlines` does (form feed, U+0085,
U+2028, U+2029 and \x1c-\x1e too), so an edit after such a character landed on the wrong
line; and it re-splits and rebuilds the whole text on every change, which held up the event
loop for a tenth of a second per keystroke in a 50 MB file. Here only \n, \r\n and \r end
lines, and the text is kept in pieces with their line-end counts: an edit rebuilds the
pieces it touches, and the whole text is joined once, when it is read.

`RecentDocuments` and `root_of` give the other open documents and the workspace folder
that cross-file context draws on.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

from completion.crossfile import MAX_DOCUMENTS
from completion.document import Document
from completion.positions import offset_at

PIECE = 1 << 16  # characters per piece of a document's text

_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _line_ends(piece: str) -> int:
    return piece.count("\n") + piece.count("\r") - piece.count("\r\n")


def split_pieces(text: str) -> list[str]:
    """`text` cut every PIECE characters, never inside a CRLF."""
    pieces: list[str] = []
    pos, n = 0, len(text)
    while pos < n:
        end = min(pos + PIECE, n)
        if text[end - 1] == "\r" and text[end : end + 1] == "\n":
            end += 1
        pieces.append(text[pos:end])
        pos = end
    return pieces


class PieceText:
    """A text that takes edits at LSP positions without copying all of it.

    Invariant: no CRLF is split between two pieces, so each line end lies in one piece and
    a piece's count of line ends is exact.
    """

    def __init__(self, text: str = "") -> None:
        self.set(text)

    def set(self, text: str) -> None:
        """Replace the whole text."""
        self._pieces = split_pieces(text) or [""]
        self._ends = [_line_ends(p) for p in self._pieces]
        self._joined: str | None = text

    @property
    def text(self) -> str:
        """The whole text (joined on first read after an edit)."""
        if self._joined is None:
            self._joined = "".join(self._pieces)
        return self._joined

    def line_start(self, line: int) -> int | None:
        """Offset where `line` begins, or None past the last line."""
        if line <= 0:
            return 0
        seen = pos = 0
        for piece, ends in zip(self._pieces, self._ends, strict=True):
            if seen + ends >= line:
                for m in _BREAK.finditer(piece):
                    seen += 1
                    if seen == line:
                        return pos + m.end()
            seen += ends
            pos += len(piece)
        return None

    def _find(self, offset: int) -> tuple[int, int]:
        """(index, start) of the piece holding `offset` (its end belongs to it too)."""
        pos = 0
        for i, piece in enumerate(self._pieces):
            if offset <= pos + len(piece):
                return i, pos
            pos += len(piece)
        last = len(self._pieces) - 1
        return last, pos - len(self._pieces[last])

    def slice(self, start: int, stop: int) -> str:
        """text[start:stop], read from the pieces."""
        i, pos = self._find(start)
        parts: list[str] = []
        while i < len(self._pieces) and pos < stop:
            piece = self._pieces[i]
            parts.append(piece[max(start - pos, 0) : stop - pos])
            pos += len(piece)
            i += 1
        return "".join(parts)

    def offset(self, line: int, character: int, encoding: str = "utf-16") -> int:
        """Code-point offset of an LSP position, clamped like `completion.positions.offset_at`."""
        if line < 0:
            return 0
        start = self.line_start(line)
        if start is None:
            return sum(map(len, self._pieces))
        # a character is at least one code unit: the position lies within `character` code
        # points of the line's start (offset_at stops at the line's end)
        head = self.slice(start, start + max(character, 0))
        return start + offset_at(head, 0, character, encoding)

    def replace(self, start: int, stop: int, new: str) -> None:
        """Replace text[start:stop] with `new` (a reversed span is taken the right way round)."""
        start, stop = min(start, stop), max(start, stop)
        i, i_pos = self._find(start)
        j, j_pos = self._find(stop)
        merged = self._pieces[i][: start - i_pos] + new + self._pieces[j][stop - j_pos :]
        # take in a neighbour that could form a CRLF with the edited text: no CRLF is split
        last = len(self._pieces) - 1
        if i > 0 and self._pieces[i - 1].endswith("\r"):
            i -= 1
            merged = self._pieces[i] + merged
        if j < last and self._pieces[j + 1].startswith("\n"):
            j += 1
            merged += self._pieces[j]
        pieces = split_pieces(merged)
        if not pieces and i == 0 and j == last:
            pieces = [""]
        self._pieces[i : j + 1] = pieces
        self._ends[i : j + 1] = [_line_ends(p) for p in pieces]
        self._joined = None


def encoding_name(encoding: Any) -> str:
    """'utf-8', 'utf-16' or 'utf-32' from pygls' negotiated position encoding."""
    return str(getattr(encoding, "value", encoding) or "utf-16")


class LspDocument(TextDocument):
    """pygls' document with LSP's line ends and cheap incremental edits (see the module)."""

    def __init__(self, uri: str, source: str | None = None, **kwargs: Any) -> None:
        super().__init__(uri, source, **kwargs)
        self._text = PieceText(source or "")
        self._source = None  # the pieces hold the text

    @property
    def source(self) -> str:
        """The document's text."""
        return self._text.text

    @property
    def lines(self) -> tuple[str, ...]:
        """The lines with their ends, as LSP counts them (for pygls' own helpers)."""
        return tuple(_LINE.findall(self.source))

    @property
    def encoding(self) -> str:
        """The position encoding negotiated with the client."""
        return encoding_name(self.position_codec.encoding)

    def offset_of(self, position: types.Position) -> int:
        """Code-point offset of an LSP position (clamped to the document)."""
        return self._text.offset(position.line, position.character, self.encoding)

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        start = self.offset_of(change.range.start)
        stop = self.offset_of(change.range.end)
        self._text.replace(start, stop, change.text)

    def _apply_full_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        self._text.set(change.text)


class LspWorkspace(Workspace):
    """pygls' workspace, holding `LspDocument`s."""

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LspDocument(
            doc_uri,
            source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )

    @classmethod
    def like(cls, workspace: Workspace, sync_kind: types.TextDocumentSyncKind) -> LspWorkspace:
        """A workspace with the same root, folders and position encoding (still empty)."""
        return cls(
            workspace.root_uri,
            sync_kind,
            list(workspace.folders.values()),
            workspace.position_codec.encoding,
        )


class RecentDocuments:
    """The uris of the documents used lately, most recent last (a few times MAX_DOCUMENTS)."""

    def __init__(self) -> None:
        self.uris: OrderedDict[str, None] = OrderedDict()

    def touch(self, uri: str) -> None:
        """Note a document as the most recently used."""
        self.uris[uri] = None
        self.uris.move_to_end(uri)
        while len(self.uris) > 4 * MAX_DOCUMENTS:
            self.uris.popitem(last=False)

    def forget(self, uri: str) -> None:
        """A closed document is no source of context."""
        self.uris.pop(uri, None)

    def others(self, workspace: Workspace, uri: str) -> tuple[Document, ...]:
        """The other open documents, most recently used first, at most MAX_DOCUMENTS."""
        docs: list[Document] = []
        for other in reversed(self.uris):
            doc = workspace.text_documents.get(other)
            if other == uri or doc is None:
                continue
            docs.append(Document(doc.path, doc.source, doc.language_id or "plaintext"))
            if len(docs) >= MAX_DOCUMENTS:
                break
        return tuple(docs)


def root_of(workspace: Workspace, path: str | None) -> str | None:
    """The workspace folder that holds `path` (the innermost), else the root path."""
    folders = [to_fs_path(f.uri) for f in workspace.folders.values()]
    inside = [f for f in folders if f and path and path.startswith(f.rstrip(os.sep) + os.sep)]
    return max(inside, key=len) if inside else workspace.root_path
