"""`offpilot serve --backend URL` over stdio with the real LSP client.

Against the real llama.cpp server serving the real 0.5B GGUF: a completion, and the backend
killed and brought back. Against a scripted loopback server (tests/scripted_backend.py):
broken answers, and cancellation reaching the server (it sees the socket close).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llama_helpers import LlamaServer
from lsp_helpers import STEADY, ask, expected, open_doc, start_server
from lsprotocol import types
from pytest_lsp import LanguageClient
from scripted_backend import ScriptedBackend

from completion.models.store import InstalledModel
from completion.positions import offset_at
from lsp_server.trace import TRACE
from offpilot.lsp_client import completion_params

pytestmark = pytest.mark.backend

URI = "file:///tmp/offpilot-backend/add.py"
SOURCE = "def add(a, b):\n    return \n"
AT = (1, len("    return "))
MUL_URI = "file:///tmp/offpilot-backend/mul.py"
MUL = "def mul(a, b):\n    return \n"


def traces(client: LanguageClient) -> list[dict[str, Any]]:
    """The trace records the server sends (`completionTrace: true`), collected from now on."""
    records: list[dict[str, Any]] = []

    @client.feature(TRACE)
    def on_trace(params: Any) -> None:
        records.append(
            {"stop": getattr(params, "stop", None), "text": getattr(params, "text", None)}
        )

    return records


@pytest.fixture
def scripted() -> Iterator[ScriptedBackend]:
    server = ScriptedBackend()
    yield server
    server.close()


async def test_a_completion_from_llama_cpp(llama: LlamaServer, real_model: InstalledModel) -> None:
    """The obvious line comes back through llama.cpp, as the local engine writes it."""
    from completion.engines.ct2 import load_engine

    client = await start_server("--backend", llama.url, init_options=STEADY)
    try:
        open_doc(client, URI, SOURCE)
        answer = await ask(client, URI, *AT)
    finally:
        await client.shutdown_session()
    assert answer == ["a + b"]
    local = load_engine(real_model)  # the same weights (int8 from the same GGUF), greedy
    assert answer == expected(local, SOURCE, offset_at(SOURCE, *AT))


async def test_the_backend_killed_and_brought_back(
    own_llama: LlamaServer, real_model: InstalledModel
) -> None:
    """Killed mid-request: an empty answer, the server lives on, and answers once it is back."""
    own_llama.start()
    client = await start_server(
        "--backend", own_llama.url, init_options={**STEADY, "completionTrace": True}
    )
    records = traces(client)
    try:
        open_doc(client, URI, SOURCE)
        assert await ask(client, URI, *AT) == ["a + b"]
        # another file's request, and the backend dies while it runs
        open_doc(client, MUL_URI, MUL)
        pending = asyncio.ensure_future(ask(client, MUL_URI, *AT))
        await asyncio.sleep(0.05)
        own_llama.kill()
        started = time.monotonic()
        assert await asyncio.wait_for(pending, 10) == []
        assert await ask(client, MUL_URI, *AT) == []  # down: refused, at once
        assert time.monotonic() - started < 5
        assert records[-1]["stop"] == "backend_error"
        own_llama.start()
        # the failures were not cached: the same cursor is asked of the server again
        assert await ask(client, MUL_URI, *AT) == ["a * b"]
    finally:
        await client.shutdown_session()


@pytest.mark.parametrize("mode", ["garbage", "http500", "cut", "shape"])
async def test_a_broken_backend_answers_empty(
    tiny_model: InstalledModel, scripted: ScriptedBackend, mode: str
) -> None:
    scripted.mode = mode
    client = await start_server(
        "--model", str(tiny_model.path), "--backend", scripted.url,
        init_options={**STEADY, "completionTrace": True},
    )  # fmt: skip
    records = traces(client)
    try:
        open_doc(client, URI, SOURCE)
        started = time.monotonic()
        assert await ask(client, URI, *AT) == []
        assert time.monotonic() - started < 5
        assert records[-1]["stop"] == "backend_error"
        scripted.mode = "sse"  # the server lives on and answers once the backend does
        assert await ask(client, URI, *AT) == ["a + b"]
    finally:
        await client.shutdown_session()


async def test_a_cancelled_request_closes_the_connection(
    tiny_model: InstalledModel, scripted: ScriptedBackend
) -> None:
    """$/cancelRequest while the backend has not sent a byte: the socket closes at once."""
    scripted.mode = "silent"
    client = await start_server("--model", str(tiny_model.path), "--backend", scripted.url,
                                init_options=STEADY)  # fmt: skip
    try:
        open_doc(client, URI, SOURCE)
        params = completion_params(URI, *AT, types.InlineCompletionTriggerKind.Automatic)
        future = client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=4242
        )
        for _ in range(100):  # until the request reached the backend
            if scripted.requests:
                break
            await asyncio.sleep(0.05)
        assert scripted.requests, "the request never reached the backend"
        cancelled_at = time.monotonic()
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=4242))
        await asyncio.to_thread(scripted.closed_early.wait, 3)
        assert scripted.closed_early.is_set(), "the backend's connection stayed open"
        assert scripted.closed_at is not None
        assert scripted.closed_at - cancelled_at < 1.0
        # the cancelled request is answered (RequestCancelled, or an empty result); wait for
        # that answer rather than cancelling the client's future, which pygls would then try
        # to complete anyway (InvalidStateError in its reader)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(future), 5)
        assert future.done(), "the cancelled request was never answered"
        assert await ask(client, URI, 0, 0) == []  # the server answers on (silence: budget)
    finally:
        await client.shutdown_session()


async def test_the_stop_rule_closes_the_connection(
    tiny_model: InstalledModel, scripted: ScriptedBackend
) -> None:
    """An endless stream: the line's end stops it, and the server sees the socket go."""
    scripted.mode, scripted.pieces, scripted.delay_s = "endless", ("a\n",), 0.02
    client = await start_server("--model", str(tiny_model.path), "--backend", scripted.url,
                                init_options={**STEADY, "prefetch": False})  # fmt: skip
    try:
        open_doc(client, URI, SOURCE)
        assert await ask(client, URI, *AT) == ["a"]
        await asyncio.to_thread(scripted.closed_early.wait, 3)
        assert scripted.closed_early.is_set(), "the backend went on streaming"
    finally:
        await client.shutdown_session()


async def test_a_backend_set_at_run_time_reloads(
    tiny_model: InstalledModel, scripted: ScriptedBackend
) -> None:
    """`backend` in didChangeConfiguration switches engines, and "" switches back."""
    from completion.engines.ct2 import load_engine

    scripted.pieces = ("x_from_backend",)
    client = await start_server(
        "--model", str(tiny_model.path), init_options={**STEADY, "prefetch": False}
    )
    try:
        open_doc(client, URI, SOURCE)
        local = expected(load_engine(tiny_model), SOURCE, offset_at(SOURCE, *AT))
        assert await ask(client, URI, *AT) == local
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"offpilot": {"backend": scripted.url}})
        )
        assert await ask(client, URI, *AT) == ["x_from_backend"]
        assert len(scripted.requests) == 1
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"offpilot": {"backend": ""}})
        )
        assert await ask(client, URI, *AT) == local
        assert len(scripted.requests) == 1
    finally:
        await client.shutdown_session()


def test_model_gguf_prints_the_verified_path(llama: LlamaServer) -> None:
    """Present (the llama fixture found it), `offpilot model gguf` verifies it, fetches nothing."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "model", "gguf"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(llama.gguf)
    assert "verified" in proc.stderr
    assert "fetched" not in proc.stderr
