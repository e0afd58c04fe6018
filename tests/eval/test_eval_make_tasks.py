"""make-tasks on a tiny project built here: holes from the syntax tree, tests that judge them."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

from eval import data
from eval.sandbox.execution import PASSED, Limits, run_program
from eval.suites.holes import holes
from eval.suites.make_tasks import build_tasks, imported_names, make_tasks
from eval.suites.tracing import find_tests

SOURCE = '''\
"""A tiny library."""


def clamp(x, lo, hi):
    """Limit x to [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def total(items):
    result = 0
    for item in items:
        result += item
        result += 0
    return result


def unused(a):
    return a * 2
'''

TESTS = """\
from tinylib.core import clamp, total


def test_clamp():
    assert clamp(5, 0, 3) == 3
    assert clamp(-1, 0, 3) == 0
    assert clamp(2, 0, 3) == 2


def test_total():
    assert total([1, 2, 3]) == 6
    assert total([]) == 0
"""


def make_project(root: Path) -> Path:
    (root / "tinylib").mkdir(parents=True)
    (root / "tinylib" / "__init__.py").write_text("")
    (root / "tinylib" / "core.py").write_text(SOURCE)
    (root / "tests").mkdir()
    (root / "tests" / "test_core.py").write_text(TESTS)
    return root


def test_holes_come_from_the_syntax_tree() -> None:
    found = holes(SOURCE.encode(), {3, 12})  # rows of `def clamp`, `def total`
    kinds = {(h.function, h.kind) for h in found}
    assert ("clamp", "body") in kinds
    assert ("clamp", "line") in kinds
    assert ("total", "block") in kinds
    assert not any(h.function == "unused" for h in found)
    lines = SOURCE.splitlines()
    for h in found:
        assert '"""' not in "".join(lines[h.start : h.end])  # docstrings are never blanked
        if h.kind == "line":
            assert h.end - h.start == 1
    body = next(h for h in found if h.function == "clamp" and h.kind == "body")
    assert lines[body.start].strip() == "if x < lo:"
    assert lines[body.end - 1].strip() == "return x"


def test_find_tests(tmp_path: Path) -> None:
    assert find_tests(make_project(tmp_path / "p")) == ["tests"]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "mod.py").write_text("x = 1\n")
    (flat / "test_mod.py").write_text("def test_x():\n    assert True\n")
    assert find_tests(flat) == ["test_mod.py"]


@pytest.mark.slow
def test_make_tasks_end_to_end(tmp_path: Path) -> None:
    project = make_project(tmp_path / "tinylib-0.1")
    out = tmp_path / "tasks.jsonl"
    tasks = make_tasks(project, out, seed=0, timeout_s=60, workers=2)
    assert tasks, "no task survived verification"
    assert {t.entry_point for t in tasks} <= {"clamp", "total"}
    assert "body" in {t.kind for t in tasks}
    on_disk = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(on_disk) == len(tasks)
    task = data.Task.from_json(on_disk[0])
    assert task.project == str(project.resolve())
    assert task.path == "tinylib/core.py"
    assert task.prompt + task.canonical_solution + task.suffix == SOURCE
    # the reference passes, and a wrong filling fails the project's tests
    limits = Limits(timeout_s=60)
    good = run_program(
        data.program(task, task.canonical_solution),
        limits,
        data.setup_for(task, task.canonical_solution),
    )
    assert good.result == PASSED, good.output[-2000:]
    indent = task.canonical_solution[
        : len(task.canonical_solution) - len(task.canonical_solution.lstrip())
    ]
    wrong = f"{indent}return None\n"
    bad = run_program(data.program(task, wrong), limits, data.setup_for(task, wrong))
    assert bad.result != PASSED
    broken = f"{indent}if (\n"
    syntax = run_program(data.program(task, broken), limits, data.setup_for(task, broken))
    assert syntax.reason.startswith("SyntaxError"), syntax.reason
    assert (project / "tinylib" / "core.py").read_text() == SOURCE  # the original is untouched
    # and the file is a valid suite for `offpilot eval run`
    assert [t.task_id for t in data.load_suite(str(out))] == [t.task_id for t in tasks]


def test_untested_project_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "mod.py").write_text(textwrap.dedent("def f():\n    return 1\n"))
    with pytest.raises(FileNotFoundError):
        make_tasks(tmp_path / "p", tmp_path / "t.jsonl")


HELPERS = "def double(x):\n    return x * 2\n\n\nLIMIT = 3\n"
USER = """\
from .helpers import double
from . import helpers as h
import os


def twice(items):
    out = []
    for item in items:
        out.append(double(item))
    return out


def capped(x):
    y = x + 1
    return min(y, h.LIMIT)
"""


def test_cross_file_keeps_holes_that_use_project_imports(tmp_path: Path) -> None:
    root = tmp_path / "xlib"
    (root / "xlib").mkdir(parents=True)
    (root / "xlib" / "__init__.py").write_text("")
    (root / "xlib" / "helpers.py").write_text(HELPERS)
    (root / "xlib" / "user.py").write_text(USER)
    assert imported_names(root, "xlib/user.py", USER) == {"double", "h"}  # not `os`
    calls = {("xlib/user.py", 6): ["t::a"], ("xlib/user.py", 13): ["t::b"]}
    rng = random.Random(0)
    every = build_tasks(root, calls, rng, ["tests"], ("line",))
    crossing = build_tasks(root, calls, rng, ["tests"], ("line",), cross_file=True)
    assert len(every) == 2
    assert len(crossing) == 2
    middles = {t.entry_point: t.canonical_solution.strip() for t in crossing}
    assert middles == {"twice": "out.append(double(item))", "capped": "return min(y, h.LIMIT)"}
    assert {tuple(t.extra["imported_names"]) for t in crossing} == {("double",), ("h",)}
    assert all(t.kind == "line" for t in every)
