"""Neovim 0.11 for real: the TUI in tmux, the plugin from editors/nvim, the real server and model.

Open a Python file, type, see the ghost text on the screen, press Tab, save, read the file.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ansi_png import render
from editor_helpers import (
    BLOCK_LINE,
    OUT,
    ROOT,
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

INIT = """
vim.opt.rtp:prepend({plugin!r})
vim.cmd.runtime('plugin/offpilot.lua')
vim.o.termguicolors = true
vim.o.swapfile = false
require('offpilot').setup({{
  cmd = {{ {offpilot!r}, 'serve' }},
  log_file = {log!r},
  server = {{ timeBudgetMs = {budget} }},
}})
vim.keymap.set('i', '<C-l>', '<Plug>(offpilot-accept-word)')
vim.keymap.set('i', '<C-j>', '<Plug>(offpilot-accept-line)')
"""


class Tmux:
    """A tmux session of its own (its own server socket) running one command."""

    def __init__(self, tmp: Path, command: list[str], env: dict[str, str]) -> None:
        self.socket = str(tmp / "tmux.sock")
        args = ["new-session", "-d", "-s", "e2e", "-x", "92", "-y", "16", "-c", str(tmp)]
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self.tmux(*args, *env_args, *command)

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args], check=True, capture_output=True, text=True
        ).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "e2e", *(["-l"] if literal else []), *keys)

    def screen(self, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e", *(["-e"] if colours else []))

    def cursor(self) -> tuple[int, int]:
        x, y = self.tmux("display-message", "-p", "-t", "e2e", "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


def test_ghost_text_in_neovim(e2e_env: dict[str, str], offpilot_bin: str, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed to drive Neovim's TUI: apt-get install -y tmux")
    nvim = tool(e2e_env, "OFFPILOT_E2E_NVIM")
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    init = tmp_path / "init.lua"
    log = tmp_path / "server.log"
    init.write_text(
        INIT.format(
            plugin=str(ROOT / "editors" / "nvim"),
            offpilot=offpilot_bin,
            log=str(log),
            budget=TIME_BUDGET_MS,
        )
    )
    sock = str(tmp_path / "nvim.sock")
    xdg = {
        k: str(tmp_path / k.lower()) for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME")
    }
    env = {
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "OFFPILOT_STATE_DIR": str(tmp_path / "state"),
        **xdg,
    }
    cmd = [nvim, "--clean", "-u", str(init), "--listen", sock, sample.name]

    def lua(expr: str) -> str:
        out = subprocess.run(
            [nvim, "--clean", "--headless", "--server", sock, "--remote-expr",
             f"luaeval({expr!r})"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return out.stdout.strip()

    started = time.monotonic()
    term = Tmux(tmp_path, cmd, env)
    try:
        wait_for("Neovim's socket", lambda: Path(sock).exists(), 30)
        settled = ("offpilot:ready", "offpilot:error")
        status = wait_for(
            "the server's status 'ready'",
            lambda: (s := lua("require('offpilot').statusline()")) in settled and s,
            120, 0.1,
        )  # fmt: skip
        assert status == "offpilot:ready", f"server status {status}; log:\n{log.read_text()}"
        ready_s = time.monotonic() - started

        term.keys("5G")  # the cursor rests on line 5: the plugin says where (cursorRested)
        wait_for(
            "the prompt computed where the cursor rests",
            lambda: f"warm: {sample.as_uri()}:4:" in log.read_text(),
            60,
        )
        term.keys("A")  # the last line, in insert mode
        wait_for("insert mode", lambda: "-- INSERT --" in term.screen(), 10)
        term.keys(TYPED, literal=True)
        typed_at = time.monotonic()
        row = 4  # 0-based screen row of line 5

        def ghost() -> str | None:
            line = term.screen().split("\n")[row].rstrip()
            return line if len(line) > len("    " + TYPED.rstrip()) else None

        shown = str(wait_for("ghost text on the screen", ghost, 60, 0.005))
        visible_ms = (time.monotonic() - typed_at) * 1000
        render(term.screen(colours=True), OUT / "nvim.png", term.cursor())
        plugin_ms = lua("require('offpilot').last_latency_ms")
        assert shown.startswith("    " + TYPED), shown
        ghost_text = shown[len("    " + TYPED) :]

        if len(ghost_text.split()) > 1:  # accept a word first; the rest stays on screen
            term.keys("C-l")
            wait_for(
                "the first word accepted",
                lambda: lua("vim.api.nvim_win_get_cursor(0)[2]") != str(len("    " + TYPED)),
                10,
            )
            assert lua("require('offpilot').visible()") == "true"
            assert term.screen().split("\n")[row].rstrip() == shown
        term.keys("Tab")
        wait_for(
            "the suggestion accepted",
            lambda: len(term.screen().split("\n")[row].rstrip()) >= len(shown)
            and lua("vim.api.nvim_get_current_line()") != "    " + TYPED,
            10,
        )

        # a block: a new line under fizzbuzz's docstring (the last line), Neovim indents it
        term.keys("Escape")
        term.keys("G", "A", "Enter")
        entered_at = time.monotonic()

        def block_rows() -> list[str] | None:
            rows = term.screen().split("\n")[BLOCK_LINE : BLOCK_LINE + 4]
            drawn = [r.rstrip() for r in rows if r.strip()]  # the ghost line and its virt_lines
            return drawn if len(drawn) >= 3 and drawn[1].startswith("        ") else None

        first_line_ms: list[float] = []  # when the first grey line was drawn
        accepted_first: list[bool] = []  # the first line, shown alone, was accepted

        def block_or_accept_first() -> list[str] | None:
            rows = block_rows()
            if not first_line_ms and term.screen().split("\n")[BLOCK_LINE].strip():
                first_line_ms.append((time.monotonic() - entered_at) * 1000)
            if rows is None and lua("require('offpilot').visible()") == "true":
                line = term.screen().split("\n")[BLOCK_LINE].rstrip()
                below = term.screen().split("\n")[BLOCK_LINE + 1].strip()
                if line.strip() and below in ("", "~"):  # `~`: past the buffer's end
                    term.keys("C-j")  # a first line alone: accept it, the rest follows
                    accepted_first.append(True)
            return rows

        try:
            drawn = wait_for("a block of ghost text", block_or_accept_first, 90, 0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nscreen:\n{term.screen()}\nlog:\n{log.read_text()}")
        block_ms = (time.monotonic() - entered_at) * 1000
        render(term.screen(colours=True), OUT / "nvim-block.png", term.cursor())
        for _ in range(3 - bool(accepted_first)):  # accept it line by line, 3 lines in all
            term.keys("C-j")
            time.sleep(0.3)
        term.keys("Escape")
        term.keys(":w", "Enter")
        wait_for(
            "the file saved",
            lambda: len(sample.read_text().split("\n")) >= BLOCK_LINE + 3,
            10,
        )
        saved = sample.read_text().split("\n")
        assert saved[4] == "    " + TYPED + ghost_text, saved
        body = check_block(saved)
        assert len(body) >= 3 and [b.strip() for b in body[:3]] == [
            d.strip() for d in list(drawn)[:3]
        ], (body, drawn)
        events = wait_for(
            "the accept event", lambda: (e := stats(tmp_path / "state")).get("accepted") and e, 10
        )
        assert events.get("shown", 0) >= 1, events
        report(
            "neovim",
            keystroke_to_ghost_ms=f"{visible_ms:.0f}",
            request_to_ghost_ms=f"{float(plugin_ms):.0f}",
            server_ready_s=f"{ready_s:.1f}",
            accepted=repr(ghost_text),
            enter_to_first_line_ms=f"{first_line_ms[0]:.0f}" if first_line_ms else "?",
            enter_to_block_ms=f"{block_ms:.0f}",
            block_lines_accepted=len(body),
        )
        term.keys(":qa!", "Enter")
    finally:
        term.close()
