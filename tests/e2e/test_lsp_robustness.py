"""Robustness of the real server over stdio (tiny real CT2 model): bad input, huge and binary
files, positions, rapid edits, configuration, status, statistics and the custom method.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from lsp_helpers import STEADY, STEADY_CONFIG, ask, change, expected, frame, open_doc, start_server
from lsprotocol import types

from completion.engines.ct2 import CT2Engine
from completion.models.store import InstalledModel
from completion.positions import offset_at

URI = "file:///tmp/offpilot-e2e/robust.py"


def _read_message(stream: Any) -> dict[str, Any]:
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(stream.read(length))


def test_malformed_json_rpc_and_unknown_methods(tiny_model: InstalledModel) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "offpilot.cli", "serve", "--model", str(tiny_model.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin
    assert proc.stdout

    def send(obj: Any) -> None:
        proc.stdin.write(frame(obj))  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    try:
        send(b"{this is not json")
        send(b"[1, 2, 3]")
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        send({"jsonrpc": "2.0", "id": 2, "method": "no/such/method", "params": {}})
        send(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "textDocument/inlineCompletion",
                "params": {"bad": 1},
            }
        )
        send(
            {"jsonrpc": "2.0", "id": 4, "method": "offpilot/inlineCompletion", "params": {"bad": 1}}
        )
        send({"jsonrpc": "2.0", "id": 5, "method": "shutdown"})
        replies: dict[int, dict[str, Any]] = {}
        while len(replies) < 5:
            msg = _read_message(proc.stdout)
            if "id" in msg and "method" not in msg:
                replies[msg["id"]] = msg
        assert "capabilities" in replies[1]["result"]
        assert replies[2]["error"]["code"] == -32601  # method not found
        assert "error" in replies[3]  # invalid params, reported, not fatal
        assert replies[4]["result"] == {"items": []}
        assert replies[5]["result"] is None
        send({"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()


async def test_utf16_positions_emoji_cjk_crlf(
    tiny_model: InstalledModel, engine: CT2Engine
) -> None:
    text = 'name = "😀😀"\r\ncity = "東京" + \r\nx = 1\r\n'
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    try:
        open_doc(client, URI, text)
        for line, char in [(0, 12), (0, 11), (1, 14), (1, 9), (0, 8)]:
            offset = offset_at(text, line, char)
            assert await ask(client, URI, line, char) == expected(engine, text, offset)
        assert offset_at(text, 0, 12) == text.index('"\r\n')  # after two surrogate pairs
        assert offset_at(text, 0, 11) == text.index('"\r\n') - 1  # mid-pair: before the emoji
        assert offset_at(text, 1, 14) == text.index(" + ") + 3  # after CJK, past CRLF line
    finally:
        await client.shutdown_session()


async def test_huge_and_binary_files(tiny_model: InstalledModel, engine: CT2Engine) -> None:
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    try:
        huge = "value = compute(1, 2)\n" * 480_000  # 10.5 MB
        open_doc(client, URI, huge)
        lines = huge.count("\n")
        t0 = time.monotonic()
        end_answer = await ask(client, URI, lines, 0)
        assert end_answer == expected(engine, huge, len(huge))
        assert await ask(client, URI, lines // 2, 8) == expected(
            engine, huge, offset_at(huge, lines // 2, 8)
        )
        assert time.monotonic() - t0 < 60
        binary = "\x00\x01\x02garbage\x00" * 1000
        open_doc(client, "file:///tmp/offpilot-e2e/blob.bin", binary)
        assert await ask(client, "file:///tmp/offpilot-e2e/blob.bin", 0, 5) == []
    finally:
        await client.shutdown_session()


async def test_rapid_requests_with_edits(tiny_model: InstalledModel, engine: CT2Engine) -> None:
    client = await start_server(
        "--model", str(tiny_model.path), init_options={"timeBudgetMs": 60_000}
    )
    try:
        text = "def total(values):\n    return \n"
        open_doc(client, URI, text)
        cursor = len("    return ")
        pending = []
        for i in range(200):
            change(client, URI, i + 2, 1, cursor, "7")
            cursor += 1
            pending.append(asyncio.ensure_future(ask(client, URI, 1, cursor)))
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, list) for r in results), [
            r for r in results if not isinstance(r, list)
        ]
        final = "def total(values):\n    return " + "7" * 200 + "\n"
        assert results[-1] == expected(engine, final, final.index("\n", 20))
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="offpilot.stats")
        )
        outcomes = stats["requests"]
        # stale requests were superseded during the debounce or cancelled, not all generated
        assert outcomes.get("superseded", 0) + outcomes.get("cancelled", 0) >= 150, outcomes
        assert outcomes.get("model", 0) < 50, outcomes
    finally:
        await client.shutdown_session()


async def test_config_status_and_progress(tiny_model: InstalledModel, engine: CT2Engine) -> None:
    client = await start_server(
        "--model",
        str(tiny_model.path),
        init_options={"offpilot": {**STEADY, "maxTokens": "many"}},
    )
    try:
        text = "import os\nx = \n"
        open_doc(client, URI, text)
        assert await ask(client, URI, 1, 4) == expected(engine, text, 14)
        assert any("maxTokens" in m.message for m in client.messages)  # warned, kept default
        assert client.progress_reports  # $/progress while the model loaded (VS Code supports it)
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"offpilot": {"enable": False}})
        )
        await asyncio.sleep(0.2)
        assert await ask(client, URI, 1, 4) == []
        assert client.statuses[-1]["state"] == "disabled"  # type: ignore[attr-defined]
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"offpilot": {"enable": True, "maxTokens": 3}}
            )
        )
        await asyncio.sleep(0.2)
        short = await ask(client, URI, 1, 4)
        want = expected(engine, text, 14, replace(STEADY_CONFIG, max_tokens=3))
        assert short == want
        states = {s["state"] for s in client.statuses}  # type: ignore[attr-defined]
        assert {"loading", "ready", "busy", "disabled"} <= states
    finally:
        await client.shutdown_session()


async def test_custom_method_events_and_stats(tiny_model: InstalledModel, tmp_path: Path) -> None:
    env = {"OFFPILOT_STATE_DIR": str(tmp_path)}
    client = await start_server("--model", str(tiny_model.path), env=env, init_options=STEADY)
    try:
        text = "def add(a, b):\n    return \n"
        open_doc(client, URI, text)
        standard = await ask(client, URI, 1, 11)
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": 1, "character": 11},
            "context": {"triggerKind": 1},
        }
        custom = await client.protocol.send_request_async("offpilot/inlineCompletion", params)
        assert [i.insertText for i in custom.items] == standard
        client.protocol.notify("offpilot/didShowCompletion", {"uri": URI, "text": "a + b"})
        client.protocol.notify("offpilot/didAcceptCompletion", {"uri": URI, "acceptedLength": 3})
        client.protocol.notify(
            "offpilot/didShowCompletion", {"uri": URI, "text": "zz", "languageId": "rust"}
        )
        client.protocol.notify("offpilot/didRejectCompletion", {"uri": URI, "languageId": "rust"})
        await asyncio.sleep(0.3)
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="offpilot.stats")
        )
        python, rust = stats["languages"]["python"], stats["languages"]["rust"]
        assert python["shown"] == 1
        assert python["accepted_chars"] == 3
        assert rust["rejected"] == 1
        assert stats["total"]["acceptance_rate"] == 0.5
        # the custom request was answered from the cache the standard one filled
        assert stats["cache"]["misses"] >= 1
        assert stats["cache"]["hits"] >= 1
    finally:
        await client.shutdown_session()
    out = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "stats"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
    )
    assert out.returncode == 0
    assert "python" in out.stdout
    assert "50.0%" in out.stdout


async def _stats(client: Any) -> dict[str, Any]:
    return await client.workspace_execute_command_async(  # type: ignore[no-any-return]
        types.ExecuteCommandParams(command="offpilot.stats")
    )


async def test_cursor_rested_warms_and_bad_ones_are_ignored(
    tiny_model: InstalledModel, engine: CT2Engine
) -> None:
    """`offpilot/cursorRested`: malformed or for a closed document, nothing; else a warm."""
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    try:
        text = "def add(a, b):\n    return \n"
        open_doc(client, URI, text)
        assert await ask(client, URI, 1, 11) == expected(engine, text, offset_at(text, 1, 11))
        client.protocol.notify("offpilot/cursorRested", {"bad": 1})
        client.protocol.notify("offpilot/cursorRested", None)
        unopened = {
            "textDocument": {"uri": "file:///nowhere.py"},
            "position": {"line": 0, "character": 0},
        }
        client.protocol.notify("offpilot/cursorRested", unopened)
        past_end = {"textDocument": {"uri": URI}, "position": {"line": 99, "character": 99}}
        client.protocol.notify("offpilot/cursorRested", past_end)
        client.protocol.notify(
            "offpilot/cursorRested",
            {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 4}},
        )
        for _ in range(200):
            stats = await _stats(client)
            if sum(stats["warms"].values()) >= 2:
                break
            await asyncio.sleep(0.05)
        assert stats["warms"].get("computed", 0) + stats["warms"].get("cancelled", 0) == 2
        # the server still answers, as before
        assert await ask(client, URI, 1, 11) == expected(engine, text, offset_at(text, 1, 11))
    finally:
        await client.shutdown_session()
