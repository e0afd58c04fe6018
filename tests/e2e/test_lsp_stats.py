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
from lsp_server.stats import MAX_EVENT_CHARS, MAX_LANGUAGE_CHARS, MAX_LANGUAGES, OTHER_LANGUAGE

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
    assert len(aside) == 1
    assert aside[0].read_text() == content
    assert "unreadable stats file" in log_file.read_text()


async def test_language_ids_from_clients_cannot_grow_the_file(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    """Huge and countless language ids: the shared file stays small, the counts are all kept.

    Before the caps, 20 events with 256 KiB language ids made a 5.2 MB file, rewritten and
    fsynced whole at every later event of every window.
    """
    env = {"OFFPILOT_STATE_DIR": str(tmp_path)}
    client = await start_server("--model", str(tiny_model.path), env=env)
    try:
        huge = "x" * (256 << 10)
        open_doc(client, URI, "x = 1\n", language=huge + "doc")  # through didOpen
        _show(client)
        client.protocol.notify(
            "offpilot/didAcceptCompletion",
            {"uri": URI, "languageId": " Python ", "acceptedLength": 10**4000},
        )
        for i in range(20):
            client.protocol.notify(
                "offpilot/didShowCompletion", {"uri": URI, "languageId": f"{huge}{i}", "text": "a"}
            )
        for i in range(200):
            client.protocol.notify(
                "offpilot/didRejectCompletion", {"uri": URI, "languageId": f"lang{i}"}
            )
        await asyncio.sleep(0.5)
        summary = await _stats(client)
    finally:
        await client.shutdown_session()
    size = (tmp_path / "stats.json").stat().st_size
    assert size < 16 << 10, f"stats.json is {size} bytes"
    languages = json.loads((tmp_path / "stats.json").read_text())["languages"]
    assert len(languages) <= MAX_LANGUAGES
    assert all(len(lang) <= MAX_LANGUAGE_CHARS for lang in languages)
    total = summary["total"]
    assert (total["shown"], total["rejected"], total["accepted"]) == (21, 200, 1)
    assert languages["python"]["accepted"] == 1  # normalised: trimmed, lower case
    assert languages["python"]["accepted_chars"] <= MAX_EVENT_CHARS
    assert languages[OTHER_LANGUAGE]["rejected"] > 0


async def test_a_numeric_text_in_an_event_is_counted(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    """`"text": 5` in a show, accept or reject event: counted with no length, no error."""
    env = {"OFFPILOT_STATE_DIR": str(tmp_path)}
    log_file = tmp_path / "server.log"
    client = await start_server(
        "--model", str(tiny_model.path), "--log-file", str(log_file), env=env
    )
    try:
        open_doc(client, URI, "x = 1\n")
        for event in ("Show", "Accept", "Reject"):
            client.protocol.notify(f"offpilot/did{event}Completion", {"uri": URI, "text": 5})
        await asyncio.sleep(0.3)
        python = (await _stats(client))["languages"]["python"]
        assert (python["shown"], python["accepted"], python["rejected"]) == (1, 1, 1)
        assert (python["shown_chars"], python["accepted_chars"]) == (0, 0)
        assert [m for m in client.messages if m.type == types.MessageType.Error] == []
    finally:
        await client.shutdown_session()
    assert "Traceback" not in log_file.read_text()
