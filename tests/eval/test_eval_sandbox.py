"""The sandbox survives and records what generated code does wrong."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from eval.sandbox.execution import ERROR, FAILED, PASSED, TIMEOUT, Limits, classify, run_program

FAST = Limits(timeout_s=3.0)


def _alive_children() -> set[int]:
    """Processes whose parent is this test process (zombies excluded).

    Compared before and after: a session fixture's server (llama.cpp for the backend tests)
    is a child of this process too, and stays.
    """
    me = os.getpid()
    children = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def test_passing_program() -> None:
    out = run_program("x = 1\nassert x == 1\nprint('ok')", FAST)
    assert (out.result, out.returncode) == (PASSED, 0)
    assert "ok" in out.output


def test_assertion_is_a_failure() -> None:
    out = run_program("assert 1 + 1 == 3, 'math'", FAST)
    assert out.result == FAILED
    assert out.reason == "AssertionError: math"


def test_exception_is_an_error_with_its_message() -> None:
    out = run_program("def f():\n    return undefined_name\nf()", FAST)
    assert out.result == ERROR
    assert out.reason.startswith("NameError")


def test_syntax_error() -> None:
    assert run_program("def f(:\n    pass", FAST).reason.startswith("SyntaxError")


def test_infinite_loop_times_out() -> None:
    started = time.monotonic()
    out = run_program("while True:\n    pass", Limits(timeout_s=1.5))
    assert out.result == TIMEOUT
    assert time.monotonic() - started < 6


def test_sleeping_child_processes_are_killed_with_the_group() -> None:
    program = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "time.sleep(600)\n"
    )
    before = _alive_children()
    out = run_program(program, Limits(timeout_s=1.5))
    assert out.result == TIMEOUT
    time.sleep(0.2)
    assert _alive_children() - before == set()


def test_fork_bomb_is_contained() -> None:
    program = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    started = time.monotonic()
    out = run_program(program, Limits(timeout_s=2.0, processes=32))
    assert out.result in (TIMEOUT, ERROR)
    assert time.monotonic() - started < 15
    # the machine still forks, and the next sample runs normally
    after = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)"
    assert run_program(after, FAST).result == PASSED


def test_memory_hog_is_stopped() -> None:
    out = run_program("x = bytearray(64 * 1024**3)", Limits(timeout_s=5, memory_bytes=1 << 30))
    assert out.result == ERROR
    assert "MemoryError" in out.reason


def test_output_flood_is_capped() -> None:
    started = time.monotonic()
    out = run_program("while True:\n    print('spam' * 100)", Limits(output_bytes=10_000))
    assert out.result == ERROR
    assert "output over 10000 bytes" in out.reason
    assert len(out.output) <= 10_000
    assert time.monotonic() - started < 5


def test_big_file_hits_the_file_size_limit() -> None:
    program = "with open('big', 'wb') as f:\n    f.write(b'x' * (64 * 1024 * 1024))"
    out = run_program(program, Limits(file_bytes=1 << 20))
    assert out.result == ERROR
    assert "SIGXFSZ" in out.reason or "File too large" in out.reason


def test_deleting_files_stays_in_the_temp_dir(tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    program = (
        "import os, shutil\n"
        "here = os.getcwd()\n"
        "shutil.rmtree(here)\n"
        f"try:\n    os.remove({str(outside)!r})\nexcept OSError:\n    pass\n"
    )
    out = run_program(program, FAST)
    assert out.result == PASSED  # removing its own directory is allowed; the harness copes
    if os.geteuid() == 0:  # the sandbox uid cannot delete files it does not own
        assert outside.read_text() == "keep me"


def test_each_sample_gets_a_fresh_directory() -> None:
    first = run_program("import os\nopen('mark', 'w').write('1')\nprint(os.getcwd())", FAST)
    second = run_program("import os\nassert not os.path.exists('mark')\nprint(os.getcwd())", FAST)
    assert first.result == second.result == PASSED
    assert first.output != second.output
    assert not Path(first.output.strip()).exists()


def test_stdin_is_closed() -> None:
    out = run_program("import sys\nassert sys.stdin.read() == ''", FAST)
    assert out.result == PASSED


@pytest.mark.parametrize("code", ["0", "None"])
def test_sys_exit_zero_is_not_a_pass(code: str) -> None:
    out = run_program(f"import sys\nsys.exit({code})\nassert False", FAST)
    assert out.result == ERROR
    assert "before the tests finished" in out.reason


def test_sys_exit_nonzero_is_an_error() -> None:
    out = run_program("import sys\nsys.exit(3)", FAST)
    assert (out.result, out.returncode) == (ERROR, 3)


def test_os_exit_is_not_a_pass() -> None:
    out = run_program("import os\nos._exit(0)", FAST)
    assert out.result == ERROR
    assert "before the tests finished" in out.reason


def test_segfault_is_recorded() -> None:
    out = run_program("import ctypes\nctypes.string_at(0)", FAST)
    assert out.result == ERROR
    assert out.reason == "killed by SIGSEGV"


def test_cpu_limit_reads_as_timeout() -> None:
    assert classify(-24, "", False, False, False, FAST)[0] == TIMEOUT


def test_not_a_security_boundary_is_documented() -> None:
    import eval.sandbox.execution as ex

    assert "NOT A SECURITY BOUNDARY" in (ex.__doc__ or "")


def test_runs_as_a_throwaway_uid_when_root() -> None:
    out = run_program("import os\nprint(os.getuid())", FAST)
    uid = int(out.output.strip())
    if os.geteuid() == 0:
        assert uid != 0
    else:
        assert uid == os.geteuid()
