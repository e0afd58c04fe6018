"""The `offpilot/completionTrace` records through the real server over stdio (tiny model)."""

from __future__ import annotations

import asyncio
from typing import Any

from lsp_helpers import STEADY, open_doc, start_server
from lsprotocol import types
from pytest_lsp import LanguageClient

from completion.models.store import InstalledModel
from lsp_server.protocol import plain
from lsp_server.trace import TRACE, TraceRecord
from offpilot.lsp_client import completion_params, item_texts

URI = "file:///tmp/offpilot-e2e/trace.py"
SOURCE = "def add(a, b):\n    return \n"


def _collect(client: LanguageClient) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []

    @client.feature(TRACE)
    def on_trace(params: Any) -> None:
        records.append(plain(params))

    return records


async def _ask(client: LanguageClient, msg_id: int, line: int, character: int) -> list[str]:
    """An inline completion request with a chosen JSON-RPC id."""
    params = completion_params(URI, line, character, types.InlineCompletionTriggerKind.Automatic)
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
    )
    return item_texts(await asyncio.wrap_future(future))


async def test_a_record_per_request_when_the_client_asks(tiny_model: InstalledModel) -> None:
    """A model answer's record has its cost; the repeat's record says the cache served it.

    The record is sent before the answer, so it is there once the answer is.
    """
    client = await start_server(
        "--model", str(tiny_model.path), init_options={**STEADY, "completionTrace": True}
    )
    records = _collect(client)
    try:
        open_doc(client, URI, SOURCE)
        shown = await _ask(client, 7001, 1, 11)
        assert len(records) == 1
        first = records[0]
        assert {k: first[k] for k in ("kind", "id", "uri", "line", "character")} == {
            "kind": "request", "id": 7001, "uri": URI, "line": 1, "character": 11,
        }  # fmt: skip
        assert (first["source"], first["mode"]) == ("model", "line")
        assert first["stop"]
        assert first["text"] == "".join(shown)
        stages = first["stagesMs"]
        for stage in ("convert", "context", "prompt", "first_token", "generate", "total"):
            assert stages[stage] >= 0
        assert first["promptTokens"] > 0
        assert first["reusedTokens"] >= 0
        assert first["computedTokens"] == first["promptTokens"] - first["reusedTokens"]
        assert first["firstTokenMs"] == stages["first_token"] > 0
        assert abs(first["decodeMs"] - (stages["generate"] - stages["first_token"])) < 1e-6
        assert first["decodeTokens"] >= 1
        TraceRecord.from_json(first)  # the client's parser takes what the server sends

        again = await _ask(client, 7002, 1, 11)
        assert again == shown
        assert len(records) == 2
        cached = TraceRecord.from_json(records[1])
        assert (cached.id, cached.source) == (7002, "cache")
        assert (cached.first_token_ms, cached.prompt_tokens, cached.decode_tokens) == (None, 0, 0)

        await _ask(client, 7003, 0, 0)  # not a place to complete: still one record
        assert TraceRecord.from_json(records[2]).id == 7003
    finally:
        await client.shutdown_session()


async def test_no_record_unless_asked(tiny_model: InstalledModel) -> None:
    """Off by default, and off when set false: an editor sees nothing new."""
    for init in (STEADY, {**STEADY, "completionTrace": False}):
        client = await start_server("--model", str(tiny_model.path), init_options=init)
        records = _collect(client)
        try:
            open_doc(client, URI, SOURCE)
            await _ask(client, 1, 1, 11)
            await _ask(client, 2, 1, 11)
            await asyncio.sleep(0.2)
            assert records == []
        finally:
            await client.shutdown_session()


async def test_the_trace_can_be_switched_on_later(tiny_model: InstalledModel) -> None:
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    records = _collect(client)
    try:
        open_doc(client, URI, SOURCE)
        await _ask(client, 1, 1, 11)
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={**STEADY, "completionTrace": True})
        )
        await _ask(client, 2, 1, 10)
        assert [r["id"] for r in records] == [2]
    finally:
        await client.shutdown_session()
