"""`offpilot serve --tcp` over a real socket: loopback only, and only a client with the token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lsp_helpers import STEADY, ask, connect_tcp, frame, open_doc
from lsprotocol import types

from completion.models.store import InstalledModel
from lsp_server.transport import FIRST_MESSAGE_TIMEOUT_S, MAX_PENDING

URI = "file:///tmp/offpilot-e2e/tcp.py"
ANNOUNCE = re.compile(r"listening on (\S+):(\d+); the client must send (.*)")


@dataclass
class TcpServer:
    proc: asyncio.subprocess.Process
    host: str
    port: int
    where: str  # how the server said to find the token


async def _serve(model: InstalledModel, tmp_path: Path, env: dict[str, str]) -> TcpServer:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "offpilot.cli", "serve", "--tcp", "127.0.0.1:0"),
        *("--model", str(model.path), "--log-file", str(tmp_path / "server.log")),
        env={**os.environ, "OFFPILOT_STATE_DIR": str(tmp_path / "state"), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    while line := (await asyncio.wait_for(proc.stderr.readline(), 60)).decode():
        if match := ANNOUNCE.search(line):
            return TcpServer(proc, match[1], int(match[2]), match[3])
    raise AssertionError(f"the server did not announce its address ({proc.returncode})")


@pytest.fixture
async def served(tiny_model: InstalledModel, tmp_path: Path) -> AsyncIterator[TcpServer]:
    server = await _serve(tiny_model, tmp_path, {})
    try:
        yield server
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()


async def _answer_to(server: TcpServer, data: bytes) -> bytes:
    """Everything the server sends back on a connection that opens with `data`, until EOF."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def _initialize(options: object = None, msg_id: int = 1) -> dict[str, object]:
    params = {"processId": None, "capabilities": {}, "initializationOptions": options}
    return {"jsonrpc": "2.0", "id": msg_id, "method": "initialize", "params": params}


async def test_tcp_serves_only_the_client_with_the_token(served: TcpServer, tmp_path: Path) -> None:
    match = re.fullmatch(
        r"initializationOptions.token, the content of (\S+) \(mode 0600\)", served.where
    )
    assert match, served.where
    token_file = Path(match[1])
    assert token_file.parent == tmp_path / "state"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32

    refused = [
        frame(_initialize()),
        frame(_initialize({"token": "not-the-token"})),
        frame(_initialize({"token": token[:-1]})),
        frame({"jsonrpc": "2.0", "method": "exit"}),  # would end the server
        frame({"jsonrpc": "2.0", "id": 1, "method": "shutdown"}),
        frame(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "workspace/executeCommand",
                "params": {"command": "offpilot.stats"},
            }
        ),
        frame(b"{not json"),
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"Content-Length: 99999999999999\r\n\r\n",
    ]
    for data in refused:
        assert await _answer_to(served, data) == b"", data
        assert served.proc.returncode is None, data

    client = await connect_tcp(served.host, served.port, init_options={**STEADY, "token": token})
    try:
        assert client.init_result.capabilities.inline_completion_provider  # type: ignore[attr-defined]
        open_doc(client, URI, "def add(a, b):\n    return \n")
        first = await asyncio.wait_for(ask(client, URI, 1, 11), 60)
        # a second client, even with the token, cannot take the connection over
        assert await _answer_to(served, frame(_initialize({"token": token}))) == b""
        assert await asyncio.wait_for(ask(client, URI, 1, 11), 60) == first
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="offpilot.stats")
        )
        assert "languages" in stats
        # the model loads in a thread: its "ready" status came through the loop
        assert "ready" in [s["state"] for s in client.statuses]  # type: ignore[attr-defined]
    finally:
        await client.shutdown_session()
    assert await asyncio.wait_for(served.proc.wait(), 30) == 0
    assert not token_file.exists()
    assert "refused a connection" in (tmp_path / "server.log").read_text()


async def test_tcp_token_from_the_environment(tiny_model: InstalledModel, tmp_path: Path) -> None:
    token = "a-token-the-user-chose-0123456789"
    server = await _serve(tiny_model, tmp_path, {"OFFPILOT_TCP_TOKEN": token})
    try:
        assert "$OFFPILOT_TCP_TOKEN" in server.where
        assert not list((tmp_path / "state").glob("tcp-*.token"))
        assert await _answer_to(server, frame(_initialize({"token": "x" * 40}))) == b""
        client = await connect_tcp(server.host, server.port, init_options={"token": token})
        await client.shutdown_session()
        assert await asyncio.wait_for(server.proc.wait(), 30) == 0
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()


@pytest.mark.parametrize(
    ("spec", "env", "message"),
    [
        ("0.0.0.0:0", {}, "not a loopback address"),
        ("[::]:0", {}, "not a loopback address"),
        ("192.0.2.1:2087", {}, "not a loopback address"),
        ("example.com:2087", {}, "not a loopback address"),
        ("127.0.0.1:http", {}, "the port must be a number"),
        ("127.0.0.1:0", {"OFFPILOT_TCP_TOKEN": "short"}, "at least 16 characters"),
    ],
)
def test_tcp_refuses_a_bad_address_or_token(spec: str, env: dict[str, str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "serve", "--tcp", spec, "--model", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


async def _readframe(reader: asyncio.StreamReader) -> dict[str, object]:
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(await reader.readexactly(length))


async def _reply(reader: asyncio.StreamReader, msg_id: int) -> dict[str, object]:
    while (message := await asyncio.wait_for(_readframe(reader), 60)).get("id") != msg_id:
        pass  # notifications (statuses, progress) on the way
    return message


async def test_tcp_drops_a_huge_frame_and_goes_on_serving(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    """A Content-Length of 99999999999999 from the client: dropped, the next frame answered."""
    token = "t" * 32
    served = await _serve(tiny_model, tmp_path, {"OFFPILOT_TCP_TOKEN": token})
    try:
        reader, writer = await asyncio.open_connection(served.host, served.port)
        writer.write(frame(_initialize({"token": token})))
        assert "result" in await _reply(reader, 1)
        stats = {"command": "offpilot.stats"}
        ask_stats = {"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand"}
        writer.write(b"Content-Length: 99999999999999\r\n\r\n")
        writer.write(b"{" + b"x" * 200_000 + b"\r\n")  # part of the claimed body, one long line
        writer.write(frame({**ask_stats, "params": stats}))
        await writer.drain()
        answer = await _reply(reader, 2)
        assert "languages" in answer["result"]  # type: ignore[operator]
        writer.write(frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
        writer.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        await writer.drain()
        assert await asyncio.wait_for(served.proc.wait(), 30) == 0
        assert "dropped a message of 99999999999999 bytes" in (tmp_path / "server.log").read_text()
    finally:
        if served.proc.returncode is None:
            served.proc.kill()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a reset (ECONNRESET), as from a killed editor."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_tcp_server_ends_when_its_client_resets_the_connection(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    """A client killed with a reply unread: the server still ends, as when a client leaves."""
    token = "r" * 32
    served = await _serve(tiny_model, tmp_path, {"OFFPILOT_TCP_TOKEN": token})
    try:
        reader, writer = await asyncio.open_connection(served.host, served.port)
        writer.write(frame(_initialize({"token": token})))
        assert "result" in await _reply(reader, 1)
        ask_stats = {"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand"}
        writer.write(frame({**ask_stats, "params": {"command": "offpilot.stats"}}))
        await writer.drain()
        _reset(writer)  # the stats reply is never read
        await asyncio.wait_for(served.proc.wait(), 30)
        log_text = (tmp_path / "server.log").read_text()
        assert "Traceback" not in log_text, log_text[-3000:]
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])  # type: ignore[index]


async def test_tcp_bounds_what_unauthenticated_connections_cost(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    """200 connections sending a 1 MiB first body: refused, memory flat, the client served.

    Before the caps, each pending connection buffered its whole first body: 46 -> 261 MB.
    """
    token = "p" * 32
    served = await _serve(tiny_model, tmp_path, {"OFFPILOT_TCP_TOKEN": token})
    try:
        before = _rss_kib(served.proc.pid)
        body = b"{" + b" " * ((1 << 20) - 2) + b"}"
        big = b"Content-Length: %d\r\n\r\n" % len(body) + body

        async def flood() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection(served.host, served.port)
            with contextlib.suppress(OSError):
                writer.write(big[:-1])  # all but the last byte: the body is never complete
                await writer.drain()
            return reader, writer

        flooded = await asyncio.gather(*(flood() for _ in range(200)))
        await asyncio.sleep(2)
        grown_mb = (_rss_kib(served.proc.pid) - before) / 1024
        assert grown_mb < 40, f"the server grew by {grown_mb:.0f} MB"
        for _, w in flooded:
            w.transport.abort()
        # connections that say nothing wait for their first message, MAX_PENDING at most;
        # one more is closed at once, not after FIRST_MESSAGE_TIMEOUT_S
        held = [await asyncio.open_connection(served.host, served.port) for _ in range(MAX_PENDING)]
        await asyncio.sleep(0.5)
        reader, writer = await asyncio.open_connection(served.host, served.port)
        assert await asyncio.wait_for(reader.read(), FIRST_MESSAGE_TIMEOUT_S / 2) == b""
        writer.close()
        for _, w in held:
            w.close()
        assert served.proc.returncode is None
        await asyncio.sleep(0.5)
        client = await connect_tcp(served.host, served.port, init_options={"token": token})
        await client.shutdown_session()
        assert await asyncio.wait_for(served.proc.wait(), 30) == 0
        log_text = (tmp_path / "server.log").read_text()
        assert "too many connections waiting" in log_text
        assert "bad Content-Length for a first message" in log_text
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
