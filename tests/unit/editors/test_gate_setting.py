"""Both clients offer the server's `gate` setting, with its points and its default."""

from __future__ import annotations

import json
from pathlib import Path

from completion import gate
from lsp_server.config import ServerConfig

EDITORS = Path(__file__).resolve().parents[3] / "editors"


def test_vscode_offers_every_point_and_sends_the_setting() -> None:
    package = json.loads((EDITORS / "vscode" / "package.json").read_text())
    setting = package["contributes"]["configuration"]["properties"]["offpilot.gate"]
    assert setting["enum"] == [gate.OFF, *gate.POINTS]
    assert len(setting["enumDescriptions"]) == len(setting["enum"])
    assert setting["default"] == ServerConfig().gate
    settings = (EDITORS / "vscode" / "src" / "settings.ts").read_text()
    assert f"gate: c.get<Gate>('gate', '{ServerConfig().gate}')" in settings


def test_neovim_sends_the_default_point() -> None:
    config = (EDITORS / "nvim" / "lua" / "offpilot" / "config.lua").read_text()
    start = config.index("  server = {")
    server = config[start : config.index("\n  },", start)]
    assert f"gate = '{ServerConfig().gate}'" in server  # in the table sent as the settings
    assert "*offpilot-gate*" in (EDITORS / "nvim" / "doc" / "offpilot.txt").read_text()
