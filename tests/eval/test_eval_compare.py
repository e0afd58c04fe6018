"""`offpilot eval compare` on real runs (its statistics: test_eval_metrics.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from completion.engines.ct2 import load_engine
from eval import data
from eval.compare import CompareError, CompareOptions, compare
from eval.metrics import mcnemar_exact
from eval.records import RunSettings, read_samples
from eval.run import run

REPO = Path(__file__).resolve().parents[2]

# Every post-processing stage off and the block stop off: the tiny model's junk is shown as is.
RAW = "dedupe=0,balance=0,repetition=0,reindent=0,syntax=0,keep_parse=0,indent_fit=0,block_stop=0"


def _tasks() -> list[dict[str, str]]:
    """Holes whose line is redundant: an empty completion passes, junk does not compile."""
    lines = ["x = 1", "print(a)", "# sum", "y = [a, b]", "import os", "z = {}"]
    tasks = [
        {
            "task_id": f"toy/{i}",
            "prompt": f"def f{i}(a, b):\n    {line}\n    s = a + b\n",
            "suffix": "    return s\n",
            "canonical_solution": "    s = s\n",
            "test": "def check(c):\n    assert c(1, 2) == 3\n",
            "entry_point": f"f{i}",
        }
        for i, line in enumerate(lines)
    ]
    tasks += [
        {
            "task_id": f"js/{i}",
            "language": "javascript",
            "prompt": f"function f{i}(a, b) {{\n  {line.replace('#', '//')};\n  let s = a + b;\n",
            "suffix": "  return s;\n}\n",
            "canonical_solution": "  s = s;\n",
            "test": f"const assert = require('node:assert');\nassert.strictEqual(f{i}(1, 2), 3);\n",
            "entry_point": f"f{i}",
        }
        for i, line in enumerate(lines[:3])
    ]
    return tasks


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "eval", "compare", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> tuple[Path, Path, str]:  # type: ignore[no-untyped-def]
    """Two finished runs of the tiny model on the same tasks: the editor's pipeline, and
    every post-processing stage off."""
    root = tmp_path_factory.mktemp("compare-runs")
    suite = str(root / "toy.jsonl")
    data.write_jsonl(suite, _tasks())
    engine = load_engine(tiny_model)
    for name, spec in (("editor", ""), ("raw", RAW)):
        settings = RunSettings(suite=suite, timeout_s=10.0, model="tiny", pipeline=spec)
        run(settings, root / name, lambda: engine, workers=2)
    return root / "editor", root / "raw", suite


def test_compare_two_finished_runs(two_runs: tuple[Path, Path, str], tmp_path: Path) -> None:
    editor, raw, _ = two_runs
    proc = _cli(str(editor), str(raw), "--out", str(tmp_path / "cmp"), "--resamples", "2000")
    assert proc.returncode == 0, proc.stderr
    assert "raw vs editor, all (9 tasks)" in proc.stdout
    assert "95% CI" in proc.stdout
    assert "McNemar p=" in proc.stdout
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    passed = {
        name: {r["task_id"]: r["passed"] for r in read_samples(d)}
        for name, d in (("editor", editor), ("raw", raw))
    }
    expected = sorted(t for t in passed["editor"] if passed["editor"][t] != passed["raw"][t])
    assert expected, "the raw pipeline must lose tasks the editor's passes"
    dis = result["disagreements"]
    assert sorted(d["task_id"] for d in dis) == expected
    for d in dis:
        assert d["pass@1"] == {k: float(v[d["task_id"]]) for k, v in passed.items()}
    t = result["groups"]["all"]["vs_baseline"]["raw"]
    assert t["worse"] == sum(passed["editor"][x] for x in expected)
    assert t["diff"] < 0
    assert t["p"] == mcnemar_exact(t["better"], t["worse"])
    assert result["settings_differ"] == {"pipeline": {"editor": "", "raw": RAW}}
    assert {"language python", "language javascript", "suite toy", "all"} <= set(result["groups"])
    assert result["groups"]["language javascript"]["tasks"] == 3
    for e in result["entrants"]:
        assert e["latency_ms"]["p50"] > 0
        assert e["latency_ms"]["n"] == 8  # the cold one left out
        assert e["first_token_ms"]["p99"] > 0
        assert e["decode_tokens_per_s"] > 0
    js = {e["label"]: e["by_language"]["javascript"] for e in result["entrants"]}
    assert js["raw"]["shown"] == 3  # junk, shown
    assert js["raw"]["compile_errors"] >= 1
    assert js["editor"]["shown_not_compiling"] == 0.0  # the editor's pipeline shows none
    for e in result["entrants"]:  # what each one's gate showed of its answers
        records = read_samples(editor if e["label"] == "editor" else raw)
        shown = [r for r in records if r["completion"].strip() and r["shown"].strip()]
        assert e["shown"]["shown"] == len(shown)
        assert e["shown"]["answers"] == sum(bool(r["completion"].strip()) for r in records)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## What the editor shows" in md
    assert "## Compile errors by language" in md
    assert "| javascript |" in md
    assert f"## Tasks where they disagree ({len(expected)})" in md
    assert all(f"| {x} |" in md for x in expected)
    assert "## pass@1 by language" in md
    assert "| javascript | 3 |" in md
    for png in result["plots"]:
        assert (tmp_path / "cmp" / png).stat().st_size > 1000
    assert result["plots"] == ["compare_pass1.png", "compare_diff.png", "compare_latency.png"]


def test_other_task_sets_are_refused_or_paired_loudly(
    two_runs: tuple[Path, Path, str],
    tiny_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    editor, _, suite = two_runs
    engine = load_engine(tiny_model)
    fewer = RunSettings(suite=suite, limit=5, seed=2, timeout_s=10.0, model="tiny")
    run(fewer, tmp_path / "fewer", lambda: engine, workers=2)
    left_out = sorted(
        {t["task_id"] for t in _tasks()} - {r["task_id"] for r in read_samples(tmp_path / "fewer")}
    )
    proc = _cli(str(editor), str(tmp_path / "fewer"), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 2
    assert "the runs hold different tasks" in proc.stderr
    assert f"editor (9 tasks) has 4 not in every run: {', '.join(left_out)}" in proc.stderr
    assert "limit (editor None, fewer 5)" in proc.stderr
    assert "--intersect" in proc.stderr
    assert not (tmp_path / "cmp" / "compare.json").exists()
    proc = _cli(str(editor), str(tmp_path / "fewer"), "--out", str(tmp_path / "cmp"), "--intersect")
    assert proc.returncode == 0, proc.stderr
    assert "PAIRED ON THE INTERSECTION: 5 shared tasks only" in proc.stderr
    assert "**PAIRED ON THE INTERSECTION" in (tmp_path / "cmp" / "compare.md").read_text()
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["tasks"] == 5
    with pytest.raises(CompareError, match="need at least two runs"):
        compare([editor], tmp_path / "one", CompareOptions())
    with pytest.raises(CompareError, match="not a run directory"):
        compare([editor, tmp_path / "nothing"], tmp_path / "x", CompareOptions())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "settings.json").write_text("{not json")
    with pytest.raises(CompareError, match="is not a run's settings"):
        compare([editor, broken], tmp_path / "x", CompareOptions())
    (broken / "settings.json").write_text(json.dumps({"suite": suite}))
    with pytest.raises(CompareError, match="holds no finished sample"):
        compare([editor, broken], tmp_path / "x", CompareOptions())
    (broken / "samples.jsonl").write_text("[1, 2]\n")
    with pytest.raises(CompareError, match="is not a sample record"):
        compare([editor, broken], tmp_path / "x", CompareOptions())


def test_compare_runs_the_models_first_and_resumes(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = str(tmp_path / "toy.jsonl")
    data.write_jsonl(suite, _tasks())
    out = tmp_path / "cmp"
    model = str(tiny_model.path)
    args = ["--model", model, "--model", model, "--suite", suite, "--limit", "4", "--seed", "3"]
    proc = _cli(*args, "--out", str(out), "--resamples", "1000")
    assert proc.returncode == 0, proc.stderr
    assert "tiny-2 vs tiny, all (4 tasks)" in proc.stdout
    assert "no significant difference" in proc.stdout  # the same model, greedy: identical
    for label in ("tiny", "tiny-2"):
        settings = json.loads((out / label / "settings.json").read_text())
        assert (settings["suite"], settings["limit"], settings["seed"]) == (suite, 4, 3)
        assert len(read_samples(out / label)) == 4
    assert json.loads((out / "compare.json").read_text())["disagreements"] == []
    again = _cli(*args, "--out", str(out), "--resamples", "1000")  # resumes: nothing to do
    assert again.returncode == 0
    assert all(len(read_samples(out / x)) == 4 for x in ("tiny", "tiny-2"))
    bad = _cli("--model", model, "--out", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "need --suite" in bad.stderr


def test_a_run_still_being_written_is_read_not_rewritten(
    two_runs: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """compare may read a run whose writer is still appending: a cut last line is skipped,
    and the file is left exactly as it was (a rewrite would lose the writer's appends)."""
    editor, raw, _ = two_runs
    live = tmp_path / "live"
    shutil.copytree(raw, live)
    with open(live / "samples.jsonl", "a") as fh:
        fh.write('{"task_id": "toy/0", "comp')
    before = (live / "samples.jsonl").read_bytes()
    result = compare([editor, live], tmp_path / "cmp", CompareOptions(resamples=500))
    assert result["tasks"] == 9
    assert (live / "samples.jsonl").read_bytes() == before
