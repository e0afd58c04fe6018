"""Python code run in a child process: work that may kill the interpreter running it.

llama.cpp built for another CPU dies of SIGILL at its first matrix product, and its
quantizer can abort; in a child, that is an error to report, not the server gone.
"""

from __future__ import annotations

import signal
import subprocess
import sys


class ChildDied(OSError):
    """The child ended other than with exit 0; the message says how (`death`)."""


def run_python(program: str, *args: str, timeout: float) -> bytes:
    """Run `program` (`python -c`) with `args` in a fresh interpreter; its stdout.

    `ChildDied` where it does not exit 0; `subprocess.TimeoutExpired` past `timeout` (the
    child is killed).
    """
    run = subprocess.run(
        [sys.executable, "-c", program, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if run.returncode != 0:
        raise ChildDied(death(run.returncode, run.stderr))
    return run.stdout


def death(returncode: int, stderr: bytes) -> str:
    """A child's end in words: the signal that killed it, or its exit and last error line."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"exit {returncode}: {last[0][:200]}".rstrip(": ")
