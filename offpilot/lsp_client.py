"""A minimal LSP client over the real server's stdio, shared by the demo and the tests' tools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

log = logging.getLogger("offpilot.client")

STDERR_TAIL = 64  # chunks of the server's stderr kept for an error report
EXIT_WAIT_S = 30.0  # how long `stop_client` waits for each step of the server's exit


class ServerClient(LanguageClient):
    """pygls' client, reading the server's stderr so the server never blocks writing it.

    pygls starts the server with stderr as a pipe that nobody reads: a server that logs
    64 KiB stops at its next log line. The last chunks are kept for an error report.
    """

    def __init__(self, name: str, version: str) -> None:
        super().__init__(name, version)
        self.stderr_tail: deque[bytes] = deque(maxlen=STDERR_TAIL)
        self._drain: asyncio.Task[None] | None = None

    async def start_io(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        """Start the server, then read its stderr until it closes."""
        await super().start_io(cmd, *args, **kwargs)
        stream = self._server.stderr if self._server is not None else None
        if stream is not None:
            self._drain = asyncio.create_task(self._read_stderr(stream))

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr_tail.append(chunk)

    async def stop(self) -> None:
        """Stop as pygls does, then let the stderr reader see the end of the stream."""
        await super().stop()  # type: ignore[no-untyped-call]  # pygls: unannotated
        if self._drain is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain, EXIT_WAIT_S)


def server_command(*extra: str) -> list[str]:
    """How to start `offpilot serve` with this interpreter."""
    return [sys.executable, "-m", "offpilot.cli", "serve", *extra]


async def start_client(
    *server_args: str,
    name: str = "offpilot-client",
    init_options: Any = None,
    on_notification: Mapping[str, Callable[[Any], None]] | None = None,
) -> ServerClient:
    """Spawn the server over stdio and run the initialize handshake.

    `on_notification` maps a server notification's method to its handler, registered
    before the server starts (so none is missed).
    """
    client = ServerClient(name, "0.1.0")

    def _status(_params: object) -> None:
        """Server state changes; the demo has no status bar to show them in."""

    client.feature("offpilot/status")(_status)
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


async def stop_client(client: ServerClient) -> None:
    """Shut the server down cleanly; a server that does not exit in time is killed."""
    server = client._server
    if server is not None and server.returncode is not None:  # it died: nothing to shut down
        await client.stop()
        return
    try:
        await asyncio.wait_for(client.shutdown_async(None), EXIT_WAIT_S)
        client.exit(None)
        if server is not None:
            await asyncio.wait_for(server.wait(), EXIT_WAIT_S)
    except TimeoutError:
        log.warning("the server did not exit within %.0f s: killed", EXIT_WAIT_S)
        if server is not None and server.returncode is None:
            server.kill()
    await client.stop()
