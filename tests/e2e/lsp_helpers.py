"""Start the real `offpilot serve` over stdio (or reach it over TCP) with pytest-lsp's client."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from completion.engines.interface import Engine
from completion.pipeline import CompletionRequest, complete
from lsp_server.completer import completion_options
from lsp_server.config import ServerConfig
from offpilot.lsp_client import completion_params, item_texts

# No time budget: answers must not depend on how busy the machine is. One-line answers: a
# block's first line is answered before its rest is written, so a block's answer would not
# be the pipeline's whole answer that `expected` computes.
# Deterministic settings for tests of the plumbing. The gate is off: the tiny random model's
# answers are unsure, and the gate (tested in test_lsp_gate.py and with the real model)
# would hide most of them, whatever its fitted parameters are at the time.
STEADY = {"debounceMs": 0, "timeBudgetMs": 60_000, "multiLine": False, "gate": "off"}
STEADY_CONFIG = ServerConfig(debounce_ms=0, time_budget_ms=60_000, multiline=False, gate="off")


def expected(
    engine: Engine, text: str, offset: int, config: ServerConfig | None = None
) -> list[str]:
    """What the pipeline itself answers for this snapshot (greedy decoding is deterministic)."""
    out = complete(
        engine, CompletionRequest(text, offset), completion_options(config or STEADY_CONFIG)
    )
    return [out.text] if out.text else []


def frame(message: object) -> bytes:
    """One LSP frame: `message` as JSON, or bytes as the body they are."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def start_server(
    *args: str,
    editor: str = "visual-studio-code",
    init_options: Any = None,
    env: dict[str, str] | None = None,
) -> LanguageClient:
    """Spawn the server, record its status notifications, run the handshake."""
    config = ClientServerConfig(
        server_command=[
            sys.executable,
            "-m",
            "offpilot.cli",
            "serve",
            "--log-level",
            "INFO",
            *args,
        ],
        server_env={**os.environ, **(env or {})},
    )
    client = await config.start()
    await _handshake(client, editor, init_options)
    return client


async def connect_tcp(
    host: str, port: int, *, editor: str = "visual-studio-code", init_options: Any = None
) -> LanguageClient:
    """Connect to a running `offpilot serve --tcp`, record its statuses, run the handshake."""
    client = make_test_lsp_client()
    await client.start_tcp(host, port)
    await _handshake(client, editor, init_options)
    return client


async def _handshake(client: LanguageClient, editor: str, init_options: Any) -> None:
    client.statuses: list[dict[str, Any]] = []  # type: ignore[attr-defined,misc]

    @client.feature("offpilot/status")
    def on_status(params: Any) -> None:
        client.statuses.append({"state": params.state, "message": params.message})  # type: ignore[attr-defined]

    client.init_result = await client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities(editor), initialization_options=init_options
        )
    )


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


async def ask(client: LanguageClient, uri: str, line: int, character: int) -> list[str]:
    result = await client.text_document_inline_completion_async(
        completion_params(uri, line, character, types.InlineCompletionTriggerKind.Automatic)
    )
    return item_texts(result)


def change(
    client: LanguageClient,
    uri: str,
    version: int,
    line: int,
    char: int,
    text: str,
    end: tuple[int, int] | None = None,
) -> None:
    """An incremental edit: replace (line, char)..end with `text`."""
    stop = types.Position(*(end or (line, char)))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(line, char), stop), text=text
                )
            ],
        )
    )
