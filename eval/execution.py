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

import json
import logging
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
from dataclasses import dataclass, field, replace
from pathlib import Path

PASSED = "passed"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"

SANDBOX_ENV = "OFFPILOT_EVAL_SANDBOX"  # auto (default), namespace (required) or process
PREFIX = "offpilot-eval-"  # temp dirs and cgroups: PREFIX/<harness pid>-...

_UID_BASE = 200_000  # throw-away uids: base + the child's pid (pid_max is far below 1e6)
_HIDDEN = ("/root", "/home")  # emptied in namespace mode (the interpreter's paths come back)
_EXTRA_TASKS = 8  # processes of the sandbox itself (bwrap, its init, setpriv) on top of the cap
_PROBE = "print('offpilot sandbox probe')"

log = logging.getLogger(__name__)

# Runs in the sample's interpreter (site enabled, so its packages import). It reads the token
# and closes that pipe before the program starts, keeps only stdio and the channels named on
# its command line, runs the program as __main__ and writes the token only if it returns.
_LAUNCHER = """\
import os, resource, sys

def _offpilot_launch():
    cpu, mem, fsize, nproc, token_fd = (int(x) for x in sys.argv[1:6])
    keep = [int(x) for x in sys.argv[6].split(",")]  # the result pipe first
    path = sys.argv[7]
    try:  # die with the parent (the harness thread, or the namespace's init)
        import ctypes
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass

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
    token = os.read(token_fd, 64)
    os.close(token_fd)
    low = 3
    for fd in sorted(keep) + [1 << 20]:
        os.closerange(low, fd)
        low = fd + 1
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    sys.excepthook = _offpilot_hook
    import runpy

    runpy.run_path(path, run_name="__main__")
    os.write(keep[0], token)

def _offpilot_hook(kind, value, tb):
    # tracebacks start at the program, as if it ran as `python program.py`
    ours = (__file__, "<frozen runpy>")
    while tb is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    sys.__excepthook__(kind, value.with_traceback(tb), tb)

_offpilot_launch()
"""

# Joins the sample's cgroups before anything of it runs, then becomes the sandbox command.
_JOIN = (
    "import os, sys\n"
    "i = sys.argv.index('--')\n"
    "for p in sys.argv[1:i]:\n"
    "    with open(p, 'w') as f:\n"
    "        f.write('0')\n"
    "os.execv(sys.argv[i + 1], sys.argv[i + 1:])\n"
)


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
    cgroup = _cgroup_roots() is not None
    failed: list[str] = []
    candidates: list[Sandbox] = []
    if mode != "process":
        bwrap = shutil.which("bwrap") or ""
        if not bwrap:
            failed.append("namespace: bubblewrap (bwrap) is not installed")
        elif root and not setpriv:
            failed.append("namespace: setpriv (util-linux) is not installed")
        else:
            hidden = _hidden_dirs()
            binds = _binds(python, (*_PRIVATE, "/run", *hidden))
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
    group: _Cgroup | None = None
    try:
        if setup is not None:
            setup(work)
        (work / "program.py").write_text(program, encoding="utf-8")
        (root / "launcher.py").write_text(_LAUNCHER, encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work),
            "TMPDIR": "/tmp" if box.namespace else str(work),  # noqa: S108 (private there)
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
        }
        nproc = limits.processes
        if box.throwaway_uid:
            sandbox_uid = _pick_uid()
            _chown_tree(root, sandbox_uid)
        elif nproc > 0:  # RLIMIT_NPROC counts every thread of the user: allow ours plus some
            nproc += _user_tasks(os.geteuid()) + _EXTRA_TASKS
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
            group = _Cgroup.create(limits)
            if group is not None:
                args = [sys.executable, "-I", "-S", "-c", _JOIN, *group.procs, "--", *args]
        proc = subprocess.Popen(  # noqa: S603
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
        output, overflow, timed_out = _collect(proc, limits, started)
        _kill_group(proc.pid)
        returncode = proc.wait()
        finished = token in _read_all(result_read)
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()
        if group is not None:
            group.kill()
        if sandbox_uid is not None:
            _kill_uid(sandbox_uid)
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
    drop = [] if uid is None else [box.setpriv, *_setpriv_args(uid, box.read_all), "--"]
    if not box.namespace:
        return drop
    args = [box.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if uid is not None:  # root: no user namespace; setpriv inside needs these two, then drops all
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    size = ["--size", str(limits.tmp_bytes)] if limits.tmp_bytes > 0 else []
    for private in _PRIVATE:
        args += ["--perms", "1777", *size, "--tmpfs", private]
    empty = ("/run", *box.hidden)
    for path in empty:
        args += ["--tmpfs", path]
    made: set[str] = set()
    fresh = (*_PRIVATE, *empty)
    for path, how in [*((b, "--ro-bind") for b in box.binds), (str(root), "--bind")]:
        # bwrap would make a mount point's missing parents 0700 (unreadable to the uid)
        parts = Path(path).parts
        for i in range(2, len(parts)):
            parent = str(Path(*parts[:i]))
            if parent not in made and any(parent != f and _under(parent, f) for f in fresh):
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += [how, path, path]
    args += ["--chdir", str(work), "--"]
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


# Replaced by a private tmpfs in namespace mode; an interpreter under them is bound back
# (a checkout, and its .venv, in /tmp is common: CI's, `mktemp -d`).
_PRIVATE = ("/tmp", "/dev/shm")  # noqa: S108


def _hidden_dirs() -> tuple[str, ...]:
    """Home directories to empty in namespace mode: /root, /home and the user's own."""
    dirs = [*_HIDDEN, os.path.expanduser("~")]
    out: list[str] = []
    for d in dirs:
        real = os.path.realpath(d)
        if real != "/" and os.path.isdir(real) and not any(_under(real, o) for o in out):
            out = [o for o in out if not _under(o, real)] + [real]
    return tuple(out)


def _binds(python: str, hidden: tuple[str, ...]) -> tuple[str, ...]:
    """The interpreter's paths that lie under an emptied directory (bound back read-only)."""
    code = (
        "import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, "
        "sys.exec_prefix, sys.base_exec_prefix, *sys.path]))"
    )
    paths = [python]
    try:
        out = subprocess.run(  # noqa: S603
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            check=True,
        )
        paths += [p for p in json.loads(out.stdout) if isinstance(p, str) and p]
    except (OSError, ValueError, subprocess.SubprocessError):
        pass  # the probe will say that the interpreter does not start
    found: set[str] = set()
    for path in paths:
        for link in _link_chain(path):
            real = os.path.realpath(link)
            if os.path.isfile(real):
                real = os.path.dirname(real)
            if os.path.isdir(real) and any(_under(real, h) for h in hidden):
                found.add(real)
    ordered = sorted(found)
    return tuple(p for p in ordered if not any(p != q and _under(p, q) for q in ordered))


def _link_chain(path: str) -> list[str]:
    """`path` and every symlink it goes through (each must exist inside the sandbox)."""
    chain = []
    current = os.path.abspath(path)
    for _ in range(40):
        chain.append(current)
        if not os.path.islink(current):
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return chain


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


# -- cgroups: one per sample, holding every process it starts --------------------------------

_cgroup_lock = threading.Lock()
_cgroup_state: dict[str, tuple[tuple[Path, ...], bool] | None] = {}
_cgroup_counter = 0


def _cgroup_roots() -> tuple[tuple[Path, ...], bool] | None:
    """(our parent cgroup per hierarchy, is cgroup v2) where we may create cgroups, else None.

    Only as root: v1 with the memory and pids controllers, or a v2 root with both enabled.
    """
    with _cgroup_lock:
        if "roots" not in _cgroup_state:
            _cgroup_state["roots"] = _find_cgroup_roots()
        return _cgroup_state["roots"]


def _find_cgroup_roots() -> tuple[tuple[Path, ...], bool] | None:
    if os.geteuid() != 0:
        return None
    base = Path("/sys/fs/cgroup")
    try:
        v1 = (base / "memory", base / "pids")
        if all((d / "cgroup.procs").exists() for d in v1):
            mine = tuple(d / "offpilot-eval" for d in v1)
            for d in mine:
                d.mkdir(exist_ok=True)
            return mine, False
        controllers = (base / "cgroup.controllers").read_text().split()
        if {"memory", "pids"} <= set(controllers):
            (base / "cgroup.subtree_control").write_text("+memory +pids")
            mine2 = base / "offpilot-eval"
            mine2.mkdir(exist_ok=True)
            (mine2 / "cgroup.subtree_control").write_text("+memory +pids")
            return (mine2,), True
    except OSError:
        pass
    return None


@dataclass
class _Cgroup:
    """The cgroup(s) of one sample: caps for all its processes, and a way to find them all."""

    dirs: tuple[Path, ...]
    v2: bool

    @classmethod
    def create(cls, limits: Limits) -> _Cgroup | None:
        """A fresh cgroup with the sample's memory and process caps, or None."""
        global _cgroup_counter
        found = _cgroup_roots()
        if found is None:
            return None
        roots, v2 = found
        with _cgroup_lock:
            _cgroup_counter += 1
            # pids are reused (pid_max is often 32768): a dead harness's cgroup may still
            # carry this pid, so the name gets a random part too
            name = f"{os.getpid()}-{_cgroup_counter}-{secrets.token_hex(4)}"
        group = cls(tuple(r / name for r in roots), v2)
        try:
            for d in group.dirs:
                d.mkdir()
            mem, tasks = limits.memory_bytes, limits.processes
            if v2:
                _write_knob(group.dirs[0] / "memory.max", mem)
                if mem > 0:  # no swapping past the cap
                    _write_knob(group.dirs[0] / "memory.swap.max", 1, optional=True, text="0")
                _write_knob(group.dirs[0] / "pids.max", tasks + _EXTRA_TASKS if tasks else 0)
            else:
                memory, pids = group.dirs
                _write_knob(memory / "memory.limit_in_bytes", mem)
                _write_knob(memory / "memory.memsw.limit_in_bytes", mem, optional=True)
                _write_knob(pids / "pids.max", tasks + _EXTRA_TASKS if tasks else 0)
        except OSError as exc:
            log.warning("eval sandbox: cannot set up a cgroup (%s); per-process limits only", exc)
            group.remove()
            return None
        return group

    @property
    def procs(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for p in self.procs:
            try:
                found.update(int(x) for x in Path(p).read_text().split())
            except (OSError, ValueError):
                pass
        return found

    def kill(self, rounds: int = 200) -> None:
        """SIGKILL every process in it until none is left (a fork bomb may still fork)."""
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return
            if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
                try:
                    (self.dirs[0] / "cgroup.kill").write_text("1")
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of it for going over the memory cap."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        for d in self.dirs:
            try:
                text = (d / name).read_text()
            except OSError:
                continue
            m = re.search(r"^oom_kill (\d+)", text, re.M)
            if m and int(m.group(1)) > 0:
                return True
        return False

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(100):  # rmdir fails until the last zombie is reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _write_knob(path: Path, value: int, optional: bool = False, text: str = "") -> None:
    """Write a cgroup limit (0: leave it unlimited)."""
    if value <= 0:
        return
    try:
        path.write_text(text or str(value))
    except OSError:
        if not optional:
            raise


def sweep_stale() -> None:
    """Kill the samples and remove the cgroups and directories of harnesses that died."""
    found = _cgroup_roots()
    for parent in found[0] if found else ():
        for entry in _listdir(parent):
            pid = _owner_pid(entry.name)
            if entry.is_dir() and pid is not None and not _alive(pid):
                stale = _Cgroup((Path(entry.path),), found[1] if found else False)
                stale.kill()
                stale.remove()
    tmp = Path(tempfile.gettempdir())
    for entry in _listdir(tmp):
        if entry.name.startswith(PREFIX):
            pid = _owner_pid(entry.name[len(PREFIX) :])
            if pid is not None and not _alive(pid):
                shutil.rmtree(entry.path, ignore_errors=True)


def _listdir(path: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(path))
    except OSError:
        return []


def _owner_pid(name: str) -> int | None:
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() and "-" in name else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def _setpriv_args(uid: int, read_all: bool = False) -> list[str]:
    """`setpriv` flags: a throw-away uid with no capability and no setuid.

    `read_all` (process mode only, when the interpreter is unreadable to any other uid, e.g.
    under a 0700 /root) keeps CAP_DAC_READ_SEARCH, ambient so that it survives the exec of
    the interpreter: the sample can then read every file. RLIMIT_NPROC binds this uid.
    """
    inh = "--inh-caps=-all,+dac_read_search" if read_all else "--inh-caps=-all"
    caps = ["--ambient-caps=+dac_read_search"] if read_all else []
    return [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", inh, *caps, "--no-new-privs"]


def _chown_tree(root: Path, uid: int) -> None:
    """Hand a directory tree to the sandbox uid."""
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
