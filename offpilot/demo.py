"""`offpilot demo`: start the real server, open a sample file, ask for completions, time them.

For each `return` line of the sample, the demo deletes what follows `return ` (as if the user
had just typed it), asks the server for an inline completion there, prints it beside the
original text with the time it took, and restores the line.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from importlib import resources
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from offpilot.lsp_client import inline_completion, open_document, start_client, stop_client

CURSOR_AFTER = re.compile(r"^\s+(return |print\()")


def _out(msg: str) -> None:
    print(msg, flush=True)  # noqa: T201 - the demo is a CLI report


def cursor_positions(text: str) -> list[tuple[int, int]]:
    """(line, column) just after `return ` / `print(` on each such line (ASCII sample)."""
    return [
        (i, m.end()) for i, line in enumerate(text.splitlines()) if (m := CURSOR_AFTER.match(line))
    ]


def _replace(
    client: LanguageClient, uri: str, version: int, line: int, start: int, end: int, new: str
) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(line, start), types.Position(line, end)),
                    text=new,
                )
            ],
        )
    )


async def _demo(server_args: list[str]) -> int:
    text = resources.files("offpilot").joinpath("data/demo_sample.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    started = time.monotonic()
    try:
        client = await start_client(*server_args, name="offpilot-demo")
    except RuntimeError as exc:  # pygls: the server process exited before it answered
        return _server_stopped(exc)
    _out(f"server started and initialized in {(time.monotonic() - started) * 1000:.0f} ms")
    version = 1
    try:
        uri = open_document(client, Path("demo_sample.py"), text)
        for n, (line, col) in enumerate(cursor_positions(text)):
            original = lines[line][col:]
            _replace(client, uri, version := version + 1, line, col, len(lines[line]), "")
            t0 = time.monotonic()
            suggestion = await inline_completion(client, uri, line, col)
            ms = (time.monotonic() - t0) * 1000
            _replace(client, uri, version := version + 1, line, col, col, original)
            mark = "==" if suggestion == original else "!="
            note = "  (first request: waits for the model to load)" if n == 0 else ""
            _out(f"line {line + 1:3} {lines[line][:col]!r:>22} -> {suggestion!r}")
            _out(f"{'':9}{mark} original {original!r}, {ms:.0f} ms{note}")
    except RuntimeError as exc:  # pygls: the server process exited under a request
        if client._server is None or client._server.returncode is None:
            raise
        return _server_stopped(exc)
    finally:
        await stop_client(client)
    return 0


def _server_stopped(exc: RuntimeError) -> int:
    """A clear line and a failing exit where the server died (its log says why)."""
    print(f"offpilot demo: the server stopped: {exc}", file=sys.stderr)  # noqa: T201
    return 1


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo against `offpilot serve` with the chosen model."""
    server_args = []
    if args.model:
        server_args += ["--model", args.model]
    if args.cache_dir:
        server_args += ["--cache-dir", args.cache_dir]
    return asyncio.run(_demo(server_args))
