"""The program of `tracing.trace`: the project's tests, run once under cProfile in the sandbox.

`tracing` reads this file's text with importlib.resources (it is never imported there) and
runs it as the sample's program; it needs only the standard library and the project's pytest.
Its data comes in `trace.json` beside it (the project directory, the tests, the channel's fd
and token): it reads that file and deletes it before any test runs, so the token is in no
file a test can read. For every passing test it records the project's functions it called,
and sends the token and that JSON to the channel, never to stdout, which the tests share.
"""

from __future__ import annotations

import cProfile
import json
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

DATA = "trace.json"  # written beside the program by `tracing.trace`
# pytest's options for a project's tests (the same in `task_test`)
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


def trace(project: str, tests: list[str], fd: int, token: str) -> None:
    """Run the tests and send the token and {rc, passed, calls} to `fd`."""
    root = enter(project)
    import pytest

    calls: dict[tuple[str, int], set[str]] = {}
    passed: list[str] = []

    class Tracer:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                yield
            finally:
                profiler.disable()
                for entry in profiler.getstats():
                    co = entry.code
                    if isinstance(co, types.CodeType) and co.co_filename.startswith(root):
                        key = (co.co_filename, co.co_firstlineno)
                        calls.setdefault(key, set()).add(item.nodeid)

        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            if report.when == "call" and report.passed:
                passed.append(report.nodeid)

    rc = pytest.main([*ARGS, *tests], plugins=[Tracer()])
    ok = set(passed)
    out = [
        [os.path.relpath(f, root), line, sorted(t for t in ids if t in ok)]
        for (f, line), ids in calls.items()
    ]
    payload = json.dumps({"rc": int(rc), "passed": len(ok), "calls": out}).encode()
    with os.fdopen(fd, "wb") as channel:
        channel.write(token.encode() + payload)


def main() -> None:
    """Read (and remove) the data file, then trace."""
    with open(DATA, encoding="utf-8") as fh:
        task: dict[str, Any] = json.load(fh)
    os.remove(DATA)
    trace(task["project"], task["tests"], task["fd"], task.pop("token"))


if __name__ == "__main__":
    main()
