"""Cross-file context: the limits, types and helpers its parts share."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How many other open documents a request may carry (most recently used first).
MAX_DOCUMENTS = 10


# Files larger than this (characters) are skipped: generated or data files, not context.
MAX_FILE_CHARS = 500_000


# A function or class this short goes in whole; a class summary is cut at MAX_CLASS_LINES.
MAX_DEFINITION_LINES = 12


MAX_CLASS_LINES = 30


MIN_WINDOW_LINES = 4  # a window cut shorter than this is left out


MAX_SIGNATURE_CHARS = 120  # a compact signature longer than this keeps its first parameters


# A file not parsed yet is parsed now only when this guess of tree-sitter's speed says it fits
# the time left; otherwise in a background thread, for the next request.
PARSE_CHARS_PER_MS = 3000


IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


BARE = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*")  # not an attribute (after a dot)


# Words that say nothing about what code is about (keywords and the commonest builtins).
STOP = frozenset(
    [
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "def",
        "default",
        "del",
        "do",
        "elif",
        "else",
        "enum",
        "except",
        "export",
        "extends",
        "false",
        "final",
        "finally",
        "fn",
        "for",
        "from",
        "func",
        "function",
        "go",
        "if",
        "impl",
        "import",
        "in",
        "interface",
        "is",
        "let",
        "match",
        "mod",
        "new",
        "nil",
        "none",
        "not",
        "null",
        "or",
        "package",
        "pass",
        "private",
        "protected",
        "pub",
        "public",
        "raise",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "type",
        "use",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "int",
        "str",
        "float",
        "bool",
        "list",
        "dict",
        "set",
        "tuple",
        "len",
        "range",
        "print",
        "string",
        "number",
        "object",
        "any",
        "i",
        "j",
        "k",
        "x",
        "y",
        "n",
        "s",
        "v",
        "e",
    ]
)


@dataclass(frozen=True)
class Snippet:
    """Lines [start, end) of a file, chosen for the prompt."""

    path: str  # as shown in the header (relative to the root when under it)
    start: int
    end: int
    text: str
    score: float
    source: str  # "window" or "definition"
    name: str = ""  # the definition's name
    compact: str = ""  # a shorter text to use when `text` does not fit (definitions)

    def describe(self) -> str:
        """`path:first-last` (1-based lines), and the name of a definition."""
        where = f"{self.path}:{self.start + 1}-{self.end}"
        return f"{where} {self.name}" if self.name else where


@dataclass(frozen=True)
class CrossfileOptions:
    """What to collect and how much of it."""

    windows: bool = True
    imports: bool = True
    budget_tokens: int = 128
    time_budget_ms: float = 25.0
    window_lines: int = 60
    window_stride: int = 30
    query_lines: int = 40
    max_windows: int = 2
    min_score: float = 0.05
    other_language_penalty: float = 0.5


@dataclass(frozen=True)
class Crossfile:
    """The blocks for the prompt and where they came from."""

    text: str = ""
    snippets: tuple[Snippet, ...] = ()
    tokens: int = 0
    timed_out: bool = False


@dataclass(frozen=True)
class Definition:
    """A top-level name of a module (or a member of a class), kept in pieces to render."""

    name: str
    kind: str  # function / class / variable
    start: int
    end: int
    signature: tuple[str, ...]  # decorators and the `def`/`class` line(s); a variable's lines
    doc: tuple[str, ...] = ()  # the docstring's first paragraph, closed
    full: tuple[str, ...] = ()  # the whole text when it is short
    members: tuple[Definition, ...] = ()  # a class's methods and attributes


@dataclass(frozen=True)
class Import:
    """One imported name: `from module import name as alias` or `import module as alias`."""

    module: str  # dotted, without the leading dots
    level: int  # leading dots of a relative import
    name: str | None  # None for `import module`; "*" for a star import
    alias: str  # the name bound in the importing file


@dataclass(frozen=True)
class Module:
    """What a parsed Python file offers: its definitions and its own imports (re-exports)."""

    definitions: dict[str, Definition] = field(default_factory=dict)
    imports: tuple[Import, ...] = ()


def display_path(path: str | None, root: str | None) -> str | None:
    """`path` relative to `root` when it lies under it (with `/`), else its last two parts."""
    if not path:
        return None
    if root:
        try:
            rel = os.path.relpath(path, root)
        except ValueError:  # another drive on Windows
            rel = ""
        if rel and not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def identifiers(text: str) -> set[str]:
    """The identifier set of `text`, without keywords and one-letter names."""
    return {w for w in IDENT.findall(text) if w not in STOP and len(w) > 1}


class Lru:
    """A small least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        """The value of `key` (now the most recent), or None."""
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        """Store `key`, dropping the least recent past the size."""
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def usable(text: str) -> bool:
    """Not binary, not huge."""
    return len(text) <= MAX_FILE_CHARS and "\x00" not in text[:8192]


def node_text(node: Any) -> str:
    """A tree-sitter node's source text (`""` for none)."""
    return node.text.decode("utf-8", "replace") if node is not None and node.text else ""
