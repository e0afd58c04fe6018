"""`offpilot demo`: start the real server, open a sample file, ask for completions, time them."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from importlib import resources
from pathlib import Path

from offpilot.lsp_client import inline_completion, open_document, start_client, stop_client

CURSOR_LINE_ENDS = ("return ", "= ", "(")


def _out(msg: str) -> None:
    print(msg, flush=True)  # noqa: T201 - the demo is a CLI report


def cursor_positions(text: str) -> list[tuple[int, int]]:
    """End of every unfinished line of the sample (UTF-16 columns; the sample is ASCII)."""
    return [
        (i, len(line))
        for i, line in enumerate(text.splitlines())
        if line.endswith(CURSOR_LINE_ENDS) and not line.lstrip().startswith("#")
    ]


async def _demo(server_args: list[str]) -> int:
    text = resources.files("offpilot").joinpath("data/demo_sample.txt").read_text(encoding="utf-8")
    started = time.monotonic()
    client = await start_client(*server_args, name="offpilot-demo")
    _out(f"server started and initialized in {time.monotonic() - started:.2f} s")
    try:
        uri = open_document(client, Path("demo_sample.py"), text)
        lines = text.splitlines()
        for n, (line, col) in enumerate(cursor_positions(text)):
            t0 = time.monotonic()
            suggestion = await inline_completion(client, uri, line, col)
            ms = (time.monotonic() - t0) * 1000
            note = " (includes model load)" if n == 0 else ""
            _out(f"{line + 1:3}: {lines[line]!s:<30} -> {suggestion!r:<40} {ms:7.0f} ms{note}")
    finally:
        await stop_client(client)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo against `offpilot serve` with the chosen model."""
    server_args = []
    if args.model:
        server_args += ["--model", args.model]
    if args.cache_dir:
        server_args += ["--cache-dir", args.cache_dir]
    if sys.platform == "win32":  # pragma: no cover
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())
    return asyncio.run(_demo(server_args))
