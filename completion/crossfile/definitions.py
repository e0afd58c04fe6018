"""The definitions of the names a file imports from the workspace, most relevant first."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from completion.crossfile.common import (
    BARE,
    PARSE_CHARS_PER_MS,
    STOP,
    Definition,
    Import,
    Module,
    Snippet,
    display_path,
    identifiers,
)
from completion.crossfile.imports import parse_imports, resolve_module
from completion.crossfile.outline import cached_module, load_module, render, warm_later


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
    last = {m.group(): m.start() for m in BARE.finditer(near)}  # the last use wins
    near_attrs, file_attrs = _dotted(near), _dotted(text)
    file_ids = set(BARE.findall(text))
    span = max(1, len(near))
    out: dict[tuple[str, int, str], float] = {}

    def add(module: str, level: int, name: str, pos: int | None) -> None:
        if pos is not None:
            score = 1.0 + pos / span
        elif name in file_ids:
            score = 0.5
        else:
            score = 0.1
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
                if word not in STOP and len(word) > 1:
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
        mod, size = cached_module(file, self.open_docs)
        if mod is not None:
            return mod
        left_ms = (self.deadline - time.monotonic()) * 1000 if self.deadline else float("inf")
        if size / PARSE_CHARS_PER_MS > left_ms:
            warm_later(file, self.open_docs)
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
