"""Tree-sitter helpers shared by the stages: parse a document, ask what is at the cursor.

Grammars come from PyPI (`tree-sitter-python`, `tree-sitter-javascript`, ...; the table is
completion/languages.py). A language without an installed grammar gets `None` from
`parser_for`, and every caller then falls back to plain-text rules, never an error.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from typing import Any

from completion.languages import SPECS, resolve_language, spec_for

log = logging.getLogger(__name__)

# Nodes inside a string that hold code again (`f"{x}"`, `` `${x}` ``).
_CODE_IN_STRING = frozenset({"interpolation", "template_substitution"})


@functools.cache
def _grammar(language: str) -> Any | None:
    spec = SPECS.get(language)
    if spec is None:
        return None
    try:
        import tree_sitter

        module = importlib.import_module(spec.grammar[0])
        return tree_sitter.Language(getattr(module, spec.grammar[1])())
    except Exception as exc:  # a missing or broken grammar: plain-text rules instead
        log.info("no tree-sitter grammar for %s: %s", language, exc)
        return None


_local = threading.local()  # a parser is not shared between threads


def parser_for(language: str | None) -> Any | None:
    """A tree-sitter parser for `language` (an id or alias), or None without a grammar."""
    language = resolve_language(language)
    parsers: dict[str, Any] = _local.__dict__.setdefault("parsers", {})
    if language not in parsers:
        grammar = _grammar(language)
        if grammar is None:
            parsers[language] = None
        else:
            import tree_sitter

            parsers[language] = tree_sitter.Parser(grammar)
    return parsers[language]


def parse(text: str, language: str | None) -> Any | None:
    """The syntax tree of `text`, or None without a grammar."""
    parser = parser_for(language)
    if parser is None:
        return None
    return parser.parse(text.encode("utf-8"))


def has_error(text: str, language: str | None) -> bool | None:
    """Whether `text` has a syntax error; None when the language has no grammar."""
    tree = parse(text, language)
    return None if tree is None else bool(tree.root_node.has_error)


def in_comment_or_string(text: str, offset: int, language: str | None) -> bool | None:
    """Whether code-point `offset` lies inside a comment or a string (None: unknown)."""
    spec = spec_for(language)
    tree = parse(text, language)
    if spec is None or tree is None:
        return None
    source = text.encode("utf-8")
    byte = len(text[:offset].encode("utf-8"))
    # the smallest node around the character before the cursor
    node = tree.root_node.descendant_for_byte_range(max(0, byte - 1), byte)
    while node is not None:
        if not node.is_named:  # a keyword such as TypeScript's `string` type
            pass
        elif node.type in _CODE_IN_STRING and node.start_byte < byte < node.end_byte:
            return False  # inside `{...}` of an f-string or template: code
        elif node.type in spec.comment_types:
            if source[node.start_byte : node.start_byte + 2] == b"/*":
                return bool(node.start_byte < byte < node.end_byte)
            # a line comment ends at the line break: the cursor after it is still inside
            return bool(node.start_byte < byte <= node.end_byte)
        elif node.type in spec.string_types:
            while node.parent is not None and node.parent.type in spec.string_types:
                node = node.parent  # the whole literal, quotes included
            return bool(node.start_byte < byte < node.end_byte)
        node = node.parent
    return False


def in_brackets(text: str, offset: int, language: str | None) -> bool | None:
    """Whether code-point `offset` lies inside a bracketed construct (None: no grammar)."""
    tree = parse(text, language)
    if tree is None:
        return None
    byte = len(text[:offset].encode("utf-8"))
    node = tree.root_node.descendant_for_byte_range(byte, byte)
    while node is not None:
        first = node.child(0) if node.child_count else None
        if (
            first is not None
            and first.type in ("(", "[", "{")
            and node.start_byte < byte < node.end_byte
        ):
            return True
        node = node.parent
    return False


def _end_point(row: int, column: int, text: bytes) -> Any:
    """Where `text` ends when it starts at (row, column), as tree-sitter counts (bytes)."""
    import tree_sitter

    lines = text.count(b"\n")
    if lines == 0:
        return tree_sitter.Point(row, column + len(text))
    return tree_sitter.Point(row + lines, len(text) - text.rfind(b"\n") - 1)


class Insertion:
    """Texts inserted at one place of a document, each checked for syntax errors.

    The document is parsed once; each inserted text re-parses it incrementally from that
    tree, which costs a fraction of a whole parse on a long file.
    """

    def __init__(self, prefix: str, suffix: str, language: str | None) -> None:
        self._parser = parser_for(language)
        self._prefix = prefix.encode("utf-8")
        self._suffix = suffix.encode("utf-8")
        self._tree = None
        if self._parser is not None:
            self._tree = self._parser.parse(self._prefix + self._suffix)
            self._at = _end_point(0, 0, self._prefix)

    @property
    def before(self) -> bool | None:
        """Whether the document without an insertion has an error; None without a grammar."""
        return None if self._tree is None else bool(self._tree.root_node.has_error)

    def has_error(self, text: str) -> bool | None:
        """Whether the document with `text` inserted has an error; None without a grammar."""
        if self._tree is None or self._parser is None:
            return None
        inserted = text.encode("utf-8")
        start = len(self._prefix)
        tree = self._tree.copy()
        tree.edit(
            start_byte=start,
            old_end_byte=start,
            new_end_byte=start + len(inserted),
            start_point=self._at,
            old_end_point=self._at,
            new_end_point=_end_point(self._at.row, self._at.column, inserted),
        )
        new = self._parser.parse(self._prefix + inserted + self._suffix, tree)
        return bool(new.root_node.has_error)
