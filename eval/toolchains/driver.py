"""The driver program of `eval.toolchains`: it compiles and tests a sample inside the sandbox.

It runs as the sample's Python program (through execution's launcher; `toolchains` reads this
file's text with importlib.resources and never runs it in the harness, so it uses only the
standard library) and reads the toolchain's `toolchain.json` (`toolchains.config`): it checks
the binaries as the sandbox sees them, compiles, runs, and caps each step's output and time.
It ends with one exception line (`ToolchainMissingError: ...`, `CompileError: ...`,
`TestFailedError: ...`, or a timeout) that `toolchains.outcome` maps to a result; a clean
return means the test passed.

Exit status 0 is not enough: a completion can call `exit(0)` before the assertions run. The
driver draws a nonce and feeds it to the test program's stdin (a pipe, closed, in no file,
argument or environment variable); the language's runner (`toolchains`) reads and closes
stdin before the completion's code runs, and prints `END_MARK nonce` only after the test's
last assertion. The test passes only if that line is in its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

END_MARK = "OFFPILOT-END"  # the runners print it and the nonce after the test's end
TAIL = 4096  # bytes of the end of the output kept: the end line is the last one printed


class ToolchainMissingError(Exception):
    """A binary the toolchain needs is not there, as the sandbox sees it."""


class CompileError(Exception):
    """The compiler rejected the program."""


class CompileTimeoutError(Exception):
    """The compiler ran past its time."""


class TestFailedError(Exception):
    """The test exited non-zero or printed the language's failure marker."""


class TestTimeoutError(Exception):
    """The test ran past its time."""


class TestUnfinishedError(Exception):
    """The test exited 0 without printing the end line: it stopped before its end."""


def step(
    argv: list[str], limit: float, env: dict[str, str], cap: int, feed: bytes = b""
) -> tuple[int | None, bytes, int, bytes]:
    """Run argv with a wall-clock limit and `feed` as its whole stdin (a pipe, closed first).

    Returns (status or None on timeout, head of output, size, tail of output).
    """
    stdin = subprocess.DEVNULL
    if feed:
        stdin, write = os.pipe()
        os.write(write, feed)
        os.close(write)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        if feed:
            os.close(stdin)
    assert proc.stdout is not None
    head: list[bytes] = []
    size, tail, deadline = 0, b"", time.monotonic() + limit
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None, b"".join(head), size, tail
            if not sel.select(min(left, 0.5)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            if size < cap:
                head.append(chunk[: cap - size])
            size += len(chunk)
            tail = (tail + chunk)[-TAIL:]
    try:
        status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, b"".join(head), size, tail
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)  # what it left running
    return status, b"".join(head), size, tail


def show(text: str, size: int, cap: int) -> None:
    """Echo a step's output, saying where it was cut."""
    sys.stdout.write(text)
    if size > cap:
        sys.stdout.write(f"\n[output cut at {cap} of {size} bytes]\n")
    sys.stdout.write("\n")
    sys.stdout.flush()


def first_error(text: str) -> str:
    """The compiler's first line that names an error, else its first non-comment line."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    for x in lines:
        if "error" in x.lower():
            return x
    for x in lines:
        if not x.startswith("#"):
            return x
    return "no message"


def one_line(text: str, width: int = 200) -> str:
    """`text` on one line, shortened to `width`: the exception line stays one line."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def how(status: int) -> str:
    """How a process ended, in words."""
    if status < 0:
        try:
            return "killed by " + signal.Signals(-status).name
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def main() -> None:
    """Check, compile and run as `toolchain.json` says; raise on anything but a finished pass."""
    with open("toolchain.json", encoding="utf-8") as fh:
        cfg: dict[str, Any] = json.load(fh)
    work = os.getcwd()
    for name, package in cfg["needs"]:
        found = os.path.exists(name) if name.startswith("/") else shutil.which(name)
        if not found:
            raise ToolchainMissingError(f"{os.path.basename(name)} (install {package})")
    env = dict(os.environ)
    env.update({k: v.replace("{work}", work) for k, v in cfg["env"].items()})
    for key in ("GOCACHE", "GOTMPDIR"):
        if key in env:
            os.makedirs(env[key], exist_ok=True)
    cap = cfg["cap"]
    if cfg["compile"]:
        status, out, size, _ = step(cfg["compile"], cfg["compile_s"], env, cap)
        text = out.decode("utf-8", "replace")
        show(text, size, cap)
        if status is None:
            raise CompileTimeoutError(f"compile past {cfg['compile_s']:g} s")
        if status != 0:
            raise CompileError(one_line(first_error(text)))
    nonce = secrets.token_hex(16)
    end = f"{END_MARK} {nonce}"
    status, out, size, tail = step(cfg["run"], cfg["run_s"], env, cap, nonce.encode())
    text = out.decode("utf-8", "replace")
    show(text.replace(f"\n{end}\n", "\n"), size, cap)
    if status is None:
        raise TestTimeoutError(f"test run past {cfg['run_s']:g} s")
    marker = cfg["fail_marker"]
    if status != 0 or (marker and marker in text):
        lines = [x for x in text.splitlines() if x.strip()]
        said = re.compile(
            r"\s*(\w*(Error|Exception)\b|thread .* panicked|panic:|--- FAIL|\w+: .*Assertion)"
        )
        found = [x for x in lines if said.match(x)]
        hint = found[0] if found else lines[-1] if lines else ""
        raise TestFailedError(one_line(how(status) + (f"; {hint}" if hint else "")))
    last = tail.decode("utf-8", "replace")
    if end not in last or cfg["summary"] not in last.partition(end)[2]:
        raise TestUnfinishedError("exited 0 before the tests finished")


def hide() -> None:
    """Keep the children (same uid) out of this process's memory, where the nonce is."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/<pid>/mem is root's


if __name__ == "__main__":
    hide()
    main()
