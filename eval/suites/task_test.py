"""The test of a make-tasks task: the project's own tests that call the function with the hole.

`make_tasks.task_test` reads this file's text with importlib.resources (it is never imported
there) and appends one guarded call to `main` with the task's data; that text is the task's
`test`, stored in the tasks file and run as the sample's program. It needs only the standard
library and the project's pytest. A failed test ends in AssertionError, anything else that
stops pytest in another exception.
"""

from __future__ import annotations

import os
import sys

# pytest's options for a project's tests (the same in `tracer`)
ARGS = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--no-header", "-p", "no:warnings"]


def enter(project: str) -> str:
    """Work in the project, importable as its tests expect (flat or src/ layout); its root."""
    os.chdir(project)
    root = os.getcwd()
    for extra in ("src", ""):
        path = os.path.join(root, extra) if extra else root
        if os.path.isdir(path):
            sys.path.insert(0, path)
    return root


def main(project: str, tests: list[str], path: str) -> None:
    """Check the filled-in file compiles, then run `tests` (stopping at the first failure)."""
    enter(project)
    import pytest

    with open(path, encoding="utf-8") as fh:  # a broken file is a SyntaxError, not exit 4
        compile(fh.read(), path, "exec")
    rc = pytest.main([*ARGS, "-x", *tests])
    if rc == 1:
        raise AssertionError("pytest: a test failed")
    if rc != 0:
        raise RuntimeError(f"pytest exited with status {int(rc)}")
