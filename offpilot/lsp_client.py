"""A minimal LSP client over the real server's stdio, shared by the demo and the tests' tools."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient


def server_command(*extra: str) -> list[str]:
    """How to start `offpilot serve` with this interpreter."""
    return [sys.executable, "-m", "offpilot.cli", "serve", *extra]


async def start_client(
    *server_args: str,
    name: str = "offpilot-client",
    init_options: Any = None,
    on_notification: Mapping[str, Callable[[Any], None]] | None = None,
) -> LanguageClient:
    """Spawn the server over stdio and run the initialize handshake.

    `on_notification` maps a server notification's method to its handler, registered
    before the server starts (so none is missed).
    """
    client = LanguageClient(name, "0.1.0")

    @client.feature("offpilot/status")
    def _status(_params: object) -> None:
        """Server state changes; the demo has no status bar to show them in."""

    for method, handler in (on_notification or {}).items():
        client.feature(method)(handler)

    cmd = server_command(*server_args)
    await client.start_io(cmd[0], *cmd[1:])
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=Path.cwd().as_uri(),
            initialization_options=init_options,
        )
    )
    client.initialized(types.InitializedParams())
    return client


def open_document(client: LanguageClient, path: Path, text: str, language: str = "python") -> str:
    """Send didOpen for `text`; returns the document's URI."""
    uri = path.resolve().as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )
    return uri


def completion_params(
    uri: str,
    line: int,
    character: int,
    trigger: types.InlineCompletionTriggerKind = types.InlineCompletionTriggerKind.Invoked,
) -> types.InlineCompletionParams:
    """The params of an inline completion request at (line, UTF-16 character)."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=trigger),
    )


def item_texts(result: Any) -> list[str]:
    """The insert texts of an inline completion answer (a list or an items list)."""
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    return [i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value for i in items]


async def inline_completion(client: LanguageClient, uri: str, line: int, character: int) -> str:
    """Ask for an inline completion; the first item's text, or '' when there is none."""
    result = await client.text_document_inline_completion_async(
        completion_params(uri, line, character)
    )
    return next(iter(item_texts(result)), "")


async def stop_client(client: LanguageClient) -> None:
    """Shut the server down cleanly."""
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
