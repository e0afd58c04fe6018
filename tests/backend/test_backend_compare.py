"""`offpilot eval compare --model M --backend URL`: the local engine and llama.cpp on the same
tasks, in one report, with the real 0.5B model on both sides (int8 CTranslate2 here, the
Q4_K_M GGUF it was converted from there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from llama_helpers import LlamaServer

from completion.models.store import InstalledModel

pytestmark = [pytest.mark.backend, pytest.mark.real_model]


def test_compare_a_model_and_a_backend(
    llama: LlamaServer, real_model: InstalledModel, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "eval", "compare", "--out", str(out),
         "--model", str(real_model.path), "--backend", llama.url,
         "--backend-model", str(real_model.path),
         "--suite", "humaneval-single-line", "--limit", "3", "--time-budget", "30",
         "--workers", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "compare.json").read_text())
    labels = [e["label"] for e in report["entrants"]]
    backend_label = labels[1]
    assert backend_label.startswith("127.0.0.1-")
    runs = {
        label: [json.loads(x) for x in (out / label / "samples.jsonl").read_text().splitlines()]
        for label in labels
    }
    assert [len(r) for r in runs.values()] == [3, 3]
    settings = json.loads((out / backend_label / "settings.json").read_text())
    assert settings["backend"] == llama.url
    # llama.cpp answered (no engine error) and both sides scored the same three tasks
    assert all(r["stop_reason"] != "backend_error" for r in runs[backend_label])
    assert {r["task_id"] for r in runs[labels[0]]} == {r["task_id"] for r in runs[backend_label]}
    assert f"{backend_label} vs {labels[0]}" in proc.stdout
