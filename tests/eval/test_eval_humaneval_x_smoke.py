"""CI smoke: `offpilot eval run` on 5 HumanEval-X tasks per language, real model and toolchains.

Not a quality gate (no pass-rate threshold): every sample must be generated and judged by its
language's real toolchain, none skipped for a missing one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from completion.models.store import InstalledModel

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

LIMIT = 5


@pytest.mark.parametrize("short", ["js", "go", "java", "cpp", "rust"])
def test_eval_run_judges_five_tasks(short: str, real_model: InstalledModel, tmp_path: Path) -> None:
    out = tmp_path / short
    suite = f"humaneval-x-{short}-single"
    cmd = [sys.executable, "-m", "offpilot.cli", "eval", "run", "--suite", suite]
    cmd += ["--limit", str(LIMIT), "--out", str(out), "--model", str(real_model.path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == LIMIT
    assert summary["tasks"] == LIMIT
    assert summary["skipped"] == {"samples": 0, "reasons": {}}
    [(language, figures)] = summary["by_language"].items()
    assert summary["language"] == language != "python"
    assert figures["samples"] == LIMIT
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == LIMIT
    assert all(r["result"] in ("passed", "failed", "error", "timeout") for r in records)
    assert not [r["reason"] for r in records if r["reason"].startswith("toolchain missing")]
    assert "## By language" in (out / "report.md").read_text()
