"""`offpilot bench probe`: start-up, first/repeat/cached latency, huge-file cost, cancellation.

Each figure is measured against the real server over stdio, in one run, so ratios compare like
with like.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from offpilot.lsp_client import (
    completion_params,
    inline_completion,
    open_document,
    start_client,
    stop_client,
)


def _fn(i: int) -> str:
    return f"def scale_{i}(values, factor):\n    return \n\n\n"


async def _timed(client: LanguageClient, uri: str, line: int, col: int) -> tuple[float, str]:
    t0 = time.monotonic()
    text = await inline_completion(client, uri, line, col)
    return (time.monotonic() - t0) * 1000, text


def _request(
    client: LanguageClient, uri: str, line: int, col: int, msg_id: int
) -> asyncio.Future[Any]:
    params = completion_params(uri, line, col)
    return asyncio.wrap_future(
        client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    )


async def probe(server_args: list[str], rounds: int = 5, huge_mb: float = 5.0) -> dict[str, Any]:
    """Run every probe; returns the figures (milliseconds unless named otherwise)."""
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    client = await start_client(*server_args, name="offpilot-probe", init_options={"debounceMs": 0})
    out["server_start_ms"] = round((time.monotonic() - t0) * 1000)

    try:
        small = "".join(_fn(i) for i in range(rounds * 4 + 4))
        uri = open_document(client, Path("/tmp/offpilot-probe/small.py"), small)
        first, text = await _timed(client, uri, 1, 11)  # waits for the model to load
        out["model_ready_ms"] = round((time.monotonic() - t0) * 1000)
        out["first_completion_ms"] = round(first)
        out["first_completion"] = text
        repeat = [(await _timed(client, uri, 1 + 4 * i, 11))[0] for i in range(1, rounds + 1)]
        out["repeat_completion_ms"] = _stats(repeat)
        cached = [(await _timed(client, uri, 1 + 4 * i, 11))[0] for i in range(1, rounds + 1)]
        out["cache_hit_ms"] = _stats(cached)

        block = "".join(_fn(i) for i in range(1000, 1100))
        huge = block * max(1, int(huge_mb * 1e6 / len(block)))
        tail_fns = [_fn(i) for i in range(5000, 5000 + rounds)]
        huge_uri = open_document(
            client, Path("/tmp/offpilot-probe/huge.py"), huge + "".join(tail_fns)
        )
        base = huge.count("\n")
        big = [(await _timed(client, huge_uri, base + 1 + 4 * i, 11))[0] for i in range(rounds)]
        small_again = [
            (await _timed(client, uri, 1 + 4 * i, 11))[0] for i in range(rounds + 1, 2 * rounds + 1)
        ]
        out["huge_file_mb"] = round(len(huge) / 1e6, 1)
        out["huge_file_end_ms"] = _stats(big)
        out["small_file_ms"] = _stats(small_again)
        out["huge_over_small_p50"] = round(
            statistics.median(big) / statistics.median(small_again), 2
        )

        cancel_ms, next_ms = [], []
        for i in range(rounds):
            line = 1 + 4 * (2 * rounds + 1 + i)
            fut = _request(client, uri, line, 11, 900_000 + i)
            await asyncio.sleep(0.15)  # generation is under way
            t_cancel = time.monotonic()
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=900_000 + i))
            with contextlib.suppress(Exception):  # -32800 RequestCancelled
                await fut
            cancel_ms.append((time.monotonic() - t_cancel) * 1000)
            ms, _ = await _timed(client, uri, 1 + 4 * (3 * rounds + 1 + i), 11)
            next_ms.append(ms)
        out["cancel_to_answer_ms"] = _stats(cancel_ms)
        out["request_after_cancel_ms"] = _stats(next_ms)
    finally:
        await stop_client(client)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


def run_probe(args: argparse.Namespace) -> int:
    """CLI entry: print the figures as JSON."""
    server_args = ["--log-level", "WARNING"] + (["--model", args.model] if args.model else [])
    figures = asyncio.run(probe(server_args, args.rounds, args.huge_mb))
    print(json.dumps(figures, indent=2), flush=True)  # noqa: T201
    return 0


def add_parser(bsub: Any) -> None:
    """Register `offpilot bench probe`."""
    p = bsub.add_parser("probe", help="start-up, first/repeat/cached latency, huge file, cancel")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--huge-mb", type=float, default=5.0)
    p.add_argument("--model", default=None)
    p.set_defaults(func=run_probe)
