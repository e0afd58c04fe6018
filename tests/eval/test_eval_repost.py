"""`offpilot eval repost`: a run's raw output post-processed again with stages switched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from completion.engines.fake import FakeEngine
from eval import data
from eval.records import RunSettings, read_samples
from eval.repost import RepostError, repost
from eval.run import run

REPO = Path(__file__).resolve().parents[2]

# Hole 0: the model writes the body at the header's depth (`reindent` fixes it). Hole 1: the
# model repeats the line above (`dedupe` drops it; the empty line then passes). Hole 2: right.
TASKS = [
    {
        "task_id": "t/0",
        "prompt": "def f(a, b):\n    if a:\n",
        "suffix": "\n    return b\n",
        "canonical_solution": "        return a\n",
        "test": "def check(c):\n    assert c(1, 2) == 1 and c(0, 2) == 2\n",
        "entry_point": "f",
    },
    {
        "task_id": "t/1",
        "prompt": "def g(a):\n    a.append(1)\n",
        "suffix": "\n    return a\n",
        "canonical_solution": "\n",
        "test": "def check(c):\n    assert c([]) == [1]\n",
        "entry_point": "g",
    },
    {
        "task_id": "t/2",
        "prompt": "def h(a):\n",
        "suffix": "\n",
        "canonical_solution": "    return a * 2\n",
        "test": "def check(c):\n    assert c(2) == 4\n",
        "entry_point": "h",
    },
]
OUTPUTS = {
    "if a:\n": "    return a",
    "append(1)\n": "    a.append(1)",
    "h(a):\n": "    return a * 2",
}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    suite = tmp_path / "tasks.jsonl"
    data.write_jsonl(suite, TASKS)
    engine = FakeEngine(script=OUTPUTS)
    out = tmp_path / "base"
    summary = run(RunSettings(suite=str(suite), timeout_s=5.0, model="fake"), out, lambda: engine)
    assert summary["pass@1"] == 1.0
    return out


def completions(out: Path) -> dict[str, str]:
    return {r["task_id"]: r["completion"] for r in read_samples(out)}


def test_switching_a_stage_changes_only_what_it_touches(base: Path, tmp_path: Path) -> None:
    raw = {r["task_id"]: r["raw"] for r in read_samples(base)}
    assert raw == {"t/0": "    return a", "t/1": "    a.append(1)", "t/2": "    return a * 2"}
    assert completions(base) == {"t/0": "        return a", "t/1": "", "t/2": "    return a * 2"}

    summary = repost(base, tmp_path / "noindent", "reindent=0")
    assert summary["pass@1"] == pytest.approx(2 / 3)
    assert summary["changed"] == 1
    records = {r["task_id"]: r for r in read_samples(tmp_path / "noindent")}
    assert records["t/0"]["completion"] == "    return a"
    assert records["t/0"]["result"] == "error"
    assert "IndentationError" in records["t/0"]["reason"]
    assert records["t/0"]["retested"]
    assert not records["t/2"]["retested"]
    # the gate judged the changed completion again (all or nothing)
    assert records["t/0"]["shown"] in ("    return a", "")
    assert records["t/0"]["gate_score"] is not None
    assert records["t/0"]["features"]["lp_mean"] < 0
    assert not records["t/0"]["shown_passed"]
    assert summary["settings"]["pipeline"] == "reindent=0"
    assert summary["settings"]["reposted_from"] == str(base)

    both = repost(base, tmp_path / "neither", "reindent=0,dedupe=0")
    assert both["pass@1"] == pytest.approx(1 / 3)
    assert both["changed"] == 2
    assert completions(tmp_path / "neither")["t/1"] == "    a.append(1)"
    assert (tmp_path / "neither" / "report.md").read_text().count("pass@1") >= 1


def test_only_post_processing_switches_and_runs_with_raw_output(base: Path, tmp_path: Path) -> None:
    with pytest.raises(RepostError, match="only post-processing switches"):
        repost(base, tmp_path / "x", "multiline=1")
    with pytest.raises(RepostError, match="nothing to switch"):
        repost(base, tmp_path / "x", " ")
    old = tmp_path / "old"
    old.mkdir()
    (old / "settings.json").write_text((base / "settings.json").read_text())
    lines = [json.loads(x) for x in (base / "samples.jsonl").read_text().splitlines()]
    for r in lines:
        del r["raw"]
    (old / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(RepostError, match="before samples kept their raw output"):
        repost(old, tmp_path / "x", "dedupe=0")
    with pytest.raises(RepostError, match="holds no run"):
        repost(tmp_path / "missing", tmp_path / "x", "dedupe=0")


def test_cli_reports_pass_at_1_and_refuses_bad_switches(base: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "offpilot.cli", "eval", "repost", str(base)]
    ok = subprocess.run(
        [*cmd, "--set", "dedupe=0", "--out", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout)
    assert line["pass@1"] == pytest.approx(2 / 3)
    assert line["changed"] == 1
    bad = subprocess.run(
        [*cmd, "--set", "trigger=0", "--out", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert bad.returncode == 2
    assert "only post-processing switches" in bad.stderr


def test_block_stop_cuts_the_uncut_output_of_a_run_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model writes past the function (then `assert False`); the block stop cuts it."""
    suite = tmp_path / "tasks.jsonl"
    data.write_jsonl(suite, [TASKS[2]])
    engine = FakeEngine(default="    return a * 2\n\n\nprint(h(3))\nassert False\n")
    spec = "multiline=1,block_stop=0"
    monkeypatch.setenv("OFFPILOT_PIPELINE", spec)
    settings = RunSettings(suite=str(suite), timeout_s=5.0, model="fake", pipeline=spec)
    assert run(settings, tmp_path / "uncut", lambda: engine)["pass@1"] == 0.0
    monkeypatch.delenv("OFFPILOT_PIPELINE")
    summary = repost(tmp_path / "uncut", tmp_path / "cut", "block_stop=1")
    assert summary["pass@1"] == 1.0
    (record,) = read_samples(tmp_path / "cut")
    assert record["completion"] == "    return a * 2"
    assert record["stop_reason"] == "stop_rule"
    with pytest.raises(RepostError, match="only from a run made with block_stop=0"):
        repost(tmp_path / "cut", tmp_path / "again", "block_stop=1")


def test_first_line_cuts_every_completion_to_its_first_line(tmp_path: Path) -> None:
    """The bare-model baseline: `first_line=1` with every stage off."""
    suite = tmp_path / "tasks.jsonl"
    task = {**TASKS[2], "canonical_solution": "    b = a * 2\n    return b\n"}
    data.write_jsonl(suite, [task])
    engine = FakeEngine(script={"h(a):\n": "    b = a * 2\n    return b\n\ndef other():"})
    settings = RunSettings(suite=str(suite), timeout_s=5.0, model="fake")
    run(settings, tmp_path / "base", lambda: engine)
    assert read_samples(tmp_path / "base")[0]["mode"] == "multi"
    assert completions(tmp_path / "base") == {"t/2": "    b = a * 2\n    return b"}
    off = ",".join(f"{s}=0" for s in ("dedupe", "balance", "repetition", "reindent"))
    summary = repost(tmp_path / "base", tmp_path / "bare", f"first_line=1,{off}")
    assert completions(tmp_path / "bare") == {"t/2": "    b = a * 2"}
    assert summary["pass@1"] == 0.0
    assert summary["changed"] == 1
    with pytest.raises(RepostError, match="only post-processing switches"):
        repost(tmp_path / "base", tmp_path / "x", "first_lines=1")
