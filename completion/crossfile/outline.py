"""A Python file's outline (tree-sitter) and how a definition of it is shown."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from completion import syntax
from completion.crossfile.common import (
    MAX_CLASS_LINES,
    MAX_DEFINITION_LINES,
    MAX_FILE_CHARS,
    MAX_SIGNATURE_CHARS,
    Definition,
    Lru,
    Module,
    node_text,
    usable,
)
from completion.crossfile.imports import parse_imports


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
        name = node_text(inner.child_by_field_name("name"))
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
        return Definition(node_text(left), "variable", start, end, shown, (), shown)
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


_MODULE_CACHE = Lru(256)


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
        if text and usable(text):
            module = outline(text)
    _MODULE_CACHE.put(key, module)
    return module


def cached_module(path: Path, open_docs: dict[str, str]) -> tuple[Module | None, int]:
    """The module if it is parsed already, and the file's size (for a parse time guess)."""
    _, key, size = _cache_key(path, open_docs)
    return (_MODULE_CACHE.get(key) if key is not None else None), size


_warm_pool: ThreadPoolExecutor | None = None


_warming: set[str] = set()


_warm_lock = threading.Lock()


def warm_later(path: Path, open_docs: dict[str, str]) -> None:
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
        except Exception:  # a warm-up failure is retried by the next request
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
