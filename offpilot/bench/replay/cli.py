"""The `offpilot bench replay` command: options in, the summary (and raw figures) out."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from completion.cpu_load import usable_cores
from offpilot.bench.replay.load import busy_cores
from offpilot.bench.replay.session import (
    ReplayOptions,
    ReplayReport,
    default_corpus,
    replay,
    replay_interleaved,
)
from offpilot.bench.replay.summary import (
    model_requests,
    pause_breakdown,
    stage_breakdown,
    summarize,
)

NAIVE = {"cache": False, "promptCache": False}  # levers: the server defaults + --server-config


def run_replay(args: argparse.Namespace) -> int:
    """CLI entry: print the summary as JSON (and write the raw figures with --out).

    With --compare-naive the same typing is replayed twice in this one run, first against a
    server with every cache off (naive generation), then with the settings given, and the
    latency ratios are printed. With --compare-backend the local engine and the backend are
    replayed in one run, taking turns file by file with the same typing (`replay_interleaved`).
    """
    files = [
        (Path(p).name, Path(p).read_text(encoding="utf-8")) for p in args.files
    ] or default_corpus()
    model_args = ["--model", args.model] if args.model else []
    if args.backend:
        model_args += ["--backend", args.backend]

    def one(server_config: dict[str, Any]) -> tuple[dict[str, Any], ReplayReport]:
        with tempfile.TemporaryDirectory(prefix="offpilot-replay-") as tmp:
            log_args = _log_args(args, Path(tmp) / "server.log")
            report = asyncio.run(
                replay(files, _options(args, server_config), [*log_args, *model_args])
            )
        return _figures(report), report

    result: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    with busy_cores(args.load):
        if args.compare_backend:
            _local_and_backend(args, files, result, raw)
        else:
            _both(args, one, result, raw)
    summary = result if args.compare_naive or args.compare_backend else result["levers"]
    if args.load:
        summary = {"load_cores": args.load, **summary}
    print(json.dumps(summary, indent=2), flush=True)  # noqa: T201
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "raw": raw}, indent=1))
    return 0


def _options(args: argparse.Namespace, server_config: dict[str, Any]) -> ReplayOptions:
    return ReplayOptions(
        debounce_ms=args.debounce_ms,
        max_keystrokes=args.max_keystrokes,
        duration_s=args.duration,
        seed=args.seed,
        key_ms=args.key_ms,
        line_pause_ms=args.line_pause_ms,
        server_config=server_config,
        at=args.at,
        switch_lines=args.switch_lines,
        land_ms=args.land_ms,
    )


def _log_args(args: argparse.Namespace, log_file: Path) -> list[str]:
    """The server's log goes to a file: the figures come from the trace records."""
    return ["--log-level", args.server_log_level, "--log-file", str(log_file)]


def _figures(report: ReplayReport) -> dict[str, Any]:
    return summarize(report) | {
        "pauses": pause_breakdown(report),
        "stages_ms": stage_breakdown(report.traces),
        "model_requests": model_requests(report.traces),
    }


def _local_and_backend(
    args: argparse.Namespace,
    files: list[tuple[str, str]],
    result: dict[str, Any],
    raw: dict[str, Any],
) -> None:
    """The local engine and the backend, interleaved in one run, and backend / local ratios.

    The local engine runs on every core unless `threads` is given: with `threads` auto it
    samples the load in its idle time, which here is the backend's turn, and dropped to one
    thread for the backend's work (decode 67-73 ms a token against 48 alone; the same
    happened between two local servers interleaved, docs/latency.md).
    """
    config = json.loads(args.server_config) if args.server_config else {}
    config.setdefault("threads", usable_cores())
    model_args = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory(prefix="offpilot-replay-") as tmp:
        arms = {
            "local": [*_log_args(args, Path(tmp) / "local.log"), *model_args],
            "backend": [
                *_log_args(args, Path(tmp) / "backend.log"),
                *model_args,
                *("--backend", args.compare_backend),
            ],
        }
        reports = asyncio.run(replay_interleaved(files, _options(args, config), arms))
    for arm, report in reports.items():
        result[arm] = _figures(report)
        raw[arm] = asdict(report)
    local, backend = result["local"], result["backend"]
    result["backend"]["url"] = args.compare_backend
    result["backend_over_local"] = {
        "pause_latency": _ratios(backend["pause_latency_ms"], local["pause_latency_ms"]),
        "first_token": _ratios(
            backend["model_requests"]["first_token_ms"], local["model_requests"]["first_token_ms"]
        ),
    }


def _ratios(
    a: dict[str, float], b: dict[str, float], quantiles: tuple[str, ...] = ("p50", "p90")
) -> dict[str, float | None]:
    """The ratio `a` over `b` at each quantile, to two places (None where `b` has none)."""
    return {q: round(a[q] / b[q], 2) if b.get(q) else None for q in quantiles if q in a}


def _both(
    args: argparse.Namespace,
    one: Any,
    result: dict[str, Any],
    raw: dict[str, Any],
) -> None:
    """The naive replay (with --compare-naive), then the one with the given settings."""
    config = json.loads(args.server_config) if args.server_config else {}
    if args.compare_naive:
        result["naive"], naive_report = one({**config, **NAIVE})
        raw["naive"] = asdict(naive_report)
    result["levers"], report = one(config)
    raw["levers"] = asdict(report)
    if args.compare_naive:
        result["naive_over_levers"] = _ratios(
            result["naive"]["pause_latency_ms"],
            result["levers"]["pause_latency_ms"],
            ("p50", "p90", "p99"),
        )


def add_parser(sub: Any) -> None:
    """Register `offpilot bench replay`."""
    bench = sub.add_parser("bench", help="latency benchmarks against the real server")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    rp = bsub.add_parser("replay", help="type files into the server and time the suggestions")
    rp.add_argument("files", nargs="*", help="Python files to type (default: a bundled corpus)")
    rp.add_argument("--debounce-ms", type=float, default=75.0, help="editor-side debounce")
    rp.add_argument("--max-keystrokes", type=int, default=400, help="per file")
    rp.add_argument(
        "--key-ms", type=float, default=ReplayOptions.key_ms, help="median gap between keys"
    )
    rp.add_argument(
        "--line-pause-ms",
        type=float,
        default=ReplayOptions.line_pause_ms,
        help="median pause at a line's end and after a new line's indent",
    )
    rp.add_argument(
        "--duration", type=float, default=None, help="seconds; loops over the files (soak)"
    )
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument(
        "--at",
        choices=("middle", "end"),
        default="middle",
        help="type a definition in the middle of each file, code below (default), or at its end",
    )
    rp.add_argument(
        "--switch-lines",
        type=int,
        default=0,
        metavar="N",
        help="two files at once: N lines typed in one, then N in the other (0: one at a time)",
    )
    rp.add_argument(
        "--land-ms",
        type=float,
        default=ReplayOptions.land_ms,
        help="median read where the cursor lands in a file before the first key, the editor "
        "telling the server where it rests (0: type at once)",
    )
    rp.add_argument(
        "--server-config", default=None, help="JSON initializationOptions for the server"
    )
    rp.add_argument("--server-log-level", default="WARNING")
    rp.add_argument("--model", default=None)
    rp.add_argument(
        "--compare-naive", action="store_true", help="also replay with every cache off, same typing"
    )
    rp.add_argument(
        "--backend", metavar="URL", default=None, help="the server generates with this backend"
    )
    rp.add_argument(
        "--compare-backend",
        metavar="URL",
        default=None,
        help="replay the local engine and this backend in one run, interleaved, same typing",
    )
    rp.add_argument("--out", default=None, help="write summary and raw figures here (JSON)")
    rp.add_argument(
        "--load", type=int, default=0, help="keep N cores busy with other work during the run"
    )
    rp.set_defaults(func=run_replay)

    from offpilot.bench.probe import add_parser as add_probe_parser

    add_probe_parser(bsub)
