"""Editor end-to-end tests: the real editors (code-server + Chromium, Neovim) with the real server.

They run under `make e2e` (which installs and caches the tools first and sets OFFPILOT_E2E=1).
A plain `pytest` run deselects them, and says so at the end of its report.
"""

from __future__ import annotations

import os
import shlex

import pytest
from editor_helpers import OUT, REPORTED, ROOT

ENV_FILE = OUT / "env.sh"

_deselected: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "editors: end-to-end test in a real editor (make e2e)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("OFFPILOT_E2E") == "1":
        return
    # the marker, not the keyword: a keyword also matches a folder named `editors`
    keep = [i for i in items if i.get_closest_marker("editors") is None]
    gone = [i for i in items if i.get_closest_marker("editors") is not None]
    if gone:
        _deselected.extend(i.nodeid for i in gone)
        config.hook.pytest_deselected(items=gone)
        items[:] = keep


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if REPORTED:
        terminalreporter.write_sep("=", "keystroke to visible ghost text, in the real editors")
        for line in REPORTED:
            terminalreporter.write_line(line)
    if _deselected:
        terminalreporter.write_sep(
            "!",
            f"{len(_deselected)} editor end-to-end tests NOT RUN here: they run with `make e2e` "
            "(part of `make test`)",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def e2e_env() -> dict[str, str]:
    """Paths of the tools tests/editors/setup.sh installed (it writes build/e2e/env.sh)."""
    if not ENV_FILE.exists():
        pytest.fail(f"{ENV_FILE} is missing: run tests/editors/setup.sh (or make e2e) first")
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def offpilot_bin() -> str:
    exe = ROOT / ".venv" / "bin" / "offpilot"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run `make setup`")
    return str(exe)
