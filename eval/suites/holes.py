"""Holes to blank in a Python file: whole lines picked from its syntax tree (tree-sitter).

For each exercised function: a `line` (one simple statement), a `block` (the body of an
if/for/while/with/try inside it) or the whole `body` (after the docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_BODY_LINES = 15
MAX_BLOCK_LINES = 8
SIMPLE_STATEMENTS = {
    "expression_statement",
    "return_statement",
    "assert_statement",
    "raise_statement",
    "delete_statement",
    "augmented_assignment",
}
COMPOUND = {
    "if_statement",
    "for_statement",
    "while_statement",
    "with_statement",
    "try_statement",
}


@dataclass(frozen=True)
class Hole:
    """Whole lines [start, end) of a file (0-based rows) to blank, and what they are."""

    kind: str  # line / block / body
    start: int
    end: int
    function: str
    def_row: int


def python_parser() -> Any:
    """A tree-sitter parser for Python (imported here: only make-tasks needs it)."""
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def holes(source: bytes, def_rows: set[int], parser: Any = None) -> list[Hole]:
    """Candidate holes in the functions whose `def` (or first decorator) is on `def_rows`."""
    tree = (parser or python_parser()).parse(source)
    found: list[Hole] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.children))
        if node.type != "function_definition":
            continue
        rows = {node.start_point[0]}
        if node.parent is not None and node.parent.type == "decorated_definition":
            rows.add(node.parent.start_point[0])
        if not rows & def_rows:
            continue
        name_node = node.child_by_field_name("name")
        name = name_node.text.decode() if name_node is not None and name_node.text else "?"
        found += _function_holes(node, name)
    return found


def _function_holes(fn: Any, name: str) -> list[Hole]:
    body = fn.child_by_field_name("body")
    if body is None:
        return []
    stmts = [c for c in body.named_children if c.type != "comment"]
    if stmts and _is_docstring(stmts[0]):
        stmts = stmts[1:]
    if not stmts or stmts[0].start_point[0] == fn.start_point[0]:  # one-line def
        return []
    row = fn.start_point[0]
    out: list[Hole] = []
    first, last = stmts[0].start_point[0], stmts[-1].end_point[0] + 1
    if last - first <= MAX_BODY_LINES:
        out.append(Hole("body", first, last, name, row))
    stack = list(stmts)
    while stack:
        node = stack.pop()
        if node.type in ("function_definition", "class_definition", "decorated_definition"):
            continue  # nested definitions get their own turn
        one_line = node.start_point[0] == node.end_point[0]
        if node.type in SIMPLE_STATEMENTS and one_line and not _is_docstring(node):
            out.append(Hole("line", node.start_point[0], node.end_point[0] + 1, name, row))
        if node.type in COMPOUND:
            for child in node.named_children:
                if child.type == "block":
                    b0, b1 = child.start_point[0], child.end_point[0] + 1
                    if 2 <= b1 - b0 <= MAX_BLOCK_LINES and b0 > node.start_point[0]:
                        out.append(Hole("block", b0, b1, name, row))
        for child in node.named_children:
            if child.type == "block" or child.type.endswith("clause"):
                stack.extend(c for c in child.named_children if c.type != "comment")
            elif child.type in COMPOUND or child.type in SIMPLE_STATEMENTS:
                stack.append(child)
    return out


def _is_docstring(node: Any) -> bool:
    return bool(
        node.type == "expression_statement"
        and node.named_children
        and node.named_children[0].type == "string"
    )
