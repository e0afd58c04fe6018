"""The programs the harness runs in the sandbox are modules: importable, stdlib-only, in sync."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from eval.suites import make_tasks, task_test, tracer

REPO = Path(__file__).resolve().parents[2]
# module -> what it may import besides the standard library (the project's own pytest)
PROGRAMS = {
    "eval.sandbox.launcher": set(),
    "eval.sandbox.join": set(),
    "eval.toolchains.driver": set(),
    "eval.suites.tracer": {"pytest"},
    "eval.suites.task_test": {"pytest"},
}


def _text(module: str) -> str:
    package, _, name = module.rpartition(".")
    return resources.files(package).joinpath(f"{name}.py").read_text(encoding="utf-8")


def test_importing_the_programs_runs_nothing() -> None:
    code = "; ".join(f"import {m}" for m in PROGRAMS)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize("module", sorted(PROGRAMS))
def test_a_program_needs_only_the_standard_library(module: str) -> None:
    """They run under the sample's interpreter (some with -I -S), where eval is not importable."""
    found = set()
    for node in ast.walk(ast.parse(_text(module))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            assert node.module
            found.add(node.module.split(".")[0])
    outside = found - set(sys.stdlib_module_names) - {"__future__"}
    assert outside == PROGRAMS[module]


def test_the_two_pytest_programs_enter_a_project_alike() -> None:
    assert tracer.ARGS == task_test.ARGS
    assert inspect.getsource(tracer.enter) == inspect.getsource(task_test.enter)


def test_a_task_test_is_the_program_and_one_guarded_call() -> None:
    text = make_tasks.task_test(["tests/test_a.py::t'x"], "pkg/mod.py")
    program, _, call = text.rpartition('if __name__ == "__main__":\n')
    assert program.startswith(_text("eval.suites.task_test"))
    assert ast.literal_eval(call.strip().removeprefix("main")) == (
        "project",
        ["tests/test_a.py::t'x"],
        "pkg/mod.py",
    )
