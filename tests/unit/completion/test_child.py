"""Code run in a child process: its output, or how it died, in words."""

from __future__ import annotations

import subprocess

import pytest

from completion.child import ChildDied, run_python


def test_the_child_s_output_or_its_end_in_words() -> None:
    assert run_python("import sys; print(sys.argv[1])", "hello", timeout=60) == b"hello\n"
    with pytest.raises(ChildDied, match=r"^exit 1: ValueError: boom$"):  # the last line
        run_python("raise ValueError('boom')", timeout=60)
    with pytest.raises(ChildDied, match=r"^exit 3$"):
        run_python("import sys; sys.exit(3)", timeout=60)
    with pytest.raises(ChildDied, match=r"^killed by SIGILL$"):
        run_python("import os, signal; os.kill(os.getpid(), signal.SIGILL)", timeout=60)
    with pytest.raises(subprocess.TimeoutExpired):
        run_python("import time; time.sleep(30)", timeout=0.5)
