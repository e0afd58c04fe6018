"""`offpilot bench replay`: type real files into the real server as an editor would.

Characters are typed one at a time with human-like pauses (longer at line ends), each edit is
sent as an incremental `didChange`, the request in flight is cancelled on every keystroke
(`$/cancelRequest`), and a request is sent once the editor-side debounce has passed. At a
pause the user waits for the suggestion: that wait, from the request to the answer, is the
latency reported. The server's RSS is sampled throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from eval.metrics import percentile
from offpilot.lsp_client import completion_params, open_document, start_client, stop_client


@dataclass(frozen=True)
class ReplayOptions:
    """How the simulated user types."""

    debounce_ms: float = 75.0  # editor-side, before a request is sent
    key_ms: float = 110.0  # median gap between keystrokes
    line_pause_ms: float = 900.0  # median pause at the end of a line
    start_lines: int = 12  # lines already present when typing starts
    max_keystrokes: int = 400  # per file
    duration_s: float | None = None  # stop after this long (all files looped)
    seed: int = 0
    server_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplayReport:
    """What the user waited for, and what the server spent."""

    keystrokes: int = 0
    requests: int = 0
    pause_latencies_ms: list[float] = field(default_factory=list)
    typing_latencies_ms: list[float] = field(default_factory=list)
    superseded: int = 0
    typing_requests_at_pause: int = 0  # pauses answered by a request already in flight
    shown: int = 0
    empty: int = 0
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    server_requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def default_corpus() -> list[tuple[str, str]]:
    """(name, text) of the bundled replay files."""
    folder = resources.files("offpilot").joinpath("data/replay")
    return [
        (f.name.removesuffix(".txt"), f.read_text(encoding="utf-8"))
        for f in sorted(folder.iterdir(), key=lambda p: p.name)
        if f.name.endswith(".py.txt")
    ]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class _Typist:
    """One document being typed; owns the request in flight."""

    def __init__(self, client: LanguageClient, uri: str, text: str, report: ReplayReport) -> None:
        self.client = client
        self.uri = uri
        self.text = text
        self.version = 1
        self.report = report
        self.ids = iter(range(10_000_000, 100_000_000))
        # (message id, answer, sent at, document version, where its latency goes)
        self.pending: tuple[int, asyncio.Future[Any], float, int, list[list[float]]] | None = None

    def position(self) -> types.Position:
        line = self.text.count("\n")
        col = len(self.text) - (self.text.rfind("\n") + 1)
        return types.Position(line, col)  # the corpus is ASCII: UTF-16 units == characters

    def type_char(self, ch: str) -> None:
        pos = self.position()
        self.cancel_pending()
        self.version += 1
        self.text += ch
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=ch)
                ],
            )
        )
        self.report.keystrokes += 1

    def retarget(self, latencies: list[float]) -> None:
        """Count the pending request's latency in `latencies` instead."""
        if self.pending is not None:
            self.pending[4][0] = latencies

    def cancel_pending(self) -> None:
        if self.pending is None:
            return
        msg_id, future, *_ = self.pending
        if not future.done():
            self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
            self.report.superseded += 1
        self.pending = None

    def request(self, latencies: list[float]) -> asyncio.Future[Any]:
        pos = self.position()
        params = completion_params(
            self.uri, pos.line, pos.character, types.InlineCompletionTriggerKind.Automatic
        )
        msg_id = next(self.ids)
        future = asyncio.wrap_future(
            self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
            )
        )
        started = time.monotonic()
        target = [latencies]
        self.pending = (msg_id, future, started, self.version, target)
        self.report.requests += 1

        def done(f: asyncio.Future[Any], started: float = started) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            ms = (time.monotonic() - started) * 1000
            result = f.result()
            items = getattr(result, "items", None) or []
            self.report.shown += bool(items)
            self.report.empty += not items
            target[0].append(ms)

        future.add_done_callback(done)
        return future


async def _type_file(
    typist: _Typist, rest: str, opts: ReplayOptions, rng: random.Random, deadline: float
) -> None:
    """Type `rest` after the document's current text."""
    i = 0
    typed = 0
    while i < len(rest) and typed < opts.max_keystrokes and time.monotonic() < deadline:
        ch = rest[i]
        if ch == "\n":  # the user pauses at the end of a line and waits for a suggestion
            await _pause_for_suggestion(typist, opts, rng)
            # newline plus the editor's auto-indent arrive together
            j = i + 1
            while j < len(rest) and rest[j] == " ":
                j += 1
            for c in rest[i:j]:
                typist.type_char(c)
            typed += 1
            i = j
            await _pause_for_suggestion(typist, opts, rng, scale=0.5)
            continue
        typist.type_char(ch)
        typed += 1
        i += 1
        gap = rng.lognormvariate(0, 0.45) * opts.key_ms / 1000
        await asyncio.sleep(min(gap, opts.debounce_ms / 1000))
        if gap > opts.debounce_ms / 1000:  # the debounce expired before the next key
            typist.request(typist.report.typing_latencies_ms)
            await asyncio.sleep(gap - opts.debounce_ms / 1000)


async def _pause_for_suggestion(
    typist: _Typist, opts: ReplayOptions, rng: random.Random, scale: float = 1.0
) -> None:
    """The user stops typing and waits for the suggestion at the cursor.

    A request already sent for this very cursor (the debounce expired after the last key) is
    what the editor waits on; otherwise the editor sends one after its debounce.
    """
    if typist.pending is not None and typist.pending[3] == typist.version:
        future = typist.pending[1]
        typist.report.typing_requests_at_pause += 1
        typist.retarget(typist.report.pause_latencies_ms)
    else:
        await asyncio.sleep(opts.debounce_ms / 1000)
        typist.cancel_pending()
        future = typist.request(typist.report.pause_latencies_ms)
    with contextlib.suppress(Exception):
        await future
    typist.pending = None
    await asyncio.sleep(rng.lognormvariate(0, 0.3) * opts.line_pause_ms * scale / 1000)


async def replay(
    files: list[tuple[str, str]], opts: ReplayOptions, server_args: list[str]
) -> ReplayReport:
    """Type each file (looping when a duration is set) and collect the figures."""
    report = ReplayReport()
    rng = random.Random(opts.seed)
    client = await start_client(
        *server_args, name="offpilot-replay", init_options=opts.server_config
    )
    server = getattr(client, "_server", None)
    pid = server.pid if server is not None else None
    started = time.monotonic()
    deadline = started + opts.duration_s if opts.duration_s else float("inf")

    async def sample_rss() -> None:
        while pid is not None:
            report.rss_mb.append((time.monotonic() - started, _rss_mb(pid)))
            await asyncio.sleep(5)

    sampler = asyncio.ensure_future(sample_rss())
    try:
        round_no = 0
        while True:
            for name, text in files:
                lines = text.splitlines(keepends=True)
                head = "".join(lines[: opts.start_lines])
                uri = Path(f"/tmp/offpilot-replay/r{round_no}/{name}").as_uri()
                open_document(client, Path(f"/tmp/offpilot-replay/r{round_no}/{name}"), head)
                typist = _Typist(client, uri, head, report)
                await _type_file(typist, text[len(head) :], opts, rng, deadline)
                typist.cancel_pending()
                client.text_document_did_close(
                    types.DidCloseTextDocumentParams(
                        text_document=types.TextDocumentIdentifier(uri=uri)
                    )
                )
                if time.monotonic() >= deadline:
                    break
            round_no += 1
            if opts.duration_s is None or time.monotonic() >= deadline:
                break
        await asyncio.sleep(0.5)
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="offpilot.stats")
        )
        report.server_requests = dict(stats.get("requests", {})) if isinstance(stats, dict) else {}
        if pid is not None:
            report.rss_mb.append((time.monotonic() - started, _rss_mb(pid)))
    finally:
        sampler.cancel()
        report.seconds = time.monotonic() - started
        await stop_client(client)
    return report


def summarize(report: ReplayReport) -> dict[str, Any]:
    """The figures a person reads."""
    pauses = report.pause_latencies_ms
    answered = report.server_requests
    total_answered = sum(answered.values()) or 1
    rss = [r for _, r in report.rss_mb if r == r]
    return {
        "keystrokes": report.keystrokes,
        "requests": report.requests,
        "pause_requests": len(pauses),
        "pause_latency_ms": {
            q: round(percentile(pauses, p), 1) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))
        },
        "typing_answers": len(report.typing_latencies_ms),
        "superseded_share": round(report.superseded / max(1, report.requests), 3),
        "cache_share": round(
            sum(answered.get(k, 0) for k in _ANSWERED if k != "model") / total_answered, 3
        ),
        "server_requests": answered,
        # how the requests that got an answer were served (typing and pauses together)
        "answer_sources_share": {
            k: round(v / max(1, sum(answered.get(x, 0) for x in _ANSWERED)), 3)
            for k, v in answered.items()
            if k in _ANSWERED
        },
        "shown": report.shown,
        "empty": report.empty,
        "rss_mb": {
            "first": round(rss[0], 1) if rss else None,
            "max": round(max(rss), 1) if rss else None,
            "last": round(rss[-1], 1) if rss else None,
            "growth_after_first_minute": round(
                max((r for t, r in report.rss_mb if t >= 60), default=float("nan"))
                - min((r for t, r in report.rss_mb if t >= 60), default=float("nan")),
                1,
            )
            if any(t >= 60 for t, _ in report.rss_mb)
            else None,
        },
        "seconds": round(report.seconds, 1),
    }


# the sources of answers; the others: superseded, cancelled, skipped, ...
_ANSWERED = ("cache", "typethrough", "prefetch", "reused", "model")
NAIVE = {"cache": False, "promptCache": False}  # levers: the server defaults + --server-config
_STAGE = re.compile(r"(\w+)=([\d.]+)ms")
_TOKENS = re.compile(r"\b(prompt_tokens|reused_tokens)=(\d+)\b")


def stage_breakdown(server_log: str) -> dict[str, Any]:
    """p50/p90 per stage over the requests the model answered, from the server's INFO log.

    `prompt_pass` is the time to the first token (the prompt pass plus one step), `decode`
    the rest of generation, `pipeline` everything else inside the completion pipeline
    (context, trigger, prompt building, post-processing); the user's wait beyond the
    pipeline's `total` is debounce, queueing and the LSP round trip.
    """
    rows: list[dict[str, float]] = []
    for line in server_log.splitlines():
        if "source=model" not in line:
            continue
        ms = {k: float(v) for k, v in _STAGE.findall(line)}
        tokens = {k: int(v) for k, v in _TOKENS.findall(line)}
        if {"first_token", "generate", "total"} <= ms.keys() and ms["first_token"] > 0:
            prompt = tokens.get("prompt_tokens", 0)
            reused = tokens.get("reused_tokens", 0)
            rows.append(
                {
                    "prompt_pass": ms["first_token"],
                    "decode": ms["generate"] - ms["first_token"],
                    "pipeline": ms["total"] - ms["generate"],
                    "total": ms["total"],
                    "prompt_tokens_computed": prompt - reused,
                    "prompt_tokens_reused": reused,
                }
            )
    breakdown: dict[str, Any] = {"requests": len(rows), "answers": answer_kinds(server_log)}
    breakdown["head_reused_share"] = round(
        sum(r["prompt_tokens_reused"] > 0 for r in rows) / max(1, len(rows)), 3
    )
    for stage in (
        "prompt_pass",
        "decode",
        "pipeline",
        "total",
        "prompt_tokens_computed",
        "prompt_tokens_reused",
    ):
        values = [r[stage] for r in rows]
        breakdown[stage] = {
            "p50": round(percentile(values, 50), 1),
            "p90": round(percentile(values, 90), 1),
        }
    return breakdown


def answer_kinds(server_log: str) -> dict[str, Any]:
    """Model answers by kind, with their server-side time from the request's arrival.

    `line`: a one-line answer; `block_whole`: a block shown whole; `block_first_line`: a
    block's first line shown while the rest was still being written; `block_rest`: when
    that rest was ready (`since_arrival`).
    """
    times: dict[str, list[float]] = {
        "line": [],
        "block_whole": [],
        "block_first_line": [],
        "block_rest": [],
    }
    for line in server_log.splitlines():
        ms = {k: float(v) for k, v in _STAGE.findall(line)}
        if "source=block" in line and "since_arrival" in ms:
            times["block_rest"].append(ms["since_arrival"])
        elif "source=model" in line and "total" in ms:
            shown = line.rpartition(" -> ")[2]
            if shown in ("''", '""'):
                continue
            if "stop=first_line" in line:
                times["block_first_line"].append(ms["total"])
            else:
                times["block_whole" if "\\n" in shown else "line"].append(ms["total"])
    return {
        kind: {
            "n": len(values),
            "p50": round(percentile(values, 50), 1),
            "p90": round(percentile(values, 90), 1),
        }
        for kind, values in times.items()
    }


def run_replay(args: argparse.Namespace) -> int:
    """CLI entry: print the summary as JSON (and write the raw figures with --out).

    With --compare-naive the same typing is replayed twice in this one run, first against a
    server with every cache off (naive generation), then with the settings given, and the
    latency ratios are printed.
    """
    files = [
        (Path(p).name, Path(p).read_text(encoding="utf-8")) for p in args.files
    ] or default_corpus()
    level = args.server_log_level.upper()
    level = level if level == "DEBUG" else "INFO"  # the stage breakdown reads INFO lines
    model_args = ["--model", args.model] if args.model else []

    def one(server_config: dict[str, Any]) -> tuple[dict[str, Any], ReplayReport]:
        opts = ReplayOptions(
            debounce_ms=args.debounce_ms,
            max_keystrokes=args.max_keystrokes,
            duration_s=args.duration,
            seed=args.seed,
            server_config=server_config,
        )
        with tempfile.TemporaryDirectory(prefix="offpilot-replay-") as tmp:
            log_file = Path(tmp) / "server.log"
            server_args = ["--log-level", level, "--log-file", str(log_file), *model_args]
            report = asyncio.run(replay(files, opts, server_args))
            server_log = log_file.read_text(encoding="utf-8", errors="replace")
        return summarize(report) | {"stages_ms": stage_breakdown(server_log)}, report

    result: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    with busy_cores(args.load):
        _both(args, one, result, raw)
    summary = result if args.compare_naive else result["levers"]
    if args.load:
        summary = {"load_cores": args.load, **summary}
    print(json.dumps(summary, indent=2), flush=True)  # noqa: T201
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "raw": raw}, indent=1))
    return 0


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
        result["naive_over_levers"] = {
            q: round(
                result["naive"]["pause_latency_ms"][q] / result["levers"]["pause_latency_ms"][q], 2
            )
            for q in ("p50", "p90", "p99")
        }


def _spin() -> None:
    """Keep one core busy until killed (the user's compiler, browser, ...)."""
    while True:
        pass


@contextlib.contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """`n` processes that each keep a core busy while the block runs."""
    import multiprocessing

    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.join(5)


def add_parser(sub: Any) -> None:
    """Register `offpilot bench replay`."""
    bench = sub.add_parser("bench", help="latency benchmarks against the real server")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    rp = bsub.add_parser("replay", help="type files into the server and time the suggestions")
    rp.add_argument("files", nargs="*", help="Python files to type (default: a bundled corpus)")
    rp.add_argument("--debounce-ms", type=float, default=75.0, help="editor-side debounce")
    rp.add_argument("--max-keystrokes", type=int, default=400, help="per file")
    rp.add_argument(
        "--duration", type=float, default=None, help="seconds; loops over the files (soak)"
    )
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument(
        "--server-config", default=None, help="JSON initializationOptions for the server"
    )
    rp.add_argument("--server-log-level", default="WARNING")
    rp.add_argument("--model", default=None)
    rp.add_argument(
        "--compare-naive", action="store_true", help="also replay with every cache off, same typing"
    )
    rp.add_argument("--out", default=None, help="write summary and raw figures here (JSON)")
    rp.add_argument(
        "--load", type=int, default=0, help="keep N cores busy with other work during the run"
    )
    rp.set_defaults(func=run_replay)

    from offpilot.probe import add_parser as add_probe_parser

    add_probe_parser(bsub)
