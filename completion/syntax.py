"""Tree-sitter helpers shared by the stages: parse a document, ask what is at the cursor.

Grammars come from PyPI (`tree-sitter-python`, `tree-sitter-javascript`, ...; the table is
completion/languages.py). A language without an installed grammar gets `None` from
`parser_for`, and every caller then falls back to plain-text rules, never an error.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any

from completion.languages import SPECS, resolve_language, spec_for

log = logging.getLogger(__name__)

# Nodes inside a string that hold code again (`f"{x}"`, `` `${x}` ``).
_CODE_IN_STRING = frozenset({"interpolation", "template_substitution"})


@functools.cache
def _parser(language: str) -> Any | None:
    spec = SPECS.get(language)
    if spec is None:
        return None
    try:
        import tree_sitter

        module = importlib.import_module(spec.grammar[0])
        return tree_sitter.Parser(tree_sitter.Language(getattr(module, spec.grammar[1])()))
    except Exception as exc:  # a missing or broken grammar: plain-text rules instead
        log.info("no tree-sitter grammar for %s: %s", language, exc)
        return None


def parser_for(language: str | None) -> Any | None:
    """A tree-sitter parser for `language` (an id or alias), or None without a grammar."""
    return _parser(resolve_language(language))


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
