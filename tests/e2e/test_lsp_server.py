"""The real server over stdio, with a real LSP client (pytest-lsp) and the tiny CT2 model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsp_helpers import ask, open_doc, start_server
from lsprotocol import types
from pytest_lsp import LanguageClient

from completion.models.store import InstalledModel

URI = "file:///tmp/offpilot-e2e/sample.py"
SOURCE = "def add(a, b):\n    return \n"


@pytest_asyncio.fixture(params=["visual-studio-code", "neovim"])
async def client(
    request: pytest.FixtureRequest, tiny_model: InstalledModel
) -> AsyncIterator[LanguageClient]:
    c = await start_server("--model", str(tiny_model.path), editor=request.param)
    yield c
    await c.shutdown_session()


async def test_advertises_inline_completion(client: LanguageClient) -> None:
    caps = client.init_result.capabilities  # type: ignore[attr-defined]
    assert caps.inline_completion_provider is not None
    assert caps.text_document_sync is not None


async def test_inline_completion_answers_from_the_model(client: LanguageClient) -> None:
    open_doc(client, URI, SOURCE)
    items = await ask(client, URI, 1, 11)
    # The tiny model has random weights: the text is noise, but it came through the whole
    # pipeline, and a single-line completion never holds a line break.
    assert len(items) <= 1
    assert all("\n" not in i for i in items)
    states = [s["state"] for s in client.statuses]  # type: ignore[attr-defined]
    assert states[:2] == ["loading", "ready"]


async def test_unopened_document_and_position_past_end(client: LanguageClient) -> None:
    assert await ask(client, "file:///nowhere/never-opened.py", 0, 0) == []
    open_doc(client, URI, SOURCE)
    items = await ask(client, URI, 500, 500)  # clamped to the end of the document
    assert all("\n" not in i for i in items)


async def test_many_requests_keep_the_server_alive(client: LanguageClient) -> None:
    open_doc(client, URI, SOURCE)
    results = await asyncio.gather(
        *(ask(client, URI, 1, c) for c in range(12)), return_exceptions=True
    )
    assert all(isinstance(r, list) for r in results)
    assert isinstance(await ask(client, URI, 1, 11), list)


async def test_missing_model_shows_message_and_stays_up(tmp_path: Path) -> None:
    c = await start_server("--model", "not-installed", "--cache-dir", str(tmp_path))
    try:
        open_doc(c, URI, SOURCE)
        assert await ask(c, URI, 1, 11) == []
        for _ in range(50):
            if c.messages:
                break
            await asyncio.sleep(0.1)
        assert c.messages
        assert c.messages[0].type == types.MessageType.Error
        assert "offpilot model install" in c.messages[0].message
        assert c.statuses[-1]["state"] == "error"  # type: ignore[attr-defined]
        assert await ask(c, URI, 0, 3) == []  # still answering
    finally:
        await c.shutdown_session()
