"""Run one candidate program in a sandbox and say how it ended.

The model writes code and this module runs it on your machine. How much that code can do
depends on what the machine allows; `sandbox()` probes it once per process and interpreter:

- **namespace mode** (bubblewrap, `bwrap`): each sample gets its own network namespace (no
  network), pid namespace (it sees and signals only its own processes, and all of them die
  with it, with its init and with the harness), a read-only view of `/`, private bounded
  tmpfs mounts on `/tmp` and `/dev/shm`, empty `/run`, `/root` and `/home` (except the
  interpreter's own paths, bound back read-only), a fresh `/proc` and a minimal `/dev`. Its
  directory is the only writable place on disk. As root the sample also runs as a throw-away
  uid with no capability; otherwise bwrap maps the user into a user namespace and drops all.
- **process mode** (the fallback, with a warning): process limits only, as before: the
  sample can read what its uid can read and use the network. As root it still runs as a
  throw-away uid (with an inherited read-everything capability only if the interpreter is
  otherwise unreadable to it).

In both modes: rlimits (CPU seconds, address space, file size, processes), a wall-clock
timeout and an output cap that kill everything the sample started, stdin closed, HOME and
cwd in a fresh directory removed afterwards, and where the harness may create cgroups (root),
a memory cap and a process cap for the whole sample, not per process. Directories and
cgroups left by a harness that was killed are removed by the next one.

A program passes only when it exits 0 *and* reaches its end: the launcher runs it and then
writes a random token to a private pipe. The token is in no file, argument or environment
variable (it comes through a pipe that the launcher drains and closes before the program
starts), so reading the program, /proc or the open files does not reveal it.

Even in namespace mode this is NOT A SECURITY BOUNDARY against code in the same interpreter
that inspects the launcher's frame or memory to find the token (the tests run in the
sample's process, so no in-process signal can be unforgeable), nor against kernel bugs;
docs/eval.md ("The sandbox") lists what each mode defends against.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from eval.sandbox import capture, cgroups, namespace, uids

PASSED = "passed"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"

SANDBOX_ENV = "OFFPILOT_EVAL_SANDBOX"  # auto (default), namespace (required) or process
PREFIX = "offpilot-eval-"  # temp dirs and cgroups: PREFIX/<harness pid>-...

_EXTRA_TASKS = 8  # processes of the sandbox itself (bwrap, its init, setpriv) on top of the cap
_PROBE = "print('offpilot sandbox probe')"
# The programs that start a sample, as text (modules of this package, never imported here):
# the launcher it runs under and the cgroup joiner.
_LAUNCHER = resources.files("eval.sandbox").joinpath("launcher.py").read_text(encoding="utf-8")
_JOIN = resources.files("eval.sandbox").joinpath("join.py").read_text(encoding="utf-8")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-sample resource limits (0 disables one)."""

    timeout_s: float = 10.0
    cpu_s: int = 0  # 0: timeout_s rounded up, plus one
    memory_bytes: int = 2 << 30  # per process (rlimit) and, with cgroups, the whole sample
    file_bytes: int = 16 << 20
    processes: int = 64
    output_bytes: int = 64 << 10
    tmp_bytes: int = 64 << 20  # each of the private /tmp and /dev/shm (namespace mode)


@dataclass(frozen=True)
class Outcome:
    """How one program ended."""

    result: str  # passed / failed / timeout / error
    reason: str  # short, human-readable
    returncode: int | None
    output: str  # the capped stdout+stderr
    ms: float


class SandboxUnavailable(RuntimeError):
    """No way to run a program works here: every sample would be judged an error."""


@dataclass(frozen=True)
class Sandbox:
    """How samples run on this machine (chosen by `sandbox()`)."""

    namespace: bool  # bubblewrap: no network, read-only root, private /tmp, own pid space
    throwaway_uid: bool  # the harness is root: each sample gets a fresh unprivileged uid
    read_all: bool = False  # process mode as root: the uid inherits CAP_DAC_READ_SEARCH
    cgroup: bool = False  # memory and process caps for the whole sample
    bwrap: str = ""
    setpriv: str = ""
    hidden: tuple[str, ...] = ()  # emptied (tmpfs) in namespace mode
    binds: tuple[str, ...] = field(default=())  # the interpreter's paths under them, bound back

    def describe(self) -> str:
        """One line for logs and errors."""
        parts = ["namespace (bubblewrap)" if self.namespace else "process limits only"]
        if self.throwaway_uid:
            parts.append("throw-away uid" + (" with CAP_DAC_READ_SEARCH" if self.read_all else ""))
        parts.append("cgroup caps" if self.cgroup else "no cgroup (memory capped per process)")
        return ", ".join(parts)


def run_program(
    program: str,
    limits: Limits | None = None,
    setup: Callable[[Path], None] | None = None,
    python: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Outcome:
    """Run `program` with Python in a fresh sandbox; `setup` fills its directory first.

    `pass_fds`: more of the caller's fds for the program to inherit, at the same numbers (a
    private result channel, such as make-tasks' trace pipe). Raises SandboxUnavailable when
    no sandbox can run even a trivial program here.
    """
    python = python or sys.executable
    return _execute(sandbox(python), program, limits or Limits(), setup, python, pass_fds)


_probe_lock = threading.Lock()
_probed: dict[tuple[str, str], Sandbox] = {}


def sandbox(python: str | None = None) -> Sandbox:
    """The sandbox samples run in, probed once per interpreter (and SANDBOX_ENV value).

    The first call also removes what a killed harness left behind. Raises SandboxUnavailable
    when no candidate runs a trivial program: better to stop than to score every sample as
    an error.
    """
    python = python or sys.executable
    mode = os.environ.get(SANDBOX_ENV, "auto").strip() or "auto"
    key = (python, mode)
    with _probe_lock:
        if key not in _probed:
            if not _probed:
                sweep_stale()
            _probed[key] = _probe(python, mode)
        return _probed[key]


def _probe(python: str, mode: str) -> Sandbox:
    """Try the candidates, strongest first; the first that runs a trivial program wins."""
    if mode not in ("auto", "namespace", "process"):
        raise SandboxUnavailable(f"{SANDBOX_ENV}={mode!r}: expected auto, namespace or process")
    root = os.geteuid() == 0
    setpriv = shutil.which("setpriv") or ""
    cgroup = cgroups.roots() is not None
    failed: list[str] = []
    candidates: list[Sandbox] = []
    if mode != "process":
        bwrap = shutil.which("bwrap") or ""
        if not bwrap:
            failed.append("namespace: bubblewrap (bwrap) is not installed")
        elif root and not setpriv:
            failed.append("namespace: setpriv (util-linux) is not installed")
        else:
            hidden = namespace.hidden_dirs()
            binds = namespace.binds(python, (*namespace.PRIVATE, "/run", *hidden))
            candidates.append(Sandbox(True, root, False, cgroup, bwrap, setpriv, hidden, binds))
    if mode != "namespace":
        if root and setpriv:
            candidates.append(Sandbox(False, True, False, cgroup, setpriv=setpriv))
            candidates.append(Sandbox(False, True, True, cgroup, setpriv=setpriv))
        else:
            candidates.append(Sandbox(False, False, False, cgroup))
    if cgroup:  # the same without a cgroup, should joining one fail
        candidates = [c for box in candidates for c in (box, replace(box, cgroup=False))]
    for box in candidates:
        try:
            out = _execute(box, _PROBE, Limits(timeout_s=60), None, python)
        except OSError as exc:
            failed.append(f"{box.describe()}: {exc}")
            continue
        if out.result == PASSED and "offpilot sandbox probe" in out.output:
            _warn(box, root, failed)
            return box
        failed.append(f"{box.describe()}: {out.reason}: {out.output.strip()[-400:]}")
    raise SandboxUnavailable(
        f"no sandbox can run a Python program here ({python}), so every sample would be "
        "judged 'error'; stopping instead. Tried:\n  " + "\n  ".join(failed)
    )


def _warn(box: Sandbox, root: bool, failed: list[str]) -> None:
    """Say once, loudly, which defences are missing here."""
    missing = []
    if not box.namespace:
        missing.append(
            "NO NAMESPACE SANDBOX: samples can use the network, read whatever their uid can "
            "read and write to the shared /tmp"
        )
        if not root:
            missing.append("they can signal (kill) the harness and your other processes")
        if not box.cgroup:
            missing.append("their processes can outlive a killed harness")
    if box.read_all:
        missing.append("samples inherit CAP_DAC_READ_SEARCH: they can read every file")
    if root and not box.throwaway_uid:
        missing.append("samples run as root")
    if not box.cgroup:
        missing.append("memory is capped per process, not for the whole sample (needs root)")
    if not missing:
        log.info("eval sandbox: %s", box.describe())
        return
    tried = f" Tried first: {'; '.join(failed)}." if failed else ""
    hint = "" if box.namespace else " Install bubblewrap (apt-get install bubblewrap)."
    text = "; ".join(missing)
    log.warning(
        "eval sandbox: %s. %s.%s%s", box.describe(), text[0].upper() + text[1:], tried, hint
    )


def _execute(
    box: Sandbox,
    program: str,
    limits: Limits,
    setup: Callable[[Path], None] | None,
    python: str,
    pass_fds: tuple[int, ...] = (),
) -> Outcome:
    """Run one program in `box` and classify how it ended.

    `pass_fds` stay open in the program under the same numbers (the launcher closes all
    other descriptors), e.g. for a channel of the harness's own.
    """
    token = secrets.token_hex(16).encode()
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    work = root / "work"
    work.mkdir()
    token_read, token_write = os.pipe()
    os.write(token_write, token)
    os.close(token_write)
    result_read, result_write = os.pipe()
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    sandbox_uid: int | None = None
    group: cgroups.Cgroup | None = None
    try:
        if setup is not None:
            setup(work)
        (work / "program.py").write_text(program, encoding="utf-8")
        (root / "launcher.py").write_text(_LAUNCHER, encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work),
            "TMPDIR": "/tmp" if box.namespace else str(work),  # private there
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
        }
        nproc = limits.processes
        if box.throwaway_uid:
            sandbox_uid = uids.pick()
            uids.chown_tree(root, sandbox_uid)
        elif nproc > 0:  # RLIMIT_NPROC counts every thread of the user: allow ours plus some
            nproc += uids.user_tasks(os.geteuid()) + _EXTRA_TASKS
        cpu = limits.cpu_s or int(limits.timeout_s) + 2
        launch = [
            python,
            "-u",
            "-B",
            str(root / "launcher.py"),
            str(cpu),
            str(limits.memory_bytes),
            str(limits.file_bytes),
            str(nproc),
            str(token_read),
            ",".join(str(fd) for fd in (result_write, *pass_fds)),
            str(work / "program.py"),
        ]
        args = _command(box, limits, root, work, sandbox_uid) + launch
        if box.cgroup:
            tasks = limits.processes + _EXTRA_TASKS if limits.processes else 0
            group = cgroups.Cgroup.create(limits.memory_bytes, tasks)
            if group is not None:
                args = [sys.executable, "-I", "-S", "-c", _JOIN, *group.procs, "--", *args]
        proc = subprocess.Popen(
            args,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(token_read, result_write, *pass_fds),
            close_fds=True,
        )
        os.close(result_write)
        result_write = -1
        deadline = started + limits.timeout_s
        output, overflow, timed_out = capture.collect(proc, limits.output_bytes, deadline)
        capture.kill_group(proc.pid)
        returncode = proc.wait()
        finished = token in capture.read_all(result_read)
    finally:
        if proc is not None and proc.poll() is None:
            capture.kill_group(proc.pid)
            proc.wait()
        if group is not None:
            group.kill()
        if sandbox_uid is not None:
            uids.kill(sandbox_uid)
        oom = group is not None and group.oom_killed()
        if group is not None:
            group.remove()
        for fd in (token_read, result_read, result_write):
            if fd >= 0:
                os.close(fd)
        _remove(root)
    ms = (time.monotonic() - started) * 1000
    if box.namespace and 128 < returncode <= 128 + 64:
        returncode = 128 - returncode  # bwrap's init reports a signal death as 128 + signal
    text = output.decode("utf-8", errors="replace")
    result, reason = classify(returncode, text, finished, timed_out, overflow, limits)
    if oom and result != TIMEOUT and returncode < 0:
        mib = limits.memory_bytes >> 20
        reason = f"memory limit hit ({mib} MiB for the whole sample; {reason})"
    return Outcome(result, reason, returncode, text, ms)


def _remove(root: Path) -> None:
    """Delete a sample's directory (its killed processes may still be exiting)."""
    for _ in range(20):
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            return
        time.sleep(0.05)


def _command(box: Sandbox, limits: Limits, root: Path, work: Path, uid: int | None) -> list[str]:
    """What runs the launcher: bwrap and/or setpriv, or nothing."""
    drop = [] if uid is None else [box.setpriv, *uids.setpriv_args(uid, box.read_all), "--"]
    if not box.namespace:
        return drop
    args = namespace.bwrap_args(
        box.bwrap, box.hidden, box.binds, limits.tmp_bytes, root, work, as_root=uid is not None
    )
    return args + drop


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


def sweep_stale() -> None:
    """Kill the samples and remove the cgroups and directories of harnesses that died."""
    cgroups.sweep_stale()
    for entry in cgroups.listdir(Path(tempfile.gettempdir())):
        if entry.name.startswith(PREFIX) and cgroups.owner_died(entry.name[len(PREFIX) :]):
            shutil.rmtree(entry.path, ignore_errors=True)
