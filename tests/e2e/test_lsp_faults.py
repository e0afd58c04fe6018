"""Hangs and crashes of the real server over stdio (tiny real CT2 model): messages out of
order, a model that fails to load, huge frames and documents, bursts, reloads, line ends.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import STEADY, ask, change, expected, frame, open_doc, start_server
from lsprotocol import types

from completion.engines.ct2 import CT2Engine
from completion.models.store import MANIFEST_NAME, InstalledModel
from completion.positions import offset_at

URI = "file:///tmp/offpilot-e2e/faults.py"
SOURCE = "def add(a, b):\n    return \n"


async def test_an_edit_after_a_unicode_line_separator(
    tiny_model: InstalledModel, engine: CT2Engine
) -> None:
    """U+2028 (and form feed, U+0085...) do not end lines in LSP: the edit lands on line 1."""
    text = "total = 1\u2028count = 2\x0cname = 3\nresult = \n"
    edited = text.replace("result = ", "result = total")
    wrong = "total = 1\u2028count = 2total\x0cname = 3\nresult = \n"  # pygls' splitlines
    position = (1, len("result = total"))
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    try:
        open_doc(client, URI, text)
        change(client, URI, 2, 1, len("result = "), "total")
        answer = await ask(client, URI, *position)
        assert answer == expected(engine, edited, offset_at(edited, *position))
        assert answer != expected(engine, wrong, offset_at(wrong, *position))
    finally:
        await client.shutdown_session()


async def test_edits_to_a_huge_document_do_not_hold_up_another(
    tiny_model: InstalledModel,
) -> None:
    """20 keystrokes near the end of a 50 MB file, then a request in a 2-line file.

    pygls re-split and rebuilt the whole text for each keystroke: the request waited 3.3 s
    (about 10 s on a busy 2-core box). Now an edit costs its piece of the text.
    """
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    big_uri = "file:///tmp/offpilot-e2e/huge.py"
    try:
        lines = 2_300_000
        open_doc(client, big_uri, "value = compute(1, 2)\n" * lines)  # 50.6 MB
        open_doc(client, URI, SOURCE)
        await ask(client, URI, 1, 11)  # both are open, the model is loaded
        line = lines - 1000
        for i in range(20):
            change(client, big_uri, i + 2, line, 5 + i, "x")
        started = time.monotonic()
        await ask(client, URI, 1, 11)
        waited = time.monotonic() - started
        assert waited < 1.5, f"the 2-line file waited {waited:.2f} s behind the edits"
    finally:
        await client.shutdown_session()


class RawServer:
    """`offpilot serve` fed raw bytes: for what a well-behaved client never sends."""

    def __init__(self, *args: str, stderr: Any = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "offpilot.cli", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.states: list[str] = []  # offpilot/status states, in order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                self.inbox.put(None)
                return
            self.inbox.put(json.loads(stream.read(length)))

    def send(self, message: dict[str, Any] | bytes) -> None:
        """One framed JSON-RPC message, or raw bytes as they are."""
        if isinstance(message, dict):
            message = frame({"jsonrpc": "2.0", **message})
        assert self.proc.stdin is not None
        self.proc.stdin.write(message)
        self.proc.stdin.flush()

    def reply(self, msg_id: int, timeout: float) -> dict[str, Any]:
        """The reply to request `msg_id`; fails after `timeout` seconds without it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no reply to request {msg_id} within {timeout} s")
            assert msg is not None, "the server closed its output"
            if msg.get("method") == "offpilot/status":
                self.states.append(msg["params"]["state"])
            if msg.get("id") == msg_id and "method" not in msg:
                return msg

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _initialize(msg_id: int) -> dict[str, Any]:
    params = {"capabilities": {}, "initializationOptions": STEADY}
    return {"id": msg_id, "method": "initialize", "params": params}


INITIALIZED: dict[str, Any] = {"method": "initialized", "params": {}}
OPEN: dict[str, Any] = {
    "method": "textDocument/didOpen",
    "params": {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": SOURCE}},
}


def _completion(msg_id: int, line: int = 1, character: int = 11) -> dict[str, Any]:
    return {
        "id": msg_id,
        "method": "textDocument/inlineCompletion",
        "params": {
            "textDocument": {"uri": URI},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        },
    }


def _shut_down(raw: RawServer, msg_id: int) -> None:
    """`shutdown` is answered promptly and `exit` ends the process cleanly."""
    started = time.monotonic()
    raw.send({"id": msg_id, "method": "shutdown"})
    assert raw.reply(msg_id, timeout=30)["result"] is None
    assert time.monotonic() - started < 10
    raw.send({"method": "exit"})
    assert raw.proc.wait(timeout=20) == 0


def test_a_huge_content_length_is_dropped_and_serving_goes_on(tiny_model: InstalledModel) -> None:
    raw = RawServer("--model", str(tiny_model.path))
    try:
        raw.send(b"Content-Length: 99999999999999\r\n\r\n{}")  # the header claims 90 TB
        raw.send(_initialize(1))
        assert "capabilities" in raw.reply(1, timeout=30)["result"]
        raw.send(INITIALIZED)
        raw.send(OPEN)
        raw.send(b"Content-Length: 99999999999999999999\r\n\r\n" + b"x" * 100_000)
        raw.send(b"X-Header: " + b"y" * 1_000_000 + b"\r\n")  # one overlong header line
        raw.send(_completion(2))
        assert "items" in raw.reply(2, timeout=30)["result"]
        _shut_down(raw, 3)
    finally:
        raw.close()


@pytest.mark.parametrize("then", ["complete", "initialized, complete", "shutdown"])
def test_initialized_before_initialize(tiny_model: InstalledModel, then: str) -> None:
    raw = RawServer("--model", str(tiny_model.path))
    try:
        raw.send(INITIALIZED)  # out of order: ignored
        raw.send(_initialize(1))
        assert "capabilities" in raw.reply(1, timeout=30)["result"]
        if then != "shutdown":
            if then.startswith("initialized"):
                raw.send(INITIALIZED)
            raw.send(OPEN)
            raw.send(_completion(2))
            assert "items" in raw.reply(2, timeout=30)["result"]
            assert "ready" in raw.states
        _shut_down(raw, 3)
    finally:
        raw.close()


def _drop_a_size(model_dir: Path) -> None:
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    del manifest["files"]["vocabulary.json"]["size"]
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))


def _cut_the_vocabulary(model_dir: Path) -> None:
    """Ten tokens left: the model loads, and the warm-up meets an id past the vocabulary."""
    vocabulary = model_dir / "vocabulary.json"
    vocabulary.write_text(json.dumps(json.loads(vocabulary.read_text())[:10]))
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    manifest["files"]["vocabulary.json"]["size"] = vocabulary.stat().st_size
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize("corrupt", [_drop_a_size, _cut_the_vocabulary])
async def test_a_model_that_fails_to_load_answers_empty_with_an_error(
    tiny_model: InstalledModel, tmp_path: Path, corrupt: Any
) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model.path, broken)
    corrupt(broken)
    client = await start_server(
        "--model", str(tiny_model.path), init_options={**STEADY, "model": str(broken)}
    )
    try:
        open_doc(client, URI, SOURCE)
        assert await asyncio.wait_for(ask(client, URI, 1, 11), 30) == []
        for _ in range(100):
            if client.statuses and client.messages:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.1)
        assert client.statuses[-1]["state"] == "error"  # type: ignore[attr-defined]
        assert client.messages
        assert client.messages[-1].type == types.MessageType.Error
        started = time.monotonic()
        assert await asyncio.wait_for(ask(client, URI, 0, 3), 30) == []  # at once
        assert time.monotonic() - started < 5
    finally:
        await client.shutdown_session()


async def test_a_burst_over_many_documents_does_not_delay_the_next(
    tiny_model: InstalledModel,
) -> None:
    """A request per document in 25 documents, then one in a 26th: the newest is answered
    within its time budget (it supersedes the burst; the budget counts from its arrival).

    Long prompts make each of the tiny model's generations take a few hundred ms; the burst
    run one after the other kept the 26th waiting for seconds.
    """
    budget_s = 2.0
    options = {"timeBudgetMs": int(budget_s * 1000), "contextTokens": 2048}
    client = await start_server("--model", str(tiny_model.path), init_options=options)
    try:
        uris = [f"file:///tmp/offpilot-e2e/burst{n}.py" for n in range(26)]
        for n, uri in enumerate(uris):
            body = "".join(f"def f{n}_{k}(a, b):\n    return a * {k} + b\n" for k in range(300))
            open_doc(client, uri, body + "def main():\n    return ")
        end = (600, 11)
        await ask(client, uris[0], *end)  # the model is loaded
        burst = [asyncio.ensure_future(ask(client, uri, *end)) for uri in uris[:25]]
        await asyncio.sleep(0.3)  # the burst is in: generations are running or queued
        started = time.monotonic()
        await ask(client, uris[25], *end)
        waited = time.monotonic() - started
        await asyncio.gather(*burst)
        assert waited < budget_s + 1.5, f"the 26th document waited {waited:.1f} s"
    finally:
        await client.shutdown_session()


def _loads(log: str) -> list[str]:
    """The model loads' start and end lines of a server log, in order."""
    marks = ("loading model", "ready in", "model unavailable", "loading the model failed")
    return [line for line in log.splitlines() if any(m in line for m in marks)]


async def test_model_changes_load_one_at_a_time_and_the_newest_wins(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    log_file = tmp_path / "server.log"
    client = await start_server(
        "--model", str(tiny_model.path), "--log-file", str(log_file), init_options=STEADY
    )
    try:
        for threads in range(1, 7):  # six changes while the first load runs (or just after)
            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"offpilot": {"threads": threads}})
            )
        open_doc(client, URI, SOURCE)
        assert isinstance(await asyncio.wait_for(ask(client, URI, 1, 11), 60), list)
        for _ in range(100):
            if "threads=6) ready" in log_file.read_text():
                break
            await asyncio.sleep(0.1)
        loads = _loads(log_file.read_text())
        starts = [line for line in loads if "loading model" in line]
        # the first load, perhaps one for the first change, then the newest setting
        assert 2 <= len(starts) <= 3, loads
        assert all("loading model" in loads[k] for k in range(0, len(loads), 2)), loads
        assert len(loads) == 2 * len(starts), loads  # each load ends before the next starts
        assert all("ready in" in loads[k + 1] for k in range(0, len(loads), 2)), loads
        assert "threads=6) ready" in loads[-1]
        states = [s["state"] for s in client.statuses]  # type: ignore[attr-defined]
        assert "ready" in states
        assert "error" not in states
    finally:
        await client.shutdown_session()


def _messages_until_exit(raw: RawServer, timeout: float) -> list[dict[str, Any]]:
    """Every message the server writes until it closes its output."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = raw.inbox.get(timeout=left)
        except queue.Empty:
            break
        if msg is None:
            return seen
        seen.append(msg)
    pytest.fail(f"the server did not close its output within {timeout} s")


def test_after_shutdown_only_answers_are_sent(tiny_model: InstalledModel, tmp_path: Path) -> None:
    """A generation (and the prefetch its answer starts) still running at `shutdown` sends
    nothing after the reply; a request after `shutdown` gets InvalidRequest; `exit` ends it.

    The generation's last status notification used to be queued after `shutdown`, written
    after pygls closed stdout, and its failure reported by another write, until recursion
    broke it (18 MB of tracebacks on stderr). Requests after `shutdown` got no reply at all.
    """
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        raw = RawServer("--model", str(tiny_model.path), stderr=stderr)
    try:
        params = {"capabilities": {}, "initializationOptions": {"debounceMs": 0}}
        raw.send({"id": 1, "method": "initialize", "params": params})
        raw.reply(1, timeout=30)
        raw.send(INITIALIZED)
        raw.send(OPEN)
        raw.send(_completion(2))
        raw.reply(2, timeout=30)  # the model is loaded
        raw.send(_completion(3, 0, 14))  # a generation in flight ...
        raw.send({"id": 4, "method": "shutdown"})  # ... when `shutdown` comes
        assert raw.reply(4, timeout=30)["result"] is None
        raw.send(_completion(5))
        refused = raw.reply(5, timeout=10)
        assert refused["error"]["code"] == -32600  # InvalidRequest, as LSP asks
        time.sleep(1.0)  # a prefetch or the cancelled generation would end by now
        raw.send({"method": "exit"})
        after = _messages_until_exit(raw, timeout=20)
        assert raw.proc.wait(timeout=20) == 0
        assert [m for m in after if "method" in m] == []
        errors = log.read_text(errors="replace")
        assert "Traceback" not in errors
        assert len(errors) < 65536
    finally:
        raw.close()


def test_exit_without_shutdown_exits_1(tiny_model: InstalledModel) -> None:
    """LSP: `exit` without a `shutdown` before it ends the server with code 1."""
    raw = RawServer("--model", str(tiny_model.path))
    try:
        raw.send(_initialize(1))
        raw.reply(1, timeout=30)
        raw.send({"method": "exit"})
        assert raw.proc.wait(timeout=20) == 1
    finally:
        raw.close()


async def test_a_failing_backend_shows_in_the_status(tiny_model: InstalledModel) -> None:
    """A backend that is down gives empty answers, and the status says why (not just `ready`)."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = await start_server(
        "--model",
        str(tiny_model.path),
        "--backend",
        f"http://127.0.0.1:{port}",
        init_options=STEADY,
    )
    try:
        open_doc(client, URI, SOURCE)
        assert await ask(client, URI, 1, 11) == []
        for _ in range(100):
            if any(s["message"].startswith("backend failing") for s in client.statuses):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        failing = [s for s in client.statuses if s["message"].startswith("backend failing")]  # type: ignore[attr-defined]
        assert failing
        assert failing[-1]["state"] == "ready"
    finally:
        await client.shutdown_session()
