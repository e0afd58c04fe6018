"""The TCP transport's checks, and status notifications written on the event loop thread."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from completion.engines.fake import FakeEngine
from lsp_server.server import ServerSettings, create_server
from lsp_server.transport import Endpoint, authorise, parse_endpoint, write_token_file


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("127.0.0.1:2087", Endpoint("127.0.0.1", 2087)),
        (":2087", Endpoint("127.0.0.1", 2087)),
        ("localhost:0", Endpoint("127.0.0.1", 0)),
        ("127.0.0.2:1", Endpoint("127.0.0.2", 1)),
        ("[::1]:2087", Endpoint("::1", 2087)),
    ],
)
def test_loopback_endpoints(spec: str, want: Endpoint) -> None:
    assert parse_endpoint(spec) == want


@pytest.mark.parametrize(
    "spec", ["0.0.0.0:2087", "[::]:2087", "10.0.0.1:2087", "example.com:1", "127.0.0.1:x", "::1"]
)
def test_other_endpoints_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="--tcp"):
        parse_endpoint(spec)


def test_authorise_takes_the_token_out() -> None:
    message = {"method": "initialize", "params": {"initializationOptions": {"token": "t" * 20}}}
    assert authorise(message, "t" * 20)
    assert message["params"] == {"initializationOptions": {}}  # not seen as a setting
    for bad in (
        {"method": "initialize", "params": {"initializationOptions": {"token": "u" * 20}}},
        {"method": "initialize", "params": {"initializationOptions": {"token": 5}}},
        {"method": "initialize", "params": {"initializationOptions": None}},
        {"method": "initialize", "params": None},
        {"method": "shutdown", "params": {"initializationOptions": {"token": "t" * 20}}},
        [],
    ):
        assert not authorise(bad, "t" * 20), bad


def test_token_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFPILOT_STATE_DIR", str(tmp_path / "state"))
    path = write_token_file("secret", 2087)
    assert path == tmp_path / "state" / "tcp-2087.token"
    assert path.read_text() == "secret\n"
    assert path.stat().st_mode & 0o777 == 0o600


class ThreadRecorder:
    """A transport writer that notes which thread wrote each message."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, str]] = []

    def write(self, data: bytes) -> None:
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        self.writes.append((threading.get_ident(), body["params"]["state"]))

    def close(self) -> None:
        pass


async def test_status_from_a_worker_thread_is_written_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFPILOT_STATE_DIR", str(tmp_path))
    server = create_server(ServerSettings(), FakeEngine())
    recorder = ThreadRecorder()
    server.protocol.set_writer(recorder)
    server.send_status("loading")
    await asyncio.to_thread(server.send_status, "ready")  # as the model-load thread does
    await asyncio.to_thread(server._on_busy, True)  # as the generation thread does
    await asyncio.sleep(0.05)
    loop_thread = threading.get_ident()
    assert recorder.writes == [
        (loop_thread, "loading"),
        (loop_thread, "ready"),
        (loop_thread, "busy"),
    ]
