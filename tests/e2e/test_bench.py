"""The benchmark commands run end to end against the real server (tiny model, short runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from completion.models.store import InstalledModel
from completion.pipeline import CompletionResult
from lsp_server.completer import Outcome, Source
from lsp_server.trace import TraceRecord, block_record, request_record
from offpilot.bench.replay.session import ReplayReport, default_corpus
from offpilot.bench.replay.summary import (
    ANSWERED,
    answer_kinds,
    model_requests,
    pause_breakdown,
    pause_sources,
    stage_breakdown,
)


def test_replay_types_and_reports(tiny_model: InstalledModel, tmp_path: Path) -> None:
    out_file = tmp_path / "replay.json"
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "bench", "replay", "--max-keystrokes", "40",
         "--at", "end",  # 40 keys after each file's first lines: 3+ line ends, a moving head
         "--model", str(tiny_model.path), "--out", str(out_file), "--load", "1",
         "--server-config", '{"promptCache": true}'],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["keystrokes"] >= 6 * 40  # six bundled files
    assert summary["pause_requests"] >= 3
    assert summary["pause_latency_ms"]["p50"] > 0
    assert summary["rss_mb"]["max"] > 0
    as_typed = summary["pause_suggestions_as_typed"]  # checked against what was typed next
    assert 0 <= as_typed["as_typed"] <= as_typed["shown"] <= summary["pause_requests"]
    assert sum(summary["server_requests"].values()) >= summary["pause_requests"]
    raw = json.loads(out_file.read_text())["raw"]["levers"]
    assert raw["pause_latencies_ms"]
    # one record per request, told apart by its id in every document
    ids = [t["id"] for t in raw["traces"] if t["kind"] == "request"]
    assert ids
    assert len(set(ids)) == len(ids)
    assert set(raw["pause_ids"]) <= set(ids)
    stages = summary["stages_ms"]  # from the server's trace records
    assert stages["requests"] >= 1
    assert stages["prompt_pass"]["p50"] > 0
    assert stages["total"]["p50"] >= stages["decode"]["p50"]
    assert summary["load_cores"] == 1
    # typing forward at the end of a file: most answers reuse a cached prompt head
    assert stages["head_reused_share"] > 0
    assert stages["prompt_tokens_reused"]["p90"] > 0
    assert stages["prompt_tokens_computed"]["p50"] > 0
    # every pause is matched to its request's record
    assert summary["trace_records"] >= summary["pause_requests"]
    shares = summary["pause_sources_share"]
    assert set(ANSWERED) <= shares.keys()
    assert "unmatched" not in shares
    assert abs(sum(shares.values()) - 1) < 0.02
    served = summary["model_requests"]  # blocks shown early included, with their generation
    assert served["n"] >= stages["requests"]
    assert served["with_generation"] >= stages["requests"]
    assert served["first_token_ms"]["p50"] > 0
    assert served["decode_tokens"]["p90"] >= 1
    assert served["prompt_tokens_computed"]["p50"] > 0


def test_replay_switches_between_two_files(tiny_model: InstalledModel, tmp_path: Path) -> None:
    files = []
    for name, text in default_corpus()[:2]:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        files.append(str(path))
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "bench", "replay", *files, "--switch-lines", "1",
         "--max-keystrokes", "150", "--model", str(tiny_model.path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["keystrokes"] >= 2 * 100
    back = summary["pause_after_switch_ms"]  # the first pause on coming back to a file
    assert back["n"] >= 2
    assert back["p50"] > 0


def test_probe_reports_every_figure(tiny_model: InstalledModel) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "bench", "probe", "--rounds", "2",
         "--huge-mb", "0.5", "--model", str(tiny_model.path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout)
    for key in (
        "server_start_ms",
        "first_completion_ms",
        "cache_hit_ms",
        "huge_file_end_ms",
        "cancel_to_answer_ms",
    ):
        assert key in figures
    assert figures["cache_hit_ms"]["p50"] < figures["repeat_completion_ms"]["p50"] + 1000


def _request(
    msg_id: int,
    source: str,
    text: str,
    stop: str = "end_token",
    mode: str = "single",
    prompt_tokens: int = 0,
    reused_tokens: int = 0,
    decode_tokens: int = 0,
    **ms: float,
) -> TraceRecord:
    """A request's record as the server builds it and the replay parses it back."""
    result = CompletionResult(
        text,
        stop,
        prompt_tokens=prompt_tokens,
        generated_tokens=decode_tokens,
        timings_ms=dict(ms),
        mode=mode,
        reused_tokens=reused_tokens,
    )
    outcome = Outcome(Source(source), result)
    record = request_record(msg_id, "file:///a.py", msg_id, 4, outcome, 0.1)
    return TraceRecord.from_json(record.to_json())


STAGES = {"context": 1, "trigger": 0, "crossfile": 0}


def test_stage_breakdown_reads_model_answers_only() -> None:
    records = [
        _request(1, "model", "x", **STAGES, prompt=4, first_token=300, generate=500,
                 postprocess=2, total=507, prompt_tokens=120, reused_tokens=100),
        _request(2, "cache", "y", stop="", mode="", total=1),
        _request(3, "model", "z", **STAGES, prompt=3, first_token=200, generate=260,
                 postprocess=1, total=265),
        _request(4, "cancelled", "", stop="", mode=""),
    ]  # fmt: skip
    stages = stage_breakdown(records)
    assert stages["requests"] == 2
    # the eval's interpolated percentiles (eval.metrics), so both reports agree
    assert stages["prompt_pass"] == {"p50": 250.0, "p90": 290.0}
    assert stages["decode"] == {"p50": 130.0, "p90": 186.0}
    assert stages["pipeline"] == {"p50": 6.0, "p90": 6.8}
    # 120 - 100, and 0 for the request without token counts
    assert stages["prompt_tokens_computed"] == {"p50": 10.0, "p90": 18.0}
    assert stages["head_reused_share"] == 0.5


def _block_rest(msg_id: int, text: str, since_arrival: float, **ms: float) -> TraceRecord:
    result = CompletionResult(text, "end_token", 130, 12, dict(ms), mode="multi", reused_tokens=100)
    return TraceRecord.from_json(
        block_record(msg_id, "file:///a.py", result, since_arrival).to_json()
    )


def test_answers_are_told_apart_by_kind() -> None:
    """One-line answers, blocks shown whole, and a block's first line before its rest."""
    records = [
        _request(1, "model", "x", total=507),
        _request(2, "model", "y = 1", stop="first_line", mode="multi", first_line=200, total=200),
        _block_rest(2, "y = 1\n    z", 950, total=900),
        _request(3, "model", "a\n    b", stop="stop_rule", mode="multi", total=800),
        _request(4, "model", "", stop="stop_rule", total=90),
        _request(5, "cache", "x", stop="", mode="", total=1),
    ]
    kinds = answer_kinds(records)
    assert {k: v["n"] for k, v in kinds.items()} == {
        "line": 1,
        "block_whole": 1,
        "block_first_line": 1,
        "block_rest": 1,
    }
    assert kinds["block_first_line"]["p50"] == 200.0
    assert kinds["block_rest"]["p50"] == 950.0


def test_model_requests_count_a_blocks_whole_generation() -> None:
    """A first line shown early is counted with the generation its rest's record reports."""
    records = [
        _request(1, "model", "x", first_token=100, generate=400, total=410,
                 prompt_tokens=50, reused_tokens=20, decode_tokens=10),
        _request(2, "model", "y = 1", stop="first_line", mode="multi", first_line=200, total=200),
        _block_rest(2, "y = 1\n    z", 950, first_token=60, generate=900, total=905),
        _request(3, "model", "w", stop="first_line", mode="multi", first_line=90, total=90),
        _request(4, "reused", "v", stop="", mode="", first_token=60, generate=900, total=905),
        _request(5, "model", "", stop="time_budget", mode=""),  # queued past its budget
    ]  # fmt: skip
    served = model_requests(records)
    assert (served["n"], served["with_generation"]) == (4, 2)  # request 3's rest never came
    assert served["mode"] == {"line": 1, "block": 2, "not_run": 1}
    assert served["first_token_ms"] == {"p50": 80.0, "p90": 96.0}
    assert served["decode_ms"] == {"p50": 570.0, "p90": 786.0}  # 300 and 840
    assert served["prompt_tokens_computed"] == {"p50": 30.0, "p90": 30.0}  # 30 both
    assert served["prompt_tokens_reused"]["p50"] == 60.0  # 20 and 100
    assert served["decode_tokens"] == {"p50": 11.0, "p90": 11.8}
    # after the first token: 300 ms for 9 tokens, 840 ms for 11
    assert served["decode_ms_per_token"]["p50"] == round((300 / 9 + 840 / 11) / 2, 1)


def test_pause_sources_match_pauses_to_their_records_by_id() -> None:
    records = [
        _request(1, "model", "x", total=5),
        _request(2, "cache", "y", stop="", mode="", total=1),
        _request(3, "typethrough", "z", stop="", mode="", total=1),
        _request(4, "cancelled", "", stop="", mode=""),
        _request(5, "model", "q", total=5),  # a typing request: not a pause
    ]
    shares = pause_sources(records, [1, 2, 3, 4, 9])
    assert shares == {
        "cache": 0.2,
        "typethrough": 0.2,
        "prefetch": 0.0,
        "reused": 0.0,
        "model": 0.2,
        "cancelled": 0.2,
        "unmatched": 0.2,
    }
    assert pause_sources([], []) == dict.fromkeys(
        ("cache", "typethrough", "prefetch", "reused", "model"), 0.0
    )


def test_pauses_are_broken_down_by_what_the_user_got() -> None:
    """Each pause's wait split into debounce, queue, pipeline, first token, decode, transport."""
    records = [
        _request(1, "model", "x + 1", wait=2, queue=100, context=1, prompt=2, first_token=150,
                 generate=400, postprocess=3, total=406, prompt_tokens=500, reused_tokens=480,
                 decode_tokens=8),
        _request(2, "model", "y = 1", stop="first_line", mode="multi", wait=1, queue=0,
                 first_line=300, total=300),
        _block_rest(2, "y = 1\n    z", 950, first_token=120, generate=900, total=905),
        _request(3, "model", "", wait=1, queue=0, first_token=100, generate=2000, total=2001),
        _request(4, "typethrough", "z", stop="", mode="", total=1),
    ]  # fmt: skip
    report = ReplayReport(
        traces=records,
        pause_ids=[1, 2, 3, 4],
        pause_latencies_ms=[520.0, 310.0, 2010.0, 5.0],
        pause_at={1: "line_end", 2: "new_line", 3: "line_end", 4: "line_end"},
    )
    pauses = pause_breakdown(report)
    line = pauses["line"]
    assert (line["n"], line["sources"]) == (2, {"model": 1, "typethrough": 1})
    parts = line["model_p50"]
    assert (parts["wait"], parts["queue"], parts["first_token"]) == (2.0, 100.0, 150.0)
    assert (parts["decode"], parts["pipeline"], parts["decode_tokens"]) == (250.0, 6.0, 8)
    assert parts["prompt_tokens_computed"] == 20
    assert parts["transport"] == 520 - (2 + 100 + 406)
    first = pauses["block_first_line"]
    assert (first["n"], first["at"]) == (1, {"new_line": 1})
    assert first["model_p50"]["first_token"] == 120.0  # from the block's rest
    assert first["block_whole_ms"]["p50"] == 950 + (310 - 300)
    assert pauses["empty"]["n"] == 1
    assert pauses["with_suggestion"] == {"n": 3, "p50": 310.0, "p90": 478.0}
    assert pauses["slowest_tenth"]["kinds"] == {"empty": 1}
