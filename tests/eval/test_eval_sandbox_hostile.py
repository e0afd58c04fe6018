"""Samples written to escape: each class of attack on the eval sandbox, and what stops it.

The namespace defences (network, read-only root, private /tmp, pid namespace) need
bubblewrap: these tests skip loudly where `bwrap` is not installed and fail where it is
installed but the sandbox did not come up. The set-up installs it when run as root.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from eval.sandbox import execution
from eval.sandbox.execution import PASSED, Limits, run_program

FAST = Limits(timeout_s=10.0)


def _box() -> execution.Sandbox:
    return execution.sandbox()


def _need_namespace() -> None:
    """Skip without bubblewrap; with it, the namespace sandbox must be the one in use."""
    if _box().namespace:
        return
    if shutil.which("bwrap"):
        pytest.fail(f"bubblewrap is installed but the sandbox fell back to: {_box().describe()}")
    pytest.skip("BUBBLEWRAP NOT INSTALLED (apt-get install bubblewrap): namespace test skipped")


def _processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds `marker`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_gone(marker: str, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _wait_settled(marker: str, seconds: float = 0.3) -> bool:
    """Whether processes with `marker` are still there after `seconds` (not mid-handover)."""
    time.sleep(seconds)
    return bool(_processes_with(marker))


def _escaper(marker: str) -> str:
    """Program text: start a grandchild that leaves the group (double fork + setsid)."""
    code = (
        "import os, time\n"
        "if os.fork():\n    os._exit(0)\n"
        "os.setsid()\n"
        "if os.fork():\n    os._exit(0)\n"
        f"time.sleep(600)  # {marker}\n"
    )
    return f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {code!r}])\n"


def test_reads_outside_are_refused(tmp_path: Path) -> None:
    box = _box()
    if not box.namespace and (box.read_all or not box.throwaway_uid):
        pytest.skip(f"this machine's sandbox ({box.describe()}) lets samples read files")
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret-" + secrets.token_hex(8))
    secret.chmod(0o600)
    targets = [str(secret)] + (["/etc/shadow"] if Path("/etc/shadow").exists() else [])
    program = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        print('READ', path, open(path).read())\n"
        "    except OSError as exc:\n"
        "        print('REFUSED', path, type(exc).__name__)\n"
    )
    out = run_program(program, FAST)
    assert out.result == PASSED, out.output
    assert "READ" not in out.output
    assert secret.read_text() not in out.output
    assert out.output.count("REFUSED") == len(targets)


def test_no_capability_is_inherited() -> None:
    program = (
        "lines = open('/proc/self/status').read().splitlines()\n"
        "caps = dict(line.split(':') for line in lines if line.startswith('Cap'))\n"
        "for name in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb'):\n"
        "    assert int(caps[name], 16) == 0, (name, caps[name])\n"
    )
    box = _box()
    out = run_program(program, FAST)
    if box.read_all:  # the documented fallback for an unreadable interpreter
        assert out.result != PASSED
    else:
        assert out.result == PASSED, out.output


def test_no_network() -> None:
    _need_namespace()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'hi')\n"
            "    print('CONNECTED')\n"
            "except OSError as exc:\n"
            "    print('NO NETWORK', exc)\n"
        )
        out = run_program(program, FAST)
        assert "NO NETWORK" in out.output, out.output
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_root_is_read_only() -> None:
    _need_namespace()
    name = f"offpilot-test-{secrets.token_hex(6)}"
    target = Path("/var/tmp") / name  # world-writable on the host
    program = (
        f"try:\n    open({str(target)!r}, 'w').write('x')\n    print('WROTE')\n"
        "except OSError as exc:\n    print('REFUSED', exc)\n"
    )
    try:
        out = run_program(program, FAST)
        assert "REFUSED" in out.output, out.output
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_fork_bomb_leaves_no_process() -> None:
    marker = f"bomb-{secrets.token_hex(6)}"
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    bomb += f"# {marker}"
    program = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', {bomb!r}])\n"
    started = time.monotonic()
    out = run_program(program, Limits(timeout_s=3.0, processes=32))
    assert out.result != PASSED
    assert time.monotonic() - started < 20
    assert _wait_gone(marker) == []
    assert run_program("print('next')", FAST).result == PASSED


def test_double_fork_and_setsid_do_not_escape() -> None:
    box = _box()
    if not (box.namespace or box.throwaway_uid or box.cgroup):
        pytest.skip("process mode without root: an escaped grandchild survives (documented)")
    marker = f"escape-{secrets.token_hex(6)}"
    out = run_program(_escaper(marker) + "import time\ntime.sleep(0.5)\n", FAST)
    assert out.result == PASSED, out.output
    assert _wait_gone(marker) == []


def test_killing_the_parent_leaves_the_harness_alive() -> None:
    box = _box()
    if not (box.namespace or box.throwaway_uid):
        pytest.skip("process mode without root: a sample can signal the harness (documented)")
    bystander = subprocess.Popen(["sleep", "30"])  # another process of ours
    try:
        program = (
            "import os, signal\n"
            f"for pid in (os.getppid(), {os.getpid()}, {bystander.pid}, -1):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError as exc:\n"
            "        print(pid, exc)\n"
            "import time\ntime.sleep(1)\n"
        )
        out = run_program(program, FAST)
        assert out.returncode is not None  # the harness is still here, with a result
        assert bystander.poll() is None, "the sample killed a process of the harness's user"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_killed_harness_takes_its_samples_and_files_along() -> None:
    box = _box()
    if not (box.namespace or box.cgroup):
        pytest.skip("process mode without cgroups: samples outlive a killed harness (documented)")
    marker = f"orphan-{secrets.token_hex(6)}"
    program = _escaper(marker) + "import time\ntime.sleep(600)\n"
    errors = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    harness = subprocess.Popen(  # the program on stdin: its marker is not ours
        [
            sys.executable,
            "-c",
            "import sys\nfrom eval.sandbox.execution import Limits, run_program\n"
            "run_program(sys.stdin.read(), Limits(timeout_s=120))\n",
        ],
        stdin=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    assert harness.stdin is not None
    harness.stdin.write(program)
    harness.stdin.close()
    try:
        # settled: the double fork hands the marker from process to process, and one scan of
        # /proc can miss the handover (the parent gone, the grandchild not yet listed)
        deadline = time.monotonic() + 60
        while not (_processes_with(marker) and _wait_settled(marker)):
            if harness.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert _processes_with(marker), (
            f"the sample never started (harness exit {harness.poll()}): "
            + Path(errors.name).read_text()[-2000:]
        )
        harness.kill()
        harness.wait()
        assert _wait_gone(marker) == [], "samples outlived the harness"
    finally:
        harness.kill()
        harness.wait()
    tmp = Path(tempfile.gettempdir())
    left = list(tmp.glob(f"{execution.PREFIX}{harness.pid}-*"))
    assert left, "the killed harness's directory should be there until the sweep"
    execution.sweep_stale()
    assert list(tmp.glob(f"{execution.PREFIX}{harness.pid}-*")) == []
    for parent in Path("/sys/fs/cgroup").glob("*/offpilot-eval"):
        assert list(parent.glob(f"{harness.pid}-*")) == []


def test_memory_is_capped_for_the_whole_sample() -> None:
    box = _box()
    if not box.cgroup:
        pytest.skip("no writable cgroup (not root): memory is capped per process only")
    cap = 256 << 20
    child = (
        f"b = b'x' * {int(cap * 0.4)}\n"  # written, so resident
        "print('held', flush=True)\n"
        "import time\ntime.sleep(4)\n"
    )
    program = (
        "import subprocess, sys\n"
        f"procs = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(4)]\n"
        "codes = [p.wait() for p in procs]\n"
        "assert codes == [0, 0, 0, 0], codes\n"
    )
    out = run_program(program, Limits(timeout_s=30, memory_bytes=cap))
    # Each child alone fits under the cap, so with a per-process cap all four would pass.
    # Under the sample's cap the kernel kills some (which ones depends on timing: killing an
    # early one lets a later one hold its memory, so all four may print `held`).
    assert out.result != PASSED, out.output
    killed = "-9" in out.output or "MemoryError" in out.output or out.returncode in (-9, 137)
    assert killed, out


def test_a_forged_token_is_not_a_pass() -> None:
    program = (
        "import os, re\n"
        "found = set()\n"
        "def scan(data):\n"
        "    found.update(re.findall(rb'[0-9a-f]{32}', data))\n"
        "paths = [__file__, '/proc/self/cmdline', '/proc/self/environ']\n"
        "for top in (os.getcwd(), os.path.dirname(os.getcwd())):\n"
        "    for d, _, files in os.walk(top):\n"
        "        paths += [os.path.join(d, f) for f in files]\n"
        "for path in paths:\n"
        "    try:\n"
        "        scan(open(path, 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
        "for fd in range(3, 256):\n"
        "    try:\n"
        "        os.set_blocking(fd, False)\n"
        "        scan(os.read(fd, 4096))\n"
        "    except OSError:\n"
        "        pass\n"
        "print('candidates', len(found), flush=True)\n"
        "for fd in range(3, 256):\n"
        "    for token in found:\n"
        "        try:\n"
        "            os.write(fd, token)\n"
        "        except OSError:\n"
        "            pass\n"
        "os._exit(0)  # skip the tests\n"
        "assert False, 'the tests'\n"
    )
    out = run_program(program, FAST)
    assert out.result != PASSED, out.output
    assert "before the tests finished" in out.reason


def test_tmp_is_private_bounded_and_gone_after() -> None:
    _need_namespace()
    marker = f"fill-{secrets.token_hex(6)}"
    host_tmp = Path(tempfile.gettempdir())
    (host_tmp / f"{marker}-host").write_text("host")
    program = (
        "import os\n"
        f"print('SEES HOST' if os.path.exists('/tmp/{marker}-host') else 'PRIVATE')\n"
        "total = 0\n"
        "try:\n"
        "    for i in range(64):\n"
        f"        with open(f'/tmp/{marker}-{{i}}', 'wb') as f:\n"
        "            f.write(b'x' * (1 << 20))\n"
        "        total += 1\n"
        "except OSError as exc:\n"
        "    print('STOPPED', exc)\n"
        "print('MiB', total)\n"
    )
    try:
        out = run_program(program, Limits(timeout_s=20, tmp_bytes=8 << 20))
        assert "PRIVATE" in out.output, out.output
        assert "STOPPED" in out.output, out.output
        written = int(out.output.split("MiB")[1].split()[0])
        assert written <= 8
        assert list(host_tmp.glob(f"{marker}-[0-9]*")) == []
    finally:
        for path in host_tmp.glob(f"{marker}-*"):
            path.unlink()


def test_a_sandbox_that_cannot_run_anything_stops_loudly(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-python"
    with pytest.raises(execution.SandboxUnavailable, match="every sample would be judged"):
        run_program("print(1)", FAST, python=str(missing))


def test_without_the_read_capability_samples_still_run_or_it_stops() -> None:
    """Docker's and Podman's default: CAP_DAC_READ_SEARCH is not in the bounding set."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to drop a capability from the bounding set")
    harness = (
        "from eval.sandbox.execution import run_program\n"
        "out = run_program('print(\"fine\")')\n"
        "print('RESULT', out.result, out.reason)\n"
    )
    for mode in ("auto", "process"):
        env = {**os.environ, execution.SANDBOX_ENV: mode}
        done = subprocess.run(
            ["setpriv", "--bounding-set=-dac_read_search", "--", sys.executable, "-c", harness],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if "RESULT" in done.stdout:
            assert "RESULT passed" in done.stdout, (mode, done.stdout, done.stderr)
        else:  # nothing could run: it must say so, not score an error
            assert done.returncode != 0
            assert "SandboxUnavailable" in done.stderr, done.stderr
            assert "every sample would be judged 'error'" in done.stderr
        if mode == "auto" and _box().namespace:
            assert "RESULT passed" in done.stdout, done.stderr


def test_process_mode_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(execution.SANDBOX_ENV, "process")
    caplog.set_level("WARNING", logger="eval.sandbox.execution")
    monkeypatch.setattr(execution, "_probed", {})
    box = execution.sandbox()
    assert not box.namespace
    assert "no namespace sandbox" in caplog.text.lower()
    assert run_program("print('ok')", FAST).result == PASSED


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(execution.SANDBOX_ENV, "chroot")
    with pytest.raises(execution.SandboxUnavailable, match="expected auto, namespace or process"):
        execution.sandbox()


def test_signal_deaths_read_the_same_in_every_mode() -> None:
    out = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGABRT)", FAST)
    assert out.reason == "killed by SIGABRT"
    assert out.returncode == -signal.SIGABRT


def test_a_run_stops_before_loading_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from eval.records import RunSettings
    from eval.run import run

    monkeypatch.setenv(execution.SANDBOX_ENV, "no-such-mode")

    def factory() -> None:
        raise AssertionError("the model was loaded although no sample could be judged")

    settings = RunSettings(suite="humaneval-single-line", limit=1)
    with pytest.raises(execution.SandboxUnavailable):
        run(settings, tmp_path / "out", factory)  # type: ignore[arg-type]
    assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_an_interpreter_under_tmp_runs_in_the_namespace(tmp_path: Path) -> None:
    """A checkout and its venv in /tmp (CI's clean checkout, `mktemp -d`): the private /tmp
    must not hide the interpreter's packages, nor push the sandbox down to process mode."""
    _need_namespace()
    assert str(tmp_path).startswith(tempfile.gettempdir())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "offpilot_probe_pkg.py").write_text("WHERE = 'venv under tmp'\n")
    assert execution.sandbox(python).namespace, execution.sandbox(python).describe()
    out = run_program("import offpilot_probe_pkg\nprint(offpilot_probe_pkg.WHERE)\n", python=python)
    assert out.result == PASSED, out.output
    assert "venv under tmp" in out.output, out.output
