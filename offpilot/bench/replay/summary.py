"""The replay's report: what the user waited for, and where the server spent the time.

Every figure of the server side comes from its trace records (lsp_server/trace.py), one per
request, never from its log text. Percentiles are the eval's (`eval.metrics.percentile`,
interpolated), so a replay and an eval summary give one statistic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from eval.metrics import percentile
from lsp_server.trace import BLOCK_REST, REQUEST, TraceRecord
from offpilot.bench.replay.session import ReplayReport

# the sources of answers; the others: superseded, cancelled, skipped, ...
ANSWERED = ("cache", "typethrough", "prefetch", "reused", "model")


def _p50_p90(values: Sequence[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p90": round(percentile(values, 90), 1)}


def _requests(records: Iterable[TraceRecord], source: str | None = None) -> list[TraceRecord]:
    return [r for r in records if r.kind == REQUEST and (source is None or r.source == source)]


def _block_rests(records: Iterable[TraceRecord]) -> dict[int | str, TraceRecord]:
    """The `block_rest` records by the id of the request that showed the block's first line."""
    return {r.id: r for r in records if r.kind == BLOCK_REST and r.id is not None}


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
        # the first pause after coming back to a file typed before (`switch_lines`)
        "pause_after_switch_ms": after_switch(report),
        "pause_first_in_file_ms": first_in_file(report),
        "typing_answers": len(report.typing_latencies_ms),
        "superseded_share": round(report.superseded / max(1, report.requests), 3),
        "cache_share": round(
            sum(answered.get(k, 0) for k in ANSWERED if k != "model") / total_answered, 3
        ),
        "server_requests": answered,
        # how the requests that got an answer were served (typing and pauses together)
        "answer_sources_share": {
            k: round(v / max(1, sum(answered.get(x, 0) for x in ANSWERED)), 3)
            for k, v in answered.items()
            if k in ANSWERED
        },
        # how the pauses, where the user waited, were served
        "pause_sources_share": pause_sources(report.traces, report.pause_ids),
        "shown": report.shown,
        "empty": report.empty,
        # the pauses' suggestions whose first line is what the user then typed
        "pause_suggestions_as_typed": {
            "shown": len(report.as_typed),
            "as_typed": sum(report.as_typed),
            "share": round(sum(report.as_typed) / max(1, len(report.as_typed)), 3),
        },
        "rss_mb": {
            "first": round(rss[0], 1) if rss else None,
            "max": round(max(rss), 1) if rss else None,
            "last": round(rss[-1], 1) if rss else None,
            # the soak figure: the highest RSS after minute 2 over the RSS at minute 2
            # (a sample taken while the model reloads is low, not a leak, so no minimum)
            "growth_after_two_minutes": rss_growth(report.rss_mb, after_s=120.0),
        },
        "trace_records": len(report.traces),
        "seconds": round(report.seconds, 1),
    }


def after_switch(report: ReplayReport) -> dict[str, float] | None:
    """p50 / p90 (and n) of the first pause after each return to a file; None without."""
    return _pauses(report, report.after_switch)


def first_in_file(report: ReplayReport) -> dict[str, float] | None:
    """p50 / p90 (and n) of the first pause in each file, where its whole prompt is new."""
    return _pauses(report, report.first_in_file)


def _pauses(report: ReplayReport, ids: Sequence[int]) -> dict[str, float] | None:
    latency = dict(zip(report.pause_ids, report.pause_latencies_ms, strict=True))
    waits = [latency[i] for i in ids if i in latency]
    return {**_p50_p90(waits), "n": len(waits)} if waits else None


def pause_sources(
    records: Sequence[TraceRecord], pause_ids: Sequence[int | str]
) -> dict[str, float]:
    """The share of pauses served by each source (the answered ones always listed).

    A pause is matched to its request's record by the JSON-RPC id; `unmatched` counts the
    pauses whose record never came.
    """
    by_id = {r.id: r.source for r in _requests(records) if r.id is not None}
    counts = Counter(by_id.get(i, "unmatched") for i in pause_ids)
    n = max(1, len(pause_ids))
    return {
        k: round(counts.get(k, 0) / n, 3)
        for k in (*ANSWERED, *sorted(counts.keys() - set(ANSWERED)))
    }


def stage_breakdown(records: Sequence[TraceRecord]) -> dict[str, Any]:
    """p50/p90 per stage over the requests the model answered whole.

    `prompt_pass` is the time to the first token (the prompt pass plus one step), `decode`
    the rest of generation, `pipeline` everything else inside the completion pipeline
    (context, trigger, prompt building, post-processing); the user's wait beyond the
    pipeline's `total` is debounce, queueing and the LSP round trip. A block's first line
    shown early has no generation figures of its own: `model_requests` has them.
    """
    rows: list[dict[str, float]] = []
    for r in _requests(records, "model"):
        ms = r.stages_ms
        if {"first_token", "generate", "total"} <= ms.keys() and ms["first_token"] > 0:
            rows.append(
                {
                    "prompt_pass": ms["first_token"],
                    "decode": ms["generate"] - ms["first_token"],
                    "pipeline": ms["total"] - ms["generate"],
                    "total": ms["total"],
                    "prompt_tokens_computed": r.computed_tokens,
                    "prompt_tokens_reused": r.reused_tokens,
                }
            )
    breakdown: dict[str, Any] = {"requests": len(rows), "answers": answer_kinds(records)}
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
        breakdown[stage] = _p50_p90([r[stage] for r in rows])
    return breakdown


def model_requests(records: Sequence[TraceRecord]) -> dict[str, Any]:
    """Per request the model served: the generation that served it, and what it cost.

    A block whose first line was shown early is counted with its whole generation (the
    `block_rest` record of the same request); one whose rest never came (typing stopped
    it) counts in `n` and `mode` only.
    """
    rests = _block_rests(records)
    served = _requests(records, "model")
    generations = []
    for r in served:
        gen = rests.get(r.id) if r.stop == "first_line" and r.id is not None else r
        if gen is not None and gen.first_token_ms is not None:
            generations.append(gen)
    figures: dict[str, Any] = {
        "n": len(served),
        "with_generation": len(generations),
        # not_run: the time budget was spent before the generation could start (queueing)
        "mode": dict(Counter(r.mode or "not_run" for r in served)),
    }
    for name, values in (
        ("prompt_tokens_computed", [g.computed_tokens for g in generations]),
        ("prompt_tokens_reused", [g.reused_tokens for g in generations]),
        ("first_token_ms", [g.first_token_ms or 0.0 for g in generations]),
        ("decode_ms", [g.decode_ms or 0.0 for g in generations]),
        ("decode_tokens", [g.decode_tokens for g in generations]),
        (  # the first token's step is in first_token_ms
            "decode_ms_per_token",
            [
                (g.decode_ms or 0.0) / (g.decode_tokens - 1)
                for g in generations
                if g.decode_tokens > 1
            ],
        ),
    ):
        figures[name] = _p50_p90(values)
    return figures


def answer_kinds(records: Sequence[TraceRecord]) -> dict[str, Any]:
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
    for r in records:
        if r.kind == BLOCK_REST and r.since_arrival_ms is not None:
            times["block_rest"].append(r.since_arrival_ms)
        elif r.kind == REQUEST and r.source == "model" and "total" in r.stages_ms and r.text:
            times[answer_kind(r)].append(r.stages_ms["total"])
    return {kind: {"n": len(values), **_p50_p90(values)} for kind, values in times.items()}


def rss_growth(samples: list[tuple[float, float]], after_s: float) -> float | None:
    """Highest RSS after `after_s` minus the first sample at or past it (None: none so late)."""
    late = [rss for t, rss in samples if t >= after_s]
    return round(max(late) - late[0], 1) if late else None


# the parts of a pause's wait, in the order they happen (`pause_parts`)
PARTS = (
    "wait",  # the server's debounce (and a model load) before the request asked for the engine
    "queue",  # another generation, a prefetch or a block's rest holding the engine
    "pipeline",  # context, trigger, cross-file, prompt building, post-processing, the gate
    "first_token",  # the prompt pass over the tokens not cached, and one decode step
    "decode",  # the tokens after the first
    "transport",  # the rest: the LSP round trip, the event loop, JSON
)


SHOWN_KINDS = ("line", "block_first_line", "block_whole")


def answer_kind(record: TraceRecord | None) -> str:
    """What a request's answer showed: line, block_first_line, block_whole, or empty."""
    if record is None:
        return "unmatched"
    if not record.text:
        return "empty"
    if record.stop == "first_line":
        return "block_first_line"
    return "block_whole" if "\n" in record.text else "line"


def pause_parts(latency_ms: float, record: TraceRecord, rest: TraceRecord | None) -> dict[str, Any]:
    """Where one pause's wait went, from its request's trace record (and its block's rest).

    A first line shown early has the generation's figures in its rest's record, when the
    rest was written (typing cancels most): its `first_token` comes from there, and its
    decode and pipeline up to the first line are not split out (its `total` counts from the
    request's arrival, so `transport` is still the round trip).
    """
    ms = record.stages_ms
    parts: dict[str, Any] = {"source": record.source}
    parts["wait"] = ms.get("wait", 0.0)
    parts["queue"] = ms.get("queue", 0.0)
    gen = rest if record.stop == "first_line" else record
    if record.source == "model" and gen is not None and "generate" in gen.stages_ms:
        g = gen.stages_ms
        parts["first_token"] = g.get("first_token", 0.0)
        parts["prompt_tokens_computed"] = gen.computed_tokens
        parts["decode_tokens"] = gen.decode_tokens
        if record.stop != "first_line":
            parts["decode"] = g["generate"] - g.get("first_token", 0.0)
            parts["pipeline"] = g.get("total", 0.0) - g["generate"]
    if record.stop == "first_line":  # its `total` counts from the request's arrival
        server = ms.get("total", 0.0)
    else:
        server = parts["wait"] + parts["queue"] + ms.get("total", 0.0)
    parts["transport"] = max(0.0, latency_ms - server)
    return parts


def pause_breakdown(report: ReplayReport) -> dict[str, Any]:
    """The pauses by what the user got, each with its wait and where the wait went.

    Per kind (`answer_kind`): how many, the latency's p50/p90, how they were served, and the
    p50 of each part (`PARTS`) over the model-served ones; `block_whole_ms` is when a block
    whose first line was shown early was whole (its rest's time since arrival plus the
    round trip of its first line). `slowest_tenth` is the mean of each part over the slowest
    tenth of all the pauses: where the p90 goes.
    """
    requests = {r.id: r for r in _requests(report.traces) if r.id is not None}
    rests = _block_rests(report.traces)
    rows = []
    for msg_id, latency in zip(report.pause_ids, report.pause_latencies_ms, strict=False):
        record = requests.get(msg_id)
        row: dict[str, Any] = {"ms": latency, "kind": answer_kind(record)}
        row["at"] = report.pause_at.get(msg_id, "")
        if record is not None:
            rest = rests.get(msg_id)
            row |= pause_parts(latency, record, rest)
            if rest is not None and rest.since_arrival_ms is not None:
                row["block_whole_ms"] = rest.since_arrival_ms + row["transport"]
        rows.append(row)
    out: dict[str, Any] = {}
    for kind in ("line", "block_first_line", "block_whole", "empty"):
        mine = [r for r in rows if r["kind"] == kind]
        entry: dict[str, Any] = {"n": len(mine), **_p50_p90([r["ms"] for r in mine])}
        entry["sources"] = dict(Counter(r.get("source", "") for r in mine))
        entry["at"] = dict(Counter(r["at"] for r in mine))
        model = [r for r in mine if r.get("source") == "model"]
        entry["model_p50"] = {
            name: round(percentile([r[name] for r in model if name in r], 50), 1)
            for name in (*PARTS, "prompt_tokens_computed", "decode_tokens")
            if any(name in r for r in model)
        }
        wholes = [r["block_whole_ms"] for r in mine if "block_whole_ms" in r]
        if wholes:
            entry["block_whole_ms"] = {"n": len(wholes), **_p50_p90(wholes)}
        out[kind] = entry
    # the headline: latency to an answer that carries a suggestion, and to a block
    shown = [r["ms"] for r in rows if r["kind"] in SHOWN_KINDS]
    out["with_suggestion"] = {"n": len(shown), **_p50_p90(shown)}
    slow = sorted(rows, key=lambda r: r["ms"])[-max(1, len(rows) // 10) :] if rows else []
    out["slowest_tenth"] = {
        "n": len(slow),
        "ms_mean": round(sum(r["ms"] for r in slow) / max(1, len(slow)), 1),
        "kinds": dict(Counter(r["kind"] for r in slow)),
        "parts_mean": {
            name: round(sum(r.get(name, 0.0) for r in slow) / max(1, len(slow)), 1)
            for name in PARTS
        },
    }
    return out
