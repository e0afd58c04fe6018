"""Cross-file context: snippets of other files for the top of the prompt.

Two sources, both bounded in tokens and time:

- **windows**: other open documents are cut into ~60-line windows (stride half a window);
  the windows whose identifier sets are most Jaccard-similar to the lines above the cursor
  are kept (Copilot's "neighboring tabs", Cody's Jaccard retriever).
- **definitions** (Python): the names the file imports from workspace files (`from pkg.mod
  import name`, `import pkg.mod as m` + `m.name`, relative imports) are resolved to files
  under the workspace root, parsed with tree-sitter, and their definitions are summarised:
  a short function whole, a long one as its signature and docstring summary, a class as its
  header, `__init__` and method signatures, a constant as its assignment.

Both become comment blocks with a path header (`# Compare this snippet from pkg/mod.py:`),
deduplicated against the prompt and against each other, within a token budget and a time
budget (collection stops when it is spent; what was found so far is used). A language without
a grammar gets windows only, never an error. Parsed files are cached by (path, mtime, size).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from completion import syntax

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

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*")  # not an attribute (after a dot)
# Words that say nothing about what code is about (keywords and the commonest builtins).
_STOP = frozenset(
    """
    and as assert async await break case catch class const continue def default del do elif
    else enum except export extends false final finally fn for from func function go if impl
    import in interface is let match mod new nil none not null or package pass private
    protected pub public raise return self static struct super switch this throw true try
    type use var void while with yield int str float bool list dict set tuple len range print
    string number object any i j k x y n s v e
    """.split()
)

# Line comment syntax per language id; (start, end) for languages with block comments only.
_LINE_COMMENT: dict[str, str] = {
    **dict.fromkeys(
        "python shellscript bash sh zsh fish ruby perl r yaml toml dockerfile makefile "
        "powershell elixir julia nim coffeescript cmake nix crystal gdscript".split(),
        "#",
    ),
    **dict.fromkeys(
        "javascript javascriptreact typescript typescriptreact go rust java c cpp csharp "
        "swift kotlin scala php dart zig objective-c objective-cpp groovy jsonc proto "
        "solidity hlsl glsl cuda verilog d".split(),
        "//",
    ),
    **dict.fromkeys("lua sql haskell elm ada purescript".split(), "--"),
    **dict.fromkeys("clojure lisp scheme racket commonlisp".split(), ";"),
    **dict.fromkeys("latex tex erlang matlab prolog".split(), "%"),
    **dict.fromkeys("vim viml".split(), '"'),
    "fortran": "!",
}
_BLOCK_COMMENT: dict[str, tuple[str, str]] = {
    **dict.fromkeys("html xml vue svelte markdown".split(), ("<!--", "-->")),
    **dict.fromkeys("css scss less".split(), ("/*", "*/")),
}


@dataclass(frozen=True)
class Document:
    """Another document the editor holds (or a file of the workspace)."""

    path: str
    text: str
    language: str = "python"


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


# -- comments and headers --------------------------------------------------------------------


def comment(line: str, language: str) -> str:
    """`line` as a comment of `language` (`#` when the language is unknown)."""
    if language in _BLOCK_COMMENT:
        start, end = _BLOCK_COMMENT[language]
        return f"{start} {line.replace(end, '')} {end}" if line else f"{start} {end}"
    mark = _LINE_COMMENT.get(language, "#")
    return f"{mark} {line}" if line else mark


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


def path_header(path: str | None, language: str, root: str | None = None) -> str:
    """`# Path: pkg/mod.py` in the language's comment syntax; empty without a path."""
    shown = display_path(path, root)
    return comment(f"Path: {shown}", language) + "\n" if shown else ""


def format_snippet(snippet: Snippet, language: str) -> str:
    """A snippet as a comment block under a path header."""
    return _header(snippet, language) + _body(snippet.text, language)


# -- identifiers and windows -----------------------------------------------------------------


def identifiers(text: str) -> set[str]:
    """The identifier set of `text`, without keywords and one-letter names."""
    return {w for w in _IDENT.findall(text) if w not in _STOP and len(w) > 1}


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def windows(lines: list[str], size: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) line ranges of `size` lines every `stride` lines, the last one flush."""
    if not lines:
        return []
    size, stride = max(1, size), max(1, stride)
    if len(lines) <= size:
        return [(0, len(lines))]
    starts = list(range(0, len(lines) - size + 1, stride))
    if starts[-1] + size < len(lines):
        starts.append(len(lines) - size)
    return [(s, s + size) for s in starts]


class _Lru:
    """A small least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_WINDOW_CACHE = _Lru(64)
_MODULE_CACHE = _Lru(256)


def _usable(text: str) -> bool:
    """Not binary, not huge."""
    return len(text) <= MAX_FILE_CHARS and "\x00" not in text[:8192]


def _document_windows(
    doc: Document, size: int, stride: int
) -> tuple[list[str], list[tuple[int, int, frozenset[str]]]]:
    """A document's lines and windows with their identifier sets (cached on the text)."""
    key = (doc.path, len(doc.text), hash(doc.text), size, stride)
    found = _WINDOW_CACHE.get(key)
    if found is None:
        lines = doc.text.splitlines()
        spans = [
            (s, e, frozenset(identifiers("\n".join(lines[s:e]))))
            for s, e in windows(lines, size, stride)
        ]
        found = (lines, spans)
        _WINDOW_CACHE.put(key, found)
    return found  # type: ignore[no-any-return]


def best_windows(
    query: set[str],
    documents: Iterable[Document],
    language: str,
    options: CrossfileOptions,
    root: str | None = None,
    deadline: float | None = None,
) -> tuple[list[Snippet], bool]:
    """The windows most similar to `query`, at most `max_windows`, not overlapping.

    Documents of another language count at `other_language_penalty` of their score. Returns
    the snippets and whether the deadline cut the search short.
    """
    scored: list[tuple[float, Document, int, int, list[str]]] = []
    timed_out = False
    for doc in documents:
        if deadline is not None and time.monotonic() > deadline:
            timed_out = True
            break
        if not _usable(doc.text):
            continue
        factor = 1.0 if doc.language == language else options.other_language_penalty
        lines, spans = _document_windows(doc, options.window_lines, options.window_stride)
        for s, e, ids in spans:
            score = jaccard(query, ids) * factor
            if score >= options.min_score:
                scored.append((score, doc, s, e, lines))
    scored.sort(key=lambda x: -x[0])
    chosen: list[Snippet] = []
    for score, doc, s, e, lines in scored:
        if len(chosen) >= options.max_windows:
            break
        shown = display_path(doc.path, root) or doc.path
        if any(c.path == shown and c.start < e and s < c.end for c in chosen):
            continue
        text = "\n".join(lines[s:e])
        chosen.append(Snippet(shown, s, e, text, score, "window"))
    return chosen, timed_out


# -- Python imports and definitions ----------------------------------------------------------

_IMPORT_LINE = re.compile(r"[ \t]*(?:from[ \t]+[\w.]+[ \t]+import|import)[ \t]")


def import_lines(text: str) -> str:
    """The import statements of `text`, dedented, one per line (parentheses joined).

    Finds the word `import` with `str.find` (fast on large files) and keeps the lines that
    are import statements.
    """
    out: list[str] = []
    pos, seen_line = text.find("import"), -1
    while pos >= 0:
        start = text.rfind("\n", 0, pos) + 1
        if start != seen_line and _IMPORT_LINE.match(text, start):
            seen_line = start
            end = text.find("\n", pos)
            stmt = text[start : len(text) if end < 0 else end]
            # a parenthesised name list or backslash continuations go on to later lines
            while end >= 0 and (stmt.count("(") > stmt.count(")") or stmt.rstrip().endswith("\\")):
                nxt = text.find("\n", end + 1)
                stmt += " " + text[end + 1 : len(text) if nxt < 0 else nxt].strip()
                end = nxt
                if len(stmt) > 4000:
                    break
            out.append(stmt.strip().replace("\\", " "))
            pos = text.find("import", len(text) if end < 0 else end)
        else:
            pos = text.find("import", pos + 6)
    return "\n".join(out) + "\n" if out else ""


def parse_imports(text: str) -> list[Import]:
    """The imports of Python source `text` (tree-sitter over its import lines)."""
    return list(_parse_import_lines(import_lines(text)))


@functools.lru_cache(maxsize=64)
def _parse_import_lines(lines: str) -> tuple[Import, ...]:
    tree = syntax.parse(lines, "python")
    if tree is None:
        return ()
    found: list[Import] = []
    for node in tree.root_node.children:
        if node.type == "import_statement":
            for item in node.named_children:
                name, alias = _aliased(item)
                if name:
                    found.append(Import(name, 0, None, alias or name))
        elif node.type == "import_from_statement":
            mod = node.child_by_field_name("module_name")
            if mod is None:
                continue
            level, module = _module_of(mod)
            for item in node.named_children:
                if item == mod or item.type not in ("dotted_name", "aliased_import"):
                    if item.type == "wildcard_import":
                        found.append(Import(module, level, "*", "*"))
                    continue
                name, alias = _aliased(item)
                if name:
                    found.append(Import(module, level, name, alias or name))
    return tuple(found)


def _text(node: Any) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text else ""


def _aliased(node: Any) -> tuple[str, str | None]:
    if node.type == "aliased_import":
        alias = node.child_by_field_name("alias")
        return _text(node.child_by_field_name("name")), _text(alias) or None
    return (_text(node), None) if node.type == "dotted_name" else ("", None)


def _module_of(node: Any) -> tuple[int, str]:
    if node.type == "relative_import":
        prefix = next((c for c in node.children if c.type == "import_prefix"), None)
        dotted = next((c for c in node.children if c.type == "dotted_name"), None)
        return len(_text(prefix)), _text(dotted)
    return 0, _text(node)


def _inside(path: str, root: str | None) -> bool:
    return root is None or path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _search_bases(current: str | None, root: str | None) -> list[str]:
    """Where an absolute import may start: the root, root/src, the current file's ancestors.

    Ancestors stop at the root, or after 8 levels without one.
    """
    bases: list[str] = []
    if root is not None:
        bases += [root, os.path.join(root, "src")]
    if current is not None:
        parent = os.path.dirname(current)
        for _ in range(8):
            if not _inside(parent, root):
                break
            bases.append(parent)
            if os.path.dirname(parent) == parent:
                break
            parent = os.path.dirname(parent)
    return list(dict.fromkeys(bases))


_RESOLVED = _Lru(1024)
RESOLVE_TTL_S = 5.0  # a new file is seen by imports within this time


def resolve_module(module: str, level: int, current: str | None, root: str | None) -> Path | None:
    """The workspace file of a module (`pkg/mod.py` or `pkg/mod/__init__.py`), or None.

    Relative imports start from the current file's package; absolute ones from the root, its
    `src/` and the current file's ancestors. Nothing outside the root is returned. Answers
    are cached for a few seconds (the file system is asked once per keystroke burst).
    """
    here = os.path.abspath(current) if current else None
    top = os.path.abspath(root) if root else None
    key = (module, level, os.path.dirname(here) if here else None, top)
    now = time.monotonic()
    cached = _RESOLVED.get(key)
    if cached is not None and now - cached[0] < RESOLVE_TTL_S:
        found = cached[1]
    else:
        found = _resolve(module, level, here, top)
        _RESOLVED.put(key, (now, found))
    return None if found is None or found == here else Path(found)


def _resolve(module: str, level: int, here: str | None, top: str | None) -> str | None:
    parts = [p for p in module.split(".") if p]
    if level:
        if here is None:
            return None
        base = os.path.dirname(here)
        for _ in range(level - 1):
            base = os.path.dirname(base)
        bases = [base]
    else:
        if not parts:
            return None
        bases = _search_bases(here, top)
    for base in bases:
        stem = os.path.join(base, *parts)
        for candidate in (stem + ".py" if parts else None, os.path.join(stem, "__init__.py")):
            if candidate is not None and _inside(candidate, top) and os.path.isfile(candidate):
                return candidate
    return None


def _cache_key(path: Path, open_docs: dict[str, str]) -> tuple[str | None, Any, int]:
    """The editor's unsaved text of a file (when open), its cache key and its size."""
    text = open_docs.get(str(path))
    if text is not None:
        return text, ("doc", str(path), len(text), hash(text)), len(text)
    try:
        st = path.stat()
    except OSError:
        return None, None, 0
    return None, (str(path), st.st_mtime_ns, st.st_size), st.st_size


def load_module(path: Path, open_docs: dict[str, str] | None = None) -> Module | None:
    """The definitions and imports of a Python file (cached by path, mtime and size).

    Binary, huge and unreadable files give an empty module (or None when gone).
    """
    text, key, size = _cache_key(path, open_docs or {})
    if key is None:
        return None
    cached = _MODULE_CACHE.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    module = Module()
    if size <= MAX_FILE_CHARS:
        if text is None:
            try:
                raw = path.read_bytes()
            except OSError:
                return None
            text = "" if b"\x00" in raw[:8192] else raw.decode("utf-8", "replace")
        if text and _usable(text):
            module = outline(text)
    _MODULE_CACHE.put(key, module)
    return module


def _cached_module(path: Path, open_docs: dict[str, str]) -> tuple[Module | None, int]:
    """The module if it is parsed already, and the file's size (for a parse time guess)."""
    _text, key, size = _cache_key(path, open_docs)
    return (_MODULE_CACHE.get(key) if key is not None else None), size


_warm_pool: ThreadPoolExecutor | None = None
_warming: set[str] = set()
_warm_lock = threading.Lock()


def _warm_later(path: Path, open_docs: dict[str, str]) -> None:
    """Parse a file in a background thread so that a later request finds it cached."""
    global _warm_pool
    with _warm_lock:
        if str(path) in _warming:
            return
        _warming.add(str(path))
        if _warm_pool is None:
            _warm_pool = ThreadPoolExecutor(1, thread_name_prefix="offpilot-crossfile")

    def job() -> None:
        try:
            load_module(path, open_docs)
        except Exception:  # noqa: BLE001 - a warm-up failure is retried by the next request
            pass
        finally:
            with _warm_lock:
                _warming.discard(str(path))

    _warm_pool.submit(job)


def wait_warm(timeout_s: float = 10.0) -> None:
    """Wait until background parses are done (tests and benchmarks)."""
    deadline = time.monotonic() + timeout_s
    while _warming and time.monotonic() < deadline:
        time.sleep(0.005)


def outline(text: str) -> Module:
    """The top-level definitions of Python source, in pieces, and its imports."""
    tree = syntax.parse(text, "python")
    if tree is None:
        return Module()
    lines = text.splitlines()
    defs: dict[str, Definition] = {}
    for node in tree.root_node.named_children:
        found = _definition(node, lines, members=True)
        if found is not None:
            defs[found.name] = found
    return Module(defs, tuple(parse_imports(text)))


def _definition(node: Any, lines: list[str], members: bool) -> Definition | None:
    """A function, class or `NAME = value` statement as a Definition (None otherwise)."""
    inner = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if inner is None:
        return None
    start, end = node.start_point[0], node.end_point[0] + 1
    rows = tuple(lines[start:end])
    if inner.type in ("function_definition", "class_definition"):
        name = _text(inner.child_by_field_name("name"))
        body = inner.child_by_field_name("body")
        kind = "function" if inner.type == "function_definition" else "class"
        inner_members: list[Definition] = []
        if kind == "class" and members and body is not None:
            for stmt in body.named_children:
                member = _definition(stmt, lines, members=False)
                if member is not None:
                    inner_members.append(member)
        return Definition(
            name,
            kind,
            start,
            end,
            tuple(_header_rows(node, inner, lines)),
            tuple(_docstring(body, lines, 3)),
            rows if len(rows) <= MAX_DEFINITION_LINES else (),
            tuple(inner_members),
        )
    if inner.type == "expression_statement" and inner.named_children:
        assign = inner.named_children[0]
        left = assign.child_by_field_name("left") if assign.type == "assignment" else None
        if left is None or left.type != "identifier":
            return None
        shown = rows[:3] + (("...",) if len(rows) > 3 else ())
        return Definition(_text(left), "variable", start, end, shown, (), shown)
    return None


def _docstring(body: Any, lines: list[str], limit: int) -> list[str]:
    """The first paragraph of a body's docstring (at most `limit` lines), closed."""
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is None or first.type != "expression_statement" or not first.named_children:
        return []
    if first.named_children[0].type != "string":
        return []
    rows = lines[first.start_point[0] : first.end_point[0] + 1]
    if len(rows) <= limit:
        return rows
    kept: list[str] = []
    for row in rows[:limit]:
        if kept and not row.strip():
            break
        kept.append(row)
    indent = rows[0][: len(rows[0]) - len(rows[0].lstrip())]
    quote = '"""' if '"""' in rows[0] else "'''"
    return [*kept, f"{indent}{quote}"]


def _header_rows(outer: Any, inner: Any, lines: list[str]) -> list[str]:
    """Decorators and the `def`/`class` line(s) up to the colon before the body."""
    start = outer.start_point[0]
    colon = next((c for c in reversed(inner.children) if c.type == ":"), None)
    end = colon.start_point[0] if colon is not None else start
    return lines[start : max(end, start) + 1]


def _indent(rows: tuple[str, ...] | list[str], extra: str = "    ") -> str:
    first = rows[0] if rows else ""
    return first[: len(first) - len(first.lstrip())] + extra


def render(definition: Definition, focus: set[str], compact: bool = False) -> str:
    """A definition's summary, to show in the prompt.

    Short ones whole; long functions as signature + docstring; classes as header, `__init__`,
    the members named in `focus`, then the other members' signatures. `compact` keeps
    signatures only (and, of a class, `__init__` and the focused members).
    """
    return "\n".join(_render(definition, focus, compact, MAX_CLASS_LINES))


def _last_top_level_comma(signature: str, limit: int) -> int:
    """The last `, ` before `limit` between two parameters (-1 if none).

    Only commas directly inside the outer parentheses count, not those of a subscript or of
    a default value's brackets.
    """
    depth, found = 0, -1
    for i, ch in enumerate(signature[:limit]):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 1 and signature[i + 1 : i + 2] == " ":
            found = i
    return found


def _one_line(rows: tuple[str, ...]) -> str:
    """A multi-line signature on one line (decorators kept on their own lines)."""
    decorators = [r for r in rows if r.lstrip().startswith("@")]
    rest = [r.strip() for r in rows if not r.lstrip().startswith("@")]
    joined = " ".join(rest).replace("( ", "(").replace(", )", ")").replace(",)", ")")
    if len(joined) > MAX_SIGNATURE_CHARS:  # keep the first parameters and the return type
        close = joined.rfind(")")
        cut = _last_top_level_comma(joined, MAX_SIGNATURE_CHARS)
        if close > 0 and 0 < cut < close:
            joined = joined[:cut] + ", ..." + joined[close:]
    head = _indent(rows, "") + joined
    return "\n".join([*decorators, head])


def _render(d: Definition, focus: set[str], compact: bool, max_lines: int) -> list[str]:
    if d.kind == "variable":
        return list(d.full)
    if d.full and not compact:
        return list(d.full)
    if d.kind == "function":
        if compact:
            return [_one_line(d.signature) + " ..."]
        return [*d.signature, *d.doc, _indent(d.signature) + "..."]
    out = [*d.signature] if compact else [*d.signature, *d.doc]
    init = [m for m in d.members if m.name == "__init__"]
    focused = [m for m in d.members if m.name in focus and m.name != "__init__"]
    rest = [] if compact else [m for m in d.members if m not in init and m not in focused]
    for member in [*init, *focused, *rest]:
        if len(out) >= max_lines:
            out.append(_indent(d.signature) + "...")
            break
        if member.kind == "variable":
            out += member.full[:1]
        elif member.name == "__init__" and member.full and not compact:
            out += member.full
        else:
            out += _render(member, focus, True, max_lines)
    return out


@dataclass(frozen=True)
class _Wanted:
    """A name to look up in a module, and how much the cursor's neighbourhood uses it."""

    module: str
    level: int
    name: str
    score: float


def wanted_names(text: str, near: str, imports: list[Import]) -> list[_Wanted]:
    """The imported names `text` uses, the ones used in `near` (the cursor's lines) first.

    `from m import a` wants `a` of m; `import m as x` (and `from p import m` where m is a
    module) wants each `x.attr` used. A name used near the cursor scores 1-2 (the later in
    `near`, the higher), one used elsewhere in the file 0.5, an unused one 0.1; star imports
    want the identifiers used near the cursor.
    """
    # bare names only: `ctx.command` is not a use of an imported `command`
    last = {m.group(): m.start() for m in _BARE.finditer(near)}  # the last use wins
    near_attrs, file_attrs = _dotted(near), _dotted(text)
    file_ids = set(_BARE.findall(text))
    span = max(1, len(near))
    out: dict[tuple[str, int, str], float] = {}

    def add(module: str, level: int, name: str, pos: int | None) -> None:
        if pos is not None:
            score = 1.0 + pos / span
        else:
            score = 0.5 if name in file_ids else 0.1
        key = (module, level, name)
        out[key] = max(out.get(key, 0.0), score)

    def add_attributes(module: str, level: int, alias: str) -> None:
        for attr, pos in near_attrs.get(alias, {}).items():
            add(module, level, attr, pos)
        for attr in file_attrs.get(alias, {}):
            add(module, level, attr, None)

    for imp in imports:
        if imp.name == "*":
            for word, pos in last.items():
                if word not in _STOP and len(word) > 1:
                    add(imp.module, imp.level, word, pos)
        elif imp.name is not None:
            add(imp.module, imp.level, imp.name, last.get(imp.alias))
            # `from pkg import mod`: maybe a module whose attributes are used
            sub = f"{imp.module}.{imp.name}" if imp.module else imp.name
            add_attributes(sub, imp.level, imp.alias)
        else:
            add_attributes(imp.module, 0, imp.alias)
    ranked = sorted(out.items(), key=lambda kv: -kv[1])
    return [_Wanted(m, lvl, n, s) for (m, lvl, n), s in ranked]


_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _dotted(text: str) -> dict[str, dict[str, int]]:
    """Dotted prefixes in `text` (`a`, `a.b` of `a.b.c`) -> the names after them -> last use."""
    found: dict[str, dict[str, int]] = {}
    for m in _DOTTED.finditer(text):
        parts = m.group().split(".")
        for k in range(1, len(parts)):
            found.setdefault(".".join(parts[:k]), {})[parts[k]] = m.start()
    return found


def imported_definitions(
    text: str,
    near: str,
    path: str | None,
    root: str | None,
    open_docs: dict[str, str] | None = None,
    deadline: float | None = None,
    limit: int = 12,
    usage: str = "",
) -> tuple[list[Snippet], bool]:
    """Summaries of the workspace definitions `text` imports, most relevant first.

    `near` is the text around the cursor: the names used there come first, and a class shows
    the members named there. A name a module only re-exports (`from .impl import name` in a
    package `__init__`) is followed up to two steps. A file not parsed yet whose parse would
    overrun the deadline is parsed in the background for the next request. Returns the
    snippets and whether the deadline cut the search short.
    """
    open_docs = open_docs or {}
    focus = identifiers(near)
    found: list[Snippet] = []
    seen: set[tuple[str, str]] = set()
    # names used within a bounded stretch around the cursor rank "used in the file"
    for want in wanted_names(usage or text, near, parse_imports(text)):
        if len(found) >= limit:
            break
        if deadline is not None and time.monotonic() > deadline:
            return found, True
        finder = _Finder(root, open_docs, deadline)
        hit = finder.find(want.module, want.level, want.name, path, 2)
        if hit is None:
            continue
        file, definition = hit
        shown = display_path(str(file), root) or str(file)
        if (shown, definition.name) in seen:
            continue
        seen.add((shown, definition.name))
        found.append(
            Snippet(
                shown,
                definition.start,
                definition.end,
                render(definition, focus),
                want.score,
                "definition",
                definition.name,
                render(definition, focus, compact=True),
            )
        )
    return found, False


@dataclass(frozen=True)
class _Finder:
    """Looks a name up through modules and their re-exports, within a deadline."""

    root: str | None
    open_docs: dict[str, str]
    deadline: float | None

    def module(self, file: Path) -> Module | None:
        mod, size = _cached_module(file, self.open_docs)
        if mod is not None:
            return mod
        left_ms = (self.deadline - time.monotonic()) * 1000 if self.deadline else float("inf")
        if size / PARSE_CHARS_PER_MS > left_ms:
            _warm_later(file, self.open_docs)
            return None
        return load_module(file, self.open_docs)

    def find(
        self, module: str, level: int, name: str, current: str | None, depth: int
    ) -> tuple[Path, Definition] | None:
        file = resolve_module(module, level, current, self.root)
        if file is None:
            return None
        mod = self.module(file)
        if mod is None:
            return None
        if name in mod.definitions:
            return file, mod.definitions[name]
        if depth <= 0:
            return None
        for imp in mod.imports:  # a re-export: follow it from that file
            if imp.name == name or (imp.name == "*" and imp.level):
                hit = self.find(imp.module, imp.level, name, str(file), depth - 1)
                if hit is not None:
                    return hit
        return None


# -- assembly --------------------------------------------------------------------------------


def _meaningful(line: str) -> bool:
    s = line.strip()
    return len(s) >= 4 and not s.startswith(("#", "//"))


def duplicated(snippet: Snippet, prompt_lines: set[str], threshold: float = 0.5) -> bool:
    """Whether at least `threshold` of the snippet's code lines are already in the prompt."""
    lines = [line.strip() for line in snippet.text.splitlines() if _meaningful(line)]
    if not lines:
        return True
    return sum(line in prompt_lines for line in lines) / len(lines) >= threshold


def _fit_window(
    snippet: Snippet,
    query: set[str],
    budget: int,
    count: Callable[[str], int],
    language: str,
) -> Snippet | None:
    """The contiguous part of a window with the most query identifiers that fits `budget`."""
    lines = snippet.text.splitlines()
    whole = count(format_snippet(snippet, language))
    if whole <= budget:
        return snippet
    per_char = whole / max(1, sum(len(x) + 3 for x in lines))
    cost = [(len(x) + 3) * per_char for x in lines]
    gain = [len(identifiers(x) & query) for x in lines]
    header = count(comment(f"Compare this snippet from {snippet.path}:", language) + "\n")
    room = budget - header
    best, best_span, lo, total_cost, total_gain = -1, (0, 0), 0, 0.0, 0
    for hi, (c, g) in enumerate(zip(cost, gain, strict=True)):
        total_cost += c
        total_gain += g
        while total_cost > room and lo <= hi:
            total_cost -= cost[lo]
            total_gain -= gain[lo]
            lo += 1
        if lo <= hi and total_gain > best:
            best, best_span = total_gain, (lo, hi + 1)
    s, e = best_span
    while e - s >= MIN_WINDOW_LINES:
        cut = Snippet(
            snippet.path,
            snippet.start + s,
            snippet.start + e,
            "\n".join(lines[s:e]),
            snippet.score,
            "window",
        )
        if count(format_snippet(cut, language)) <= budget:
            return cut if best > 0 else None
        e -= 1
    return None


def assemble(
    candidates: list[Snippet],
    language: str,
    budget: int,
    count: Callable[[str], int],
    prompt_lines: set[str],
    query: set[str],
    estimate: Callable[[str], int] | None = None,
) -> tuple[list[Snippet], int]:
    """The candidates (in priority order) that fit `budget` tokens, without duplicates.

    A window too large for what is left is cut to its most relevant part; a definition too
    large takes its compact form, or is skipped. Snippets of one file share one path header.
    Selection may use a cheap `estimate` of the token count: the result is counted once with
    `count`, selected again with the estimate rescaled when it was over, and trimmed from
    the end if still over. Returns the kept snippets and the token count of their blocks.
    """
    pick = estimate or count
    kept = _select(candidates, language, budget, pick, prompt_lines, query)
    used = count(format_blocks(kept, language)) if kept else 0
    if estimate is not None and used > budget:
        scale = used / max(1, estimate(format_blocks(kept, language)))
        rescaled = lambda text: int(estimate(text) * scale) + 1  # noqa: E731
        kept = _select(candidates, language, budget, rescaled, prompt_lines, query)
        used = count(format_blocks(kept, language)) if kept else 0
    while kept and used > budget:
        kept.pop()  # token merges across lines made the sum an underestimate
        used = count(format_blocks(kept, language)) if kept else 0
    return kept, used


def _select(
    candidates: list[Snippet],
    language: str,
    budget: int,
    count: Callable[[str], int],
    prompt_lines: set[str],
    query: set[str],
) -> list[Snippet]:
    kept: list[Snippet] = []
    used = 0
    for cand in candidates:
        left = budget - used
        if left < 8:
            break
        if duplicated(cand, prompt_lines):
            continue
        if any(k.path == cand.path and k.start < cand.end and cand.start < k.end for k in kept):
            continue  # overlaps what is already in (a definition inside a chosen window)
        header = 0 if any(k.path == cand.path for k in kept) else count(_header(cand, language))
        cost = header + count(_body(cand.text, language))
        if cost > left and cand.compact:
            cand = dataclasses.replace(cand, text=cand.compact, compact="")
            cost = header + count(_body(cand.text, language))
        if cost > left and cand.source == "window":
            fitted = _fit_window(cand, query, left, count, language)
            if fitted is not None:
                cand, cost = fitted, count(format_snippet(fitted, language))
        if cost > left:
            continue
        kept.append(cand)
        used += cost
    return kept


def estimate_tokens(text: str) -> int:
    """A token count guessed from the length (checked with the tokenizer afterwards).

    Code and comments run 3 or more characters a token in code models' vocabularies.
    """
    return len(text) // 3 + 1


def _header(snippet: Snippet, language: str) -> str:
    return comment(f"Compare this snippet from {snippet.path}:", language) + "\n"


def _body(text: str, language: str) -> str:
    return "".join(comment(line.rstrip(), language) + "\n" for line in text.splitlines())


def by_file(snippets: Iterable[Snippet]) -> list[tuple[str, str]]:
    """(path, code) per file in first-seen order; a file's snippets joined by a `...` line."""
    files: dict[str, list[str]] = {}
    for snip in snippets:
        files.setdefault(snip.path, []).append(snip.text)
    return [(path, "\n...\n".join(texts)) for path, texts in files.items()]


def format_blocks(snippets: list[Snippet], language: str) -> str:
    """Snippets as comment blocks, in order.

    Consecutive snippets of one file share a header and are separated by an empty comment.
    """
    out: list[str] = []
    previous = None
    for snip in snippets:
        if snip.path == previous:
            out.append(comment("", language) + "\n")
        else:
            out.append(_header(snip, language))
        out.append(_body(snip.text, language))
        previous = snip.path
    return "".join(out)


def collect(
    text: str,
    prefix: str,
    suffix: str,
    language: str,
    path: str | None,
    documents: Iterable[Document],
    root: str | None,
    options: CrossfileOptions,
    count: Callable[[str], int],
) -> Crossfile:
    """Cross-file blocks for a cursor, as text for the top of the prompt.

    `text` is the whole document, `prefix`/`suffix` what the prompt may hold of it; `count`
    gives a string's token count. Priority: definitions of names used near the cursor, then
    windows, then the other definitions; in the text, windows come first and definitions last
    (nearest the code), the most relevant of each last. Never raises on bad input files.
    """
    if options.budget_tokens <= 0 or not (options.windows or options.imports):
        return Crossfile()
    deadline = time.monotonic() + options.time_budget_ms / 1000
    above = prefix[: prefix.rfind("\n") + 1]  # the cursor's own line left out: stable
    near_lines = above.splitlines()[-options.query_lines :]
    query = identifiers("\n".join(near_lines))
    here = os.path.abspath(path) if path else None
    docs = [d for d in documents if not (here and d.path and os.path.abspath(d.path) == here)]
    timed_out = False
    defs: list[Snippet] = []
    if options.imports and language == "python":
        open_docs = {os.path.abspath(d.path): d.text for d in docs if d.path}
        near = "\n".join(near_lines) + prefix[len(above) :] + suffix[:400]
        defs, timed_out = _guard(
            lambda: imported_definitions(
                text, near, path, root, open_docs, deadline, usage=prefix[-8000:] + suffix[:4000]
            )
        )
    wins: list[Snippet] = []
    if options.windows and not timed_out and query:
        wins, timed_out = _guard(
            lambda: best_windows(query, docs, language, options, root, deadline)
        )
    prompt_lines = {line.strip() for line in (prefix + "\n" + suffix).splitlines()}
    near_defs = [d for d in defs if d.score >= 1.0]
    far_defs = [d for d in defs if d.score < 1.0]
    kept, used = assemble(
        [*near_defs, *wins, *far_defs],
        language,
        options.budget_tokens,
        count,
        prompt_lines,
        query,
        estimate_tokens,
    )
    # the most relevant block goes last, nearest the code: windows, then definitions (by file)
    best: dict[str, float] = {}
    for snip in kept:
        best[snip.path] = max(best.get(snip.path, 0.0), snip.score)
    order = sorted(kept, key=lambda s: (s.source != "window", best[s.path], s.path, s.score))
    body = format_blocks(order, language)
    return Crossfile(body, tuple(order), used, timed_out)


def _guard(
    fn: Callable[[], tuple[list[Snippet], bool]],
) -> tuple[list[Snippet], bool]:
    """Cross-file context is optional: an unexpected failure gives nothing, not an error."""
    try:
        return fn()
    except (OSError, ValueError, RecursionError, UnicodeError):
        return [], False
