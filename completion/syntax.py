"""Tree-sitter helpers shared by the stages: parse a document, ask what is at the cursor.

Grammars are optional: a language without an installed grammar gets `None` from
`parser_for`, and every caller then falls back to plain-text rules, never an error.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

# language id -> (module, function returning the grammar)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "javascriptreact": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "typescriptreact": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

# Node types that mean "inside a comment or a string" across the grammars above.
COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment"})
STRING_TYPES = frozenset(
    {
        "string",
        "string_content",
        "string_fragment",
        "string_literal",
        "raw_string_literal",
        "interpreted_string_literal",
        "template_string",
        "char_literal",
        "character_literal",
    }
)


@functools.cache
def parser_for(language: str) -> Any | None:
    """A tree-sitter parser for `language`, or None when no grammar is installed."""
    spec = _GRAMMARS.get(language.lower())
    if spec is None:
        return None
    try:
        import tree_sitter

        module = importlib.import_module(spec[0])
        return tree_sitter.Parser(tree_sitter.Language(getattr(module, spec[1])()))
    except Exception as exc:  # a missing or broken grammar: plain-text rules instead
        log.info("no tree-sitter grammar for %s: %s", language, exc)
        return None


def parse(text: str, language: str) -> Any | None:
    """The syntax tree of `text`, or None without a grammar."""
    parser = parser_for(language)
    if parser is None:
        return None
    return parser.parse(text.encode("utf-8"))


def has_error(text: str, language: str) -> bool | None:
    """Whether `text` has a syntax error; None when the language has no grammar."""
    tree = parse(text, language)
    return None if tree is None else bool(tree.root_node.has_error)


def in_comment_or_string(text: str, offset: int, language: str) -> bool | None:
    """Whether code-point `offset` lies inside a comment or a string (None: unknown)."""
    tree = parse(text, language)
    if tree is None:
        return None
    byte = len(text[:offset].encode("utf-8"))
    # the smallest node around the character before the cursor
    node = tree.root_node.descendant_for_byte_range(max(0, byte - 1), byte)
    while node is not None:
        if node.type in COMMENT_TYPES:
            # a line comment ends at the line break: the cursor after it is outside
            return bool(node.start_byte < byte <= node.end_byte)
        if node.type in STRING_TYPES:
            while node.parent is not None and node.parent.type in STRING_TYPES:
                node = node.parent  # the whole literal, quotes included
            return bool(node.start_byte < byte < node.end_byte)
        node = node.parent
    return False
