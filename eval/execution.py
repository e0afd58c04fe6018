"""Run one candidate program under limits and say how it ended.

NOT A SECURITY BOUNDARY. The model writes code and this module runs it on your machine. It
contains the usual accidents of generated code (loops, fork bombs, memory hogs, output floods,
stray deletes, exits, crashes) so that a benchmark run survives them; it does not stop code
that sets out to escape (network access, reading your files, kernel bugs). Run benchmarks
of untrusted models inside a container or VM.

What each sample gets:
- its own process, started in a new session (its own process group), stdin closed;
- its own temporary directory as cwd, HOME and TMPDIR, removed afterwards;
- rlimits: CPU seconds, address space, file size, number of processes;
- a wall-clock timeout, after which the whole group is killed with SIGKILL;
- output capped: past the cap the group is killed and the result is an error;
- when the harness runs as root (and `setpriv` exists), a throw-away uid: RLIMIT_NPROC does
  not bind root, and the uid cannot write or delete files it does not own (it keeps the
  right to read them, so that a root-only interpreter still starts). Every process left
  with that uid is killed at the end, including ones that left the group with `setsid`.

A program passes only when it exits 0 *and* reaches the end: the harness appends a line that
writes a random token to a private pipe, so `sys.exit(0)` or `os._exit(0)` mid-way is no pass.
"""

from __future__ import annotations

import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PASSED = "passed"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"

_UID_BASE = 200_000  # throw-away uids: base + the child's pid (pid_max is far below 1e6)

_LAUNCHER = """\
import os, resource, sys
cpu, mem, fsize, nproc = (int(x) for x in sys.argv[1:5])
def cap(kind, value):
    if value > 0:
        soft, hard = resource.getrlimit(kind)
        new = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (new, new))
cap(resource.RLIMIT_CPU, cpu)
cap(resource.RLIMIT_AS, mem)
cap(resource.RLIMIT_FSIZE, fsize)
cap(resource.RLIMIT_NPROC, nproc)
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
os.execv(sys.executable, [sys.executable, "-u", "-B", sys.argv[5]])
"""


@dataclass(frozen=True)
class Limits:
    """Per-sample resource limits (0 disables one)."""

    timeout_s: float = 10.0
    cpu_s: int = 0  # 0: timeout_s rounded up, plus one
    memory_bytes: int = 2 << 30
    file_bytes: int = 16 << 20
    processes: int = 64
    output_bytes: int = 64 << 10


@dataclass(frozen=True)
class Outcome:
    """How one program ended."""

    result: str  # passed / failed / timeout / error
    reason: str  # short, human-readable
    returncode: int | None
    output: str  # the capped stdout+stderr
    ms: float


def run_program(
    program: str,
    limits: Limits | None = None,
    setup: Callable[[Path], None] | None = None,
    python: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Outcome:
    """Run `program` with Python in a fresh sandbox; `setup` fills its directory first.

    `pass_fds`: more of the caller's fds for the program to inherit, at the same numbers (a
    private result channel, such as make-tasks' trace pipe).
    """
    limits = limits or Limits()
    python = python or sys.executable
    token = secrets.token_hex(16)
    root = Path(tempfile.mkdtemp(prefix="offpilot-eval-"))
    work = root / "work"
    work.mkdir()
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    sandbox_uid: int | None = None
    try:
        if setup is not None:
            setup(work)
        epilogue = f"\n\nimport os as _offpilot_os\n_offpilot_os.write({write_fd}, b'{token}')\n"
        (work / "program.py").write_text(program + epilogue, encoding="utf-8")
        (root / "launcher.py").write_text(_LAUNCHER, encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work),
            "TMPDIR": str(work),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
        }
        nproc = limits.processes
        prefix: list[str] = []
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv:
            sandbox_uid = _pick_uid()
            _chown_tree(root, sandbox_uid)
            prefix = [setpriv, *_setpriv_args(sandbox_uid), "--"]
        elif nproc > 0:  # RLIMIT_NPROC counts every thread of the user: allow ours plus some
            nproc += _user_tasks(os.geteuid())
        cpu = limits.cpu_s or int(limits.timeout_s) + 2
        args = [
            *prefix,
            python,
            "-I",
            "-S",
            str(root / "launcher.py"),
            str(cpu),
            str(limits.memory_bytes),
            str(limits.file_bytes),
            str(nproc),
            "program.py",
        ]
        proc = subprocess.Popen(  # noqa: S603
            args,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(write_fd, *pass_fds),
            close_fds=True,
        )
        os.close(write_fd)
        write_fd = -1
        output, overflow, timed_out = _collect(proc, limits, started)
        _kill_group(proc.pid)
        returncode = proc.wait()
        finished = token.encode() in _read_all(read_fd)
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()
        if sandbox_uid is not None:
            _kill_uid(sandbox_uid)
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        shutil.rmtree(root, ignore_errors=True)
    ms = (time.monotonic() - started) * 1000
    text = output.decode("utf-8", errors="replace")
    result, reason = classify(returncode, text, finished, timed_out, overflow, limits)
    return Outcome(result, reason, returncode, text, ms)


def classify(
    returncode: int,
    output: str,
    finished: bool,
    timed_out: bool,
    overflow: bool,
    limits: Limits,
) -> tuple[str, str]:
    """The result kind and a short reason from how the process ended."""
    if timed_out:
        return TIMEOUT, f"no result after {limits.timeout_s:g} s (process group killed)"
    if overflow:
        return ERROR, f"output over {limits.output_bytes} bytes (process group killed)"
    if returncode == 0 and finished:
        return PASSED, "passed"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGXCPU:
            return TIMEOUT, f"CPU limit hit ({name})"
        return ERROR, f"killed by {name}"
    if returncode == 0:
        return ERROR, "exited 0 before the tests finished"
    exc = last_exception(output)
    if exc is None:
        return ERROR, f"exit status {returncode}"
    if exc.startswith("AssertionError"):
        return FAILED, exc
    if exc.startswith("SystemExit"):
        return ERROR, exc
    return ERROR, exc


_EXC = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\b.*)$", re.M)


def last_exception(output: str, width: int = 160) -> str | None:
    """The last `SomeError: message` line of a traceback, shortened."""
    found = _EXC.findall(output)
    if not found:
        return None
    line = str(found[-1]).strip()
    return line if len(line) <= width else line[: width - 3] + "..."


def _collect(
    proc: subprocess.Popen[bytes], limits: Limits, started: float
) -> tuple[bytes, bool, bool]:
    """Read output until exit, the cap or the deadline; (output, overflowed, timed out)."""
    assert proc.stdout is not None
    chunks: list[bytes] = []
    size = 0
    deadline = started + limits.timeout_s
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
            if size > limits.output_bytes:
                chunks.append(data[: max(0, limits.output_bytes - (size - len(data)))])
                return b"".join(chunks), True, False
            chunks.append(data)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return b"".join(chunks), False, True
    return b"".join(chunks), False, False


def _read_all(fd: int) -> bytes:
    """What is in a pipe whose writers are gone (non-blocking, bounded)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 256)
    except BlockingIOError:
        return b""


def _kill_group(pgid: int) -> None:
    """SIGKILL a whole process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_uid_lock = threading.Lock()
_uid_counter = 0


def _pick_uid() -> int:
    """A uid owned by no account and not used by a running process."""
    global _uid_counter
    while True:
        with _uid_lock:
            _uid_counter += 1
            uid = _UID_BASE + (os.getpid() % 10_000) * 100 + _uid_counter % 100
        if not _uid_processes(uid):
            return uid


def _uid_processes(uid: int) -> list[int]:
    """Pids of the processes running as `uid`."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _user_tasks(uid: int) -> int:
    """Threads now running as `uid` (what RLIMIT_NPROC counts)."""
    total = 0
    for pid in _uid_processes(uid):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total


def _kill_uid(uid: int, rounds: int = 20) -> None:
    """Kill every process of a throw-away uid (a fork bomb may still be forking)."""
    for _ in range(rounds):
        pids = _uid_processes(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def _setpriv_args(uid: int) -> list[str]:
    """`setpriv` flags: a throw-away uid that may read (not write) root's files, no setuid.

    Only root-owned interpreters (e.g. under a 0700 /root) need the read capability; it is
    ambient so that it survives the exec of the interpreter. RLIMIT_NPROC binds this uid.
    """
    return [
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--no-new-privs",
    ]


def _chown_tree(root: Path, uid: int) -> None:
    """Hand a directory tree to the sandbox uid."""
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
