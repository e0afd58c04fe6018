"""Shared by the editor end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "e2e"
# the file both editors open; the tests type TYPED at the end of line 5, then open a line
# under fizzbuzz's docstring (the last line), where the answer is a block
SAMPLE = (
    '"""Small arithmetic helpers."""\n\n\ndef add(a, b):\n    \n\n\ndef fizzbuzz(n):\n'
    '    """Print 1..n: Fizz for multiples of 3, Buzz for 5, FizzBuzz for both."""\n'
)
TYPED = "return "
BLOCK_LINE = 9  # 0-based: the line opened under the docstring


def check_block(saved: list[str]) -> list[str]:
    """The body accepted under fizzbuzz's docstring: several lines, deeper, and valid Python."""
    import ast

    body = [line for line in saved[BLOCK_LINE:] if line.strip()]
    assert len(body) >= 2, saved
    assert all(line.startswith("    ") for line in body), body
    assert body[0][4] != " " and body[1].startswith("        "), body  # a header and its body
    ast.parse("\n".join(saved))
    return body
# generous, so a loaded CI machine still completes `a + b` rather than stopping at `a`
# (and the fizzbuzz block, about 80 tokens, rather than stopping half way)
TIME_BUDGET_MS = 30000


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


def stats(state_dir: Path, language: str = "python") -> dict[str, int]:
    """The server's local statistics for `language` (what the client's notifications recorded)."""
    path = state_dir / "stats.json"
    if not path.exists():
        return {}
    data: dict[str, dict[str, int]] = json.loads(path.read_text()).get("languages", {})
    return data.get(language, {})
