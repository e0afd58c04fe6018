"""The benchmark commands run end to end against the real server (tiny model, short runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from completion.model_store import InstalledModel


def test_replay_types_and_reports(tiny_model: InstalledModel, tmp_path: Path) -> None:
    out_file = tmp_path / "replay.json"
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "bench", "replay", "--max-keystrokes", "40",
         "--model", str(tiny_model.path), "--out", str(out_file), "--load", "1",
         "--server-config", '{"promptCache": true}'],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["keystrokes"] >= 3 * 40  # three bundled files
    assert summary["pause_requests"] >= 3 and summary["pause_latency_ms"]["p50"] > 0
    assert summary["rss_mb"]["max"] > 0
    assert sum(summary["server_requests"].values()) >= summary["pause_requests"]
    assert json.loads(out_file.read_text())["raw"]["levers"]["pause_latencies_ms"]
    stages = summary["stages_ms"]  # read from the server's own log
    assert stages["requests"] >= 1
    assert stages["prompt_pass"]["p50"] > 0 and stages["total"]["p50"] >= stages["decode"]["p50"]
    assert summary["load_cores"] == 1
    # typing forward at the end of a file: most answers reuse a cached prompt head
    assert stages["head_reused_share"] > 0 and stages["prompt_tokens_reused"]["p90"] > 0
    assert stages["prompt_tokens_computed"]["p50"] > 0


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


def test_stage_breakdown_reads_model_answers_only() -> None:
    from offpilot.replay import stage_breakdown

    log = "\n".join(
        [
            "req 1: file:///a.py:1:4 source=model stop=end_token convert=0.1ms context=1ms "
            "trigger=0ms prompt=4ms first_token=300ms generate=500ms postprocess=2ms "
            "total=507ms prompt_tokens=120 reused_tokens=100 -> 'x'",
            "req 2: file:///a.py:1:5 source=cache stop=None convert=0.1ms total=1ms -> 'y'",
            "req 3: file:///a.py:2:0 source=model stop=end_token convert=0.1ms context=1ms "
            "trigger=0ms prompt=3ms first_token=200ms generate=260ms postprocess=1ms "
            "total=265ms -> 'z'",
        ]
    )
    stages = stage_breakdown(log)
    assert stages["requests"] == 2
    # the eval's interpolated percentiles (eval.metrics), so both reports agree
    assert stages["prompt_pass"] == {"p50": 250.0, "p90": 290.0}
    assert stages["decode"] == {"p50": 130.0, "p90": 186.0}
    assert stages["pipeline"] == {"p50": 6.0, "p90": 6.8}
    # 120 - 100, and 0 for the line that logs no token counts
    assert stages["prompt_tokens_computed"] == {"p50": 10.0, "p90": 18.0}
    assert stages["head_reused_share"] == 0.5


def test_answers_are_told_apart_by_kind() -> None:
    """One-line answers, blocks shown whole, and a block's first line before its rest."""
    from offpilot.replay import answer_kinds

    log = "\n".join(
        [
            "req 1: f:1:4 source=model stop=end_token convert=0.1ms total=507ms -> 'x'",
            "req 2: f:2:4 source=model stop=first_line convert=0.1ms first_line=200ms "
            "total=200ms -> 'y = 1'",
            "block ready: source=block stop=end_token total=900ms since_arrival=950ms "
            "prompt_tokens=3 reused_tokens=0 -> 'y = 1\\n    z'",
            "req 3: f:3:4 source=model stop=stop_rule convert=0.1ms total=800ms -> 'a\\n    b'",
            "req 4: f:4:4 source=model stop=stop_rule convert=0.1ms total=90ms -> ''",
            "req 5: f:4:4 source=cache stop= convert=0.1ms total=1ms -> 'x'",
        ]
    )
    kinds = answer_kinds(log)
    assert {k: v["n"] for k, v in kinds.items()} == {
        "line": 1,
        "block_whole": 1,
        "block_first_line": 1,
        "block_rest": 1,
    }
    assert kinds["block_first_line"]["p50"] == 200.0 and kinds["block_rest"]["p50"] == 950.0
