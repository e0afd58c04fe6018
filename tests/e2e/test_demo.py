"""`offpilot demo`, the README's first command, run to its end with the real default model."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time

import pytest

from completion.models.store import InstalledModel
from offpilot.demo import _demo

pytestmark = pytest.mark.real_model

SUGGESTION = re.compile(r"^line +\d+ +'.*' -> (?P<text>'.*'|\".*\")$")


def test_the_demo_ends_and_its_first_answer_is_a_suggestion(real_model: InstalledModel) -> None:
    """It exits 0 soon after its last line, and the first request (asked while the model
    loads) gets a real suggestion, not an answer cut by a time budget the load used up.

    It used to print all six lines and never exit: a prefetch's status notification was
    written after `exit`, its failure reported by more writes until RecursionError, and the
    18 MB of tracebacks filled a stderr pipe nobody read.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "offpilot.cli", "demo", "--model", str(real_model.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    last_line_at = [time.monotonic()]

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            last_line_at[0] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("offpilot demo did not exit within 600 s:\n" + "\n".join(lines))
    exited_at = time.monotonic()
    reader.join(timeout=10)
    assert proc.stderr is not None
    assert code == 0, proc.stderr.read()[-4000:]
    answers = [m["text"] for line in lines if (m := SUGGESTION.match(line))]
    assert len(answers) == 6, lines
    assert answers[0] not in ("''", '""'), lines  # the first request: a real suggestion
    assert exited_at - last_line_at[0] < 60, "the demo lingered after its last line"


def test_a_server_that_dies_ends_the_demo_with_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No traceback and no hang: one line saying the server stopped, and exit 1 (a server
    that dies at start here; one killed under a request, SIGILL from a llama.cpp built for
    another CPU, took this path on 2026-12-07)."""
    assert asyncio.run(_demo(["--no-such-option"])) == 1
    assert "offpilot demo: the server stopped" in capsys.readouterr().err
