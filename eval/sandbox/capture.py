"""Watching a running sample: its output under a cap and a deadline, its result pipe, its kill.

The sample's process group is killed as a whole: it may have started more processes.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterable


def collect(
    proc: subprocess.Popen[bytes],
    output_bytes: int,
    deadline: float,  # time.monotonic()
) -> tuple[bytes, bool, bool]:
    """Read output until exit, the cap or `deadline`; (output, overflowed, timed out)."""
    assert proc.stdout is not None
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), False, True
            if not sel.select(timeout=min(left, 0.5)):
                continue
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:  # EOF: every writer closed the pipe (usually the process exited)
                break
            size += len(data)
            if size > output_bytes:
                chunks.append(data[: max(0, output_bytes - (size - len(data)))])
                return b"".join(chunks), True, False
            chunks.append(data)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return b"".join(chunks), False, True
    return b"".join(chunks), False, False


def read_all(fd: int) -> bytes:
    """What is in a pipe whose writers are gone (non-blocking, bounded)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 256)
    except BlockingIOError:
        return b""


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_pids(pids: Iterable[int]) -> None:
    """SIGKILL each process, ignoring those already gone or not ours to kill."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
