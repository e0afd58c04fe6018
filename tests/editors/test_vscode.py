"""VS Code for real: code-server on loopback with the packaged extension, driven by Chromium.

Open a Python file, type, see the ghost text, press Tab, save, read the file on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from editor_helpers import (
    OUT,
    SAMPLE,
    TIME_BUDGET_MS,
    TYPED,
    check_block,
    report,
    stats,
    tool,
    wait_for,
)

pytestmark = pytest.mark.editors

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_ghost_text_in_vscode(e2e_env: dict[str, str], offpilot_bin: str, tmp_path: Path) -> None:
    node = tool(e2e_env, "OFFPILOT_E2E_NODE")
    code_server = tool(e2e_env, "OFFPILOT_E2E_CODE_SERVER")
    vsix = tool(e2e_env, "OFFPILOT_E2E_VSIX")
    tool(e2e_env, "OFFPILOT_E2E_PLAYWRIGHT")
    tool(e2e_env, "OFFPILOT_E2E_CHROMIUM")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sample = workspace / "sample.py"
    sample.write_text(SAMPLE)
    data = tmp_path / "cs"
    user = data / "user" / "User"
    user.mkdir(parents=True)
    log = tmp_path / "server.log"
    command = [offpilot_bin, "serve", "--log-file", str(log)]
    # offpilot.server.command is machine-scoped: code-server's window is a remote one, which
    # reads such a setting from the machine's settings, not the user's (both are written)
    machine = data / "user" / "Machine"
    machine.mkdir(parents=True)
    (machine / "settings.json").write_text(json.dumps({"offpilot.server.command": command}))
    (user / "settings.json").write_text(
        json.dumps(
            {
                "offpilot.server.command": command,
                "offpilot.timeBudgetMs": TIME_BUDGET_MS,
                "telemetry.telemetryLevel": "off",
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": False,
                "security.workspace.trust.enabled": False,
                "extensions.autoUpdate": False,
                "extensions.autoCheckUpdates": False,
                "update.mode": "none",
                "chat.disableAIFeatures": True,
                "editor.inlineSuggest.enabled": True,
                "files.trimTrailingWhitespace": False,
                "workbench.secondarySideBar.defaultVisibility": "hidden",
                "workbench.activityBar.location": "hidden",
                "window.commandCenter": False,
            }
        )
    )
    env = {
        **os.environ,
        "PATH": f"{Path(node).parent}:{os.environ['PATH']}",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "OFFPILOT_STATE_DIR": str(tmp_path / "state"),
        "OFFPILOT_E2E_PLAYWRIGHT": e2e_env["OFFPILOT_E2E_PLAYWRIGHT"],
        "OFFPILOT_E2E_CHROMIUM": e2e_env["OFFPILOT_E2E_CHROMIUM"],
        "OFFPILOT_E2E_TYPED": TYPED,
    }
    dirs = ["--user-data-dir", str(data / "user"), "--extensions-dir", str(data / "exts")]
    started = time.monotonic()
    subprocess.run(
        [code_server, *dirs, "--install-extension", vsix],
        env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    install_s = time.monotonic() - started
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [
            code_server, "--bind-addr", f"127.0.0.1:{port}", "--auth", "none",
            "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
            "--disable-getting-started-override", "--reconnection-grace-time", "5",
            *dirs, str(workspace),
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(
            "code-server to answer", lambda: healthy(url) or server.poll() is not None, 60, 0.2
        )
        assert server.poll() is None, (
            f"code-server exited: {server.stdout.read() if server.stdout else ''}"
        )
        driver = subprocess.run(
            [node, str(HERE / "vscode_driver.mjs"), f"{url}?folder={workspace}",
             str(OUT / "vscode.png"), str(OUT / "vscode-block.png")],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        print(driver.stderr)
        lines = driver.stdout.strip().splitlines()
        assert lines, f"the driver printed nothing:\n{driver.stderr}"
        result = json.loads(lines[-1])
        assert result["ok"], (
            f"{result.get('error')}\nserver log:\n{log.read_text() if log.exists() else '(none)'}"
        )
        # the cursor rested on line 5 before typing: the extension said where (cursorRested)
        assert f"warm: {sample.as_uri()}:4:" in log.read_text(), log.read_text()
        saved = sample.read_text().split("\n")
        ghost = "".join(result["ghost"]).replace("\u00a0", " ")
        assert saved[4].startswith("    " + TYPED) and len(saved[4]) > len("    " + TYPED), saved
        assert saved[4] == "    " + TYPED + ghost, (saved[4], ghost)
        body = check_block(saved)  # the block, accepted whole with Tab
        shown = [" ".join(t.replace("\u00a0", " ").split()) for t in result["block"]]
        assert [" ".join(line.split()) for line in body[-len(shown) :]] == shown, (body, shown)
        events = stats(tmp_path / "state")
        assert events.get("shown", 0) >= 2 and events.get("accepted", 0) >= 2, events
        report(
            "vscode",
            keystroke_to_ghost_ms=result["keystroke_to_ghost_ms"],
            enter_to_first_line_ms=result["first_line_ms"],
            enter_to_block_ms=result["block_ms"],
            block_lines=len(body),
            page_to_server_ready_s=f"{result['ready_ms'] / 1000:.1f}",
            extension_install_s=f"{install_s:.1f}",
            accepted=repr(saved[4][len("    " + TYPED) :]),
        )
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        keep_logs(data / "user" / "logs", log)


def keep_logs(vscode_logs: Path, server_log: Path) -> None:
    """Copy the server's log and VS Code's logs to build/e2e/vscode-logs/ for a post-mortem."""
    dest = OUT / "vscode-logs"
    shutil.rmtree(dest, ignore_errors=True)
    if vscode_logs.exists():
        shutil.copytree(vscode_logs, dest)
    if server_log.exists():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(server_log, dest / "offpilot-server.log")
