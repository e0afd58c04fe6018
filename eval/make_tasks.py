"""Tasks from real code: blank code that a project's own tests exercise.

1. Run the project's tests once in the sandbox under cProfile, recording for every passing
   test which of the project's functions it calls.
2. Parse each source file with tree-sitter; for each exercised function pick holes from the
   syntax tree: a `line` (one simple statement), a `block` (the body of an if/for/while/
   with/try inside it) or the whole `body` (after the docstring). Holes are whole lines.
3. Each task's `test` is a driver that runs only the tests that called that function,
   against the project with the filled-in file (see `eval.data` for the project format).
   Files reached through a symlink are never task sources (see `data.project_file`).
4. Verify: the reference filling must pass, and the empty filling must fail (else the tests
   do not notice the hole and the task is dropped).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import resource
import secrets
import selectors
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import data, execution

TRACE_BYTES = 64 << 20  # the most a trace may send
MAX_TESTS_PER_TASK = 40
MAX_BODY_LINES = 15
MAX_BLOCK_LINES = 8
SKIP_DIRS = {".git", ".tox", ".nox", "build", "dist", "docs", "doc", "__pycache__", ".venv"}
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

_PRELUDE = """\
import os, sys
os.chdir({project!r})
root = os.getcwd()
for extra in ("src", ""):
    path = os.path.join(root, extra) if extra else root
    if os.path.isdir(path):
        sys.path.insert(0, path)
import pytest
ARGS = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--no-header", "-p", "no:warnings"]
"""

_DRIVER = (
    _PRELUDE
    + """\
with open({path!r}, encoding="utf-8") as fh:  # a broken file is a SyntaxError, not exit 4
    compile(fh.read(), {path!r}, "exec")
rc = pytest.main([*ARGS, "-x", *{tests!r}])
if rc == 1:
    raise AssertionError("pytest: a test failed")
if rc != 0:
    raise RuntimeError(f"pytest exited with status {{int(rc)}}")
"""
)

_TRACER = (
    _PRELUDE
    + """\
import cProfile, json, types
calls = {{}}
passed = []

class Tracer:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            for entry in profiler.getstats():
                co = entry.code
                if isinstance(co, types.CodeType) and co.co_filename.startswith(root):
                    calls.setdefault((co.co_filename, co.co_firstlineno), set()).add(item.nodeid)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.passed:
            passed.append(report.nodeid)

rc = pytest.main([*ARGS, *{tests!r}], plugins=[Tracer()])
ok = set(passed)
out = [
    [os.path.relpath(f, root), line, sorted(t for t in ids if t in ok)]
    for (f, line), ids in calls.items()
]
payload = json.dumps({{"rc": int(rc), "passed": len(ok), "calls": out}}).encode()
with os.fdopen({fd}, "wb") as channel:
    channel.write({token!r}.encode() + payload)
"""
)


@dataclass(frozen=True)
class Hole:
    """Whole lines [start, end) of a file (0-based rows) to blank, and what they are."""

    kind: str  # line / block / body
    start: int
    end: int
    function: str
    def_row: int


def find_tests(project: Path) -> list[str]:
    """Test paths relative to the project: a tests/ or test/ folder, else test_*.py files."""
    for name in ("tests", "test", "testing"):
        if (project / name).is_dir():
            return [name]
    return sorted(str(p.relative_to(project)) for p in _py_files(project) if _is_test(p))


def _py_files(project: Path) -> Iterator[Path]:
    for path in sorted(project.rglob("*.py")):
        rel = path.relative_to(project).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel[:-1]):
            continue
        if not any((project / Path(*rel[: i + 1])).is_symlink() for i in range(len(rel))):
            yield path  # a link may lead out of the project: not a file of it


def source_files(project: Path) -> list[Path]:
    """The project's Python files that are not tests (absolute paths)."""
    return [p for p in _py_files(project) if not _is_test(p.relative_to(project))]


def _is_test(path: Path) -> bool:
    name = path.name
    parts = set(path.parts)
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or bool(parts & {"tests", "test", "testing"})
    )


def trace(project: Path, tests: list[str], timeout_s: float) -> dict[tuple[str, int], list[str]]:
    """(file, def line) -> the passing test ids that called that function.

    The tracer sends its result over a private channel (`_Channel`), not stdout: the
    project's tests write to stdout too, and must not be able to pass for the tracer.
    """
    channel = _Channel()
    try:
        program = _TRACER.format(
            project=data.PROJECT_DIR_NAME, tests=tests, fd=channel.fd, token=channel.token
        )
        limits = execution.Limits(timeout_s=timeout_s, output_bytes=32 << 20)
        outcome = execution.run_program(program, limits, _copier(project), pass_fds=(channel.fd,))
    finally:
        message = channel.close()
    if message is None:
        tail = outcome.output[-2000:]
        raise RuntimeError(
            f"no trace came back from the project's tests ({outcome.reason}):\n{tail}"
        )
    found = json.loads(message)
    if found["passed"] == 0:
        raise RuntimeError("no test of the project passed; nothing to build tasks from")
    return {(f, int(n)): ids for f, n, ids in found["calls"] if ids}


class _Channel:
    """A private pipe for the tracer's result, drained by a thread while the tests run.

    The write end reaches the sandbox at an unguessable fd number, and a message counts only
    when it starts with a random token; a test that prints, or writes to some fd, sends none.
    (A test that digs the token out of the tracer's own memory or program text is not
    stopped; the pass token of `execution` has the same bound.)
    """

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self._read_fd, write_fd = os.pipe()
        self.fd = _unguessable_fd(write_fd)
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="trace-channel", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        os.set_blocking(self._read_fd, False)
        with selectors.DefaultSelector() as sel:
            sel.register(self._read_fd, selectors.EVENT_READ)
            while True:
                if not sel.select(timeout=0.1):
                    if self._done.is_set():  # a leftover process may hold the write end
                        return
                    continue
                try:
                    chunk = os.read(self._read_fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                self._size += len(chunk)
                if self._size <= TRACE_BYTES:
                    self._chunks.append(chunk)

    def close(self) -> bytes | None:
        """Stop listening: what the tracer sent after the token, or None (no valid message)."""
        os.close(self.fd)
        self._done.set()
        self._thread.join()
        os.close(self._read_fd)
        raw = b"".join(self._chunks)
        token = self.token.encode()
        if self._size > TRACE_BYTES or not raw.startswith(token):
            return None
        return raw[len(token) :]


def _unguessable_fd(fd: int) -> int:
    """`fd` moved to a random number (close-on-exec until passed on), where the limit allows."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(1024 if soft == resource.RLIM_INFINITY else soft, 1024) - 32
    if top <= 64:
        return fd
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64 + secrets.randbelow(top - 64))
    except OSError:
        return fd
    os.close(fd)
    return int(moved)


def _copier(project: Path) -> Callable[[Path], None]:
    ignore = (*SKIP_DIRS - {"docs", "doc", "build", "dist"}, "*.pyc")

    def setup(work: Path) -> None:
        data.copy_project(project, work / data.PROJECT_DIR_NAME, ignore)

    return setup


def _parser() -> Any:
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def holes(source: bytes, def_rows: set[int], parser: Any = None) -> list[Hole]:
    """Candidate holes in the functions whose `def` (or first decorator) is on `def_rows`."""
    tree = (parser or _parser()).parse(source)
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


def imported_names(project: Path, rel: str, text: str) -> set[str]:
    """The names a project file binds by importing them from the project's other modules.

    `from .mod import a as b` gives `b`, `import pkg.mod as m` and `from pkg import mod` give
    `m` and `mod` (their attributes come from that module); standard-library and third-party
    imports resolve to no project file and give nothing.
    """
    from completion import crossfile

    current = str((project / rel).resolve())
    names: set[str] = set()
    for imp in crossfile.parse_imports(text):
        if imp.name == "*":
            continue
        if crossfile.resolve_module(imp.module, imp.level, current, str(project)) is not None:
            names.add(imp.alias.split(".")[0])
    return names


def uses_imported(middle: str, names: set[str]) -> list[str]:
    """The imported names the code `middle` uses (sorted)."""
    return sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", middle)) & names)


def build_tasks(
    project: Path,
    calls: dict[tuple[str, int], list[str]],
    rng: random.Random,
    tests: list[str],
    kinds: tuple[str, ...] = ("line", "block", "body"),
    cross_file: bool = False,
) -> list[data.Task]:
    """Every candidate task: up to one hole of each kind per exercised function.

    `cross_file` keeps only holes whose reference uses a name imported from another module of
    the project (the task records them as `imported_names`).
    """
    by_file: dict[str, dict[int, list[str]]] = {}
    for (rel, line), ids in calls.items():
        if not _is_test(Path(rel)) and _plain_file(project, rel):
            by_file.setdefault(rel, {})[line - 1] = ids
    parser = _parser()
    tasks = []
    for rel in sorted(by_file):
        text = (project / rel).read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        imported = imported_names(project, rel, text)
        rows = by_file[rel]
        per_fn: dict[int, list[Hole]] = {}
        for hole in holes(text.encode("utf-8"), set(rows), parser):
            per_fn.setdefault(hole.def_row, []).append(hole)
        for def_row, cands in sorted(per_fn.items()):
            ids = rows.get(def_row) or next(
                (rows[r] for r in rows if r < def_row and def_row - r < 10), []
            )
            if not ids:
                continue
            chosen_tests = _pick_tests(ids, rng)
            for kind in kinds:
                options = [h for h in cands if h.kind == kind]
                if cross_file:
                    options = [
                        h
                        for h in options
                        if uses_imported("".join(lines[h.start : h.end]), imported)
                    ]
                if not options:
                    continue
                hole = rng.choice(options)
                prompt = "".join(lines[: hole.start])
                middle = "".join(lines[hole.start : hole.end])
                suffix = "".join(lines[hole.end :])
                used = uses_imported(middle, imported)
                tasks.append(
                    data.Task(
                        task_id=f"{project.name}/{rel}:{hole.function}:{kind}:L{hole.start + 1}",
                        prompt=prompt,
                        suffix=suffix,
                        canonical_solution=middle,
                        test=_DRIVER.format(
                            project=data.PROJECT_DIR_NAME, tests=chosen_tests, path=rel
                        ),
                        entry_point=hole.function,
                        kind=kind,
                        project=str(project.resolve()),
                        path=rel,
                        extra={"imported_names": used} if used else {},
                    )
                )
    return tasks


def _plain_file(project: Path, rel: str) -> bool:
    try:
        data.project_file(project, rel)
    except data.TaskPathError:
        return False
    return True


def _pick_tests(ids: list[str], rng: random.Random) -> list[str]:
    if len(ids) <= MAX_TESTS_PER_TASK:
        return sorted(ids)
    return sorted(rng.sample(ids, MAX_TESTS_PER_TASK))


def verify(task: data.Task, timeout_s: float) -> str | None:
    """None if the reference passes and the empty filling fails, else why the task is bad."""
    limits = execution.Limits(timeout_s=timeout_s)
    try:
        good = execution.run_program(
            data.program(task, task.canonical_solution),
            limits,
            data.setup_for(task, task.canonical_solution),
        )
        if good.result != execution.PASSED:
            return f"reference does not pass: {good.reason}"
        blank = execution.run_program(data.program(task, ""), limits, data.setup_for(task, ""))
    except data.TaskPathError as exc:
        return f"task refused: {exc}"
    if blank.result == execution.PASSED:
        return "the tests pass with the hole left empty"
    return None


def make_tasks(
    project: Path,
    out: Path,
    limit: int | None = None,
    seed: int = 0,
    tests_dir: Path | None = None,
    verify_tasks: bool = True,
    timeout_s: float = 300.0,
    workers: int | None = None,
    log: Callable[[str], None] = lambda _m: None,
    kinds: tuple[str, ...] = ("line", "block", "body"),
    cross_file: bool = False,
) -> list[data.Task]:
    """Build, verify and write the tasks of a project; returns what was written.

    `kinds` limits the hole kinds; `cross_file` keeps only holes that use a name imported
    from another module of the project (see `build_tasks`).
    """
    project = project.resolve()
    tests = [str(tests_dir)] if tests_dir else find_tests(project)
    if not tests:
        raise FileNotFoundError(f"no tests found in {project}")
    log(f"tracing {project.name}: pytest {' '.join(tests)}")
    calls = trace(project, tests, timeout_s)
    rng = random.Random(seed)
    candidates = build_tasks(project, calls, rng, tests, kinds, cross_file)
    rng.shuffle(candidates)
    log(
        f"{len(candidates)} candidate holes in {len({t.entry_point for t in candidates})} functions"
    )
    kept: list[data.Task] = []
    if verify_tasks:
        want = limit or len(candidates)
        with ThreadPoolExecutor(workers or 2) as pool:
            for start in range(0, len(candidates), 8):
                batch = candidates[start : start + 8]
                for task, why in zip(
                    batch, pool.map(lambda t: _verify_one(t, timeout_s), batch), strict=True
                ):
                    if why is None:
                        kept.append(task)
                    else:
                        log(f"dropped {task.task_id}: {why}")
                if len(kept) >= want:
                    break
        kept = kept[:want]
    else:
        kept = candidates[:limit] if limit else candidates
    kept.sort(key=lambda t: t.task_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.write_jsonl(out, [t.to_json() for t in kept])
    return kept


def _verify_one(task: data.Task, timeout_s: float) -> str | None:
    return verify(task, min(timeout_s, 30.0))
