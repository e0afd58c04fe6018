"""Local statistics through the real server over stdio: shared by windows, robust to bad files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import open_doc, start_server
from lsprotocol import types
from pytest_lsp import LanguageClient

from completion.models.store import InstalledModel

URI = "file:///tmp/offpilot-e2e/stats.py"


async def _stats(client: LanguageClient) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="offpilot.stats")
    )


def _show(client: LanguageClient, text: str = "x = 1") -> None:
    client.protocol.notify("offpilot/didShowCompletion", {"uri": URI, "text": text})


async def test_two_windows_count_every_event(tiny_model: InstalledModel, tmp_path: Path) -> None:
    """Two servers on one stats file: 5 events in one and 3 in the other make 8, not 3."""
    env = {"OFFPILOT_STATE_DIR": str(tmp_path)}
    one = await start_server("--model", str(tiny_model.path), env=env)
    two = await start_server("--model", str(tiny_model.path), env=env)
    try:
        for client in (one, two):
            open_doc(client, URI, "x = 1\n")
        for i in range(5):
            _show(one)
            if i < 3:
                _show(two)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        for client in (one, two):
            assert (await _stats(client))["languages"]["python"]["shown"] == 8
    finally:
        await one.shutdown_session()
        await two.shutdown_session()
    saved = json.loads((tmp_path / "stats.json").read_text())
    assert saved["languages"]["python"]["shown"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json", "stats.json.lock"]


@pytest.mark.parametrize(
    "content",
    [
        '{"languages": null}',
        '{"languages": {"python": {"shown": "5", "accepted": 1}}}',
        "{torn",
    ],
)
async def test_bad_stats_file_is_set_aside(
    tiny_model: InstalledModel, tmp_path: Path, content: str
) -> None:
    """The server starts, events count from zero without an error, the bad file is kept aside."""
    (tmp_path / "stats.json").write_text(content)
    log_file = tmp_path / "server.log"
    env = {"OFFPILOT_STATE_DIR": str(tmp_path)}
    client = await start_server(
        "--model", str(tiny_model.path), "--log-file", str(log_file), env=env
    )
    try:
        open_doc(client, URI, "x = 1\n")
        _show(client, "abc")
        client.protocol.notify("offpilot/didAcceptCompletion", {"uri": URI, "acceptedLength": 2})
        await asyncio.sleep(0.3)
        python = (await _stats(client))["languages"]["python"]
        assert (python["shown"], python["accepted"], python["accepted_chars"]) == (1, 1, 2)
        errors = [m for m in client.messages if m.type == types.MessageType.Error]
        assert errors == []
    finally:
        await client.shutdown_session()
    aside = list(tmp_path.glob("stats.json.bad-*"))
    assert len(aside) == 1 and aside[0].read_text() == content
    assert "unreadable stats file" in log_file.read_text()
