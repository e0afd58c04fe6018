"""Python imports: the names a file imports, the workspace files they come from, parsed."""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import Any

from completion import syntax
from completion.crossfile.common import Import, Lru, node_text

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


def _aliased(node: Any) -> tuple[str, str | None]:
    if node.type == "aliased_import":
        alias = node.child_by_field_name("alias")
        return node_text(node.child_by_field_name("name")), node_text(alias) or None
    return (node_text(node), None) if node.type == "dotted_name" else ("", None)


def _module_of(node: Any) -> tuple[int, str]:
    if node.type == "relative_import":
        prefix = next((c for c in node.children if c.type == "import_prefix"), None)
        dotted = next((c for c in node.children if c.type == "dotted_name"), None)
        return len(node_text(prefix)), node_text(dotted)
    return 0, node_text(node)


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


_RESOLVED = Lru(1024)


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
