"""Which of a project's tests call which of its functions: one traced pytest run.

Also where a project keeps its tests and its sources (`find_tests`, `source_files`). The
trace runs the tests once in the sandbox under cProfile and records, for every passing test,
the project's functions it calls; the result comes back over a private channel.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import secrets
import selectors
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from eval import data
from eval.sandbox import execution
from eval.suites import tracer

TRACE_BYTES = 64 << 20  # the most a trace may send
SKIP_DIRS = {".git", ".tox", ".nox", "build", "dist", "docs", "doc", "__pycache__", ".venv"}

# The tracer's text: it runs in the sandbox as the sample's program, never here
_TRACER = resources.files("eval.suites").joinpath("tracer.py").read_text(encoding="utf-8")


def find_tests(project: Path) -> list[str]:
    """Test paths relative to the project: a tests/ or test/ folder, else test_*.py files."""
    for name in ("tests", "test", "testing"):
        if (project / name).is_dir():
            return [name]
    return sorted(str(p.relative_to(project)) for p in _py_files(project) if is_test(p))


def _py_files(project: Path) -> Iterator[Path]:
    for path in sorted(project.rglob("*.py")):
        rel = path.relative_to(project).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel[:-1]):
            continue
        if not any((project / Path(*rel[: i + 1])).is_symlink() for i in range(len(rel))):
            yield path  # a link may lead out of the project: not a file of it


def source_files(project: Path) -> list[Path]:
    """The project's Python files that are not tests (absolute paths)."""
    return [p for p in _py_files(project) if not is_test(p.relative_to(project))]


def is_test(path: Path) -> bool:
    """Whether a project path is a test module, a conftest, or inside a tests folder."""
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
        task = {
            "project": data.PROJECT_DIR_NAME,
            "tests": tests,
            "fd": channel.fd,
            "token": channel.token,
        }
        limits = execution.Limits(timeout_s=timeout_s, output_bytes=32 << 20)
        setup = _copier(project, task)
        outcome = execution.run_program(_TRACER, limits, setup, pass_fds=(channel.fd,))
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
    The token reaches the tracer in a file that it deletes before the tests run. (A test that
    digs the token out of the tracer's own memory is not stopped; the pass token of
    `execution` has the same bound.)
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


def _copier(project: Path, task: dict[str, Any]) -> Callable[[Path], None]:
    """Lay out the project and the tracer's data (which it deletes before the tests run)."""
    ignore = (*SKIP_DIRS - {"docs", "doc", "build", "dist"}, "*.pyc")

    def setup(work: Path) -> None:
        data.copy_project(project, work / data.PROJECT_DIR_NAME, ignore)
        (work / tracer.DATA).write_text(json.dumps(task), encoding="utf-8")

    return setup
