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
         "--model", str(tiny_model.path), "--out", str(out_file)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["keystrokes"] >= 3 * 40  # three bundled files
    assert summary["pause_requests"] >= 3 and summary["pause_latency_ms"]["p50"] > 0
    assert summary["rss_mb"]["max"] > 0
    assert sum(summary["server_requests"].values()) >= summary["pause_requests"]
    assert json.loads(out_file.read_text())["raw"]["levers"]["pause_latencies_ms"]


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
