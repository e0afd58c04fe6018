"""Shared by the editor end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "e2e"
# the file both editors open; the tests type TYPED at the end of its last line
SAMPLE = '"""Small arithmetic helpers."""\n\n\ndef add(a, b):\n    \n'
TYPED = "return "


REPORTED: list[str] = []  # shown again at the end of the pytest report


def report(editor: str, **numbers: object) -> None:
    """One loud line per measurement, kept in build/e2e/timings.txt too."""
    line = f"[e2e] {editor}: " + " ".join(f"{k}={v}" for k, v in numbers.items())
    print(line)
    REPORTED.append(line)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "timings.txt").open("a") as f:
        f.write(line + "\n")


def wait_for(what: str, check: Callable[[], object], timeout: float, every: float = 0.01) -> object:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def tool(env: dict[str, str], key: str) -> str:
    """A path from env.sh that must exist."""
    value = env.get(key, "")
    if not value or not Path(value).exists():
        pytest.fail(f"{key}={value!r} does not exist: run tests/editors/setup.sh again")
    return value
