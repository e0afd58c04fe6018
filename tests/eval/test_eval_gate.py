"""The gate in the benchmark: what a run shows, and `eval gate fit` on finished runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from completion import gate
from completion.engines.fake import FakeEngine
from eval import data, gate_fit, gating
from eval.records import SETTINGS, RunSettings, read_samples
from eval.run import run

# five packages of six tasks: the cross-validation has groups to hold out
TASKS = [
    {
        "task_id": f"pkg{i % 5}-1.0/mod.py:f{i}:line:L2",
        "prompt": f'def f{i}(a, b):\n    """Task {i}."""\n',
        "suffix": "\n\nx = 1\n",
        "canonical_solution": f"    return a + b + {i}\n",
        "test": f"def check(c):\n    assert c(1, 2) == {3 + i}\n",
        "entry_point": f"f{i}",
    }
    for i in range(30)
]


def _engine() -> FakeEngine:
    """Right (and sure) on two tasks in three; wrong and unsure on the rest, but two."""
    engine = FakeEngine(default="    return None", log_prob=-2.0)
    for i, t in enumerate(TASKS):
        key = t["prompt"][-12:]
        if i % 3:
            engine.script[key] = t["canonical_solution"].rstrip("\n")
            engine.log_probs[key] = -0.05
        elif i in (3, 6):  # wrong, and sure of it: a gate cannot catch these
            engine.log_probs[key] = -0.05
    return engine


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gate-run")
    data.write_jsonl(root / "pkgs.jsonl", TASKS)
    out = root / "run"
    engine = _engine()
    run(RunSettings(suite=str(root / "pkgs.jsonl"), timeout_s=5.0), out, lambda: engine, 2)
    return out


def test_a_run_records_the_gate_and_reports_it(finished_run: Path) -> None:
    records = read_samples(finished_run)
    assert len(records) == 30
    for r in records:
        assert r["gate_score"] is not None
        assert r["features"] is not None
        assert len(r["log_probs"]) > 0
        assert r["shown_passed"] == (r["passed"] if r["shown"] == r["completion"] else False)
    summary = json.loads((finished_run / "summary.json").read_text())
    no_gate = summary["gate"]["no_gate"]
    assert (no_gate["answers"], no_gate["right"], no_gate["shown_wrong"]) == (30, 20, 10)
    as_run = summary["gate"]["as_run"]
    assert as_run["shown"] == sum(bool(r["shown"]) for r in records)
    assert as_run["hidden_right"] == sum(r["passed"] and not r["shown"] for r in records)
    assert [c["threshold"] for c in summary["gate"]["curve"]] == list(gating.CURVE_THRESHOLDS)
    report = (finished_run / "report.md").read_text()
    assert "## Shown or not" in report
    assert (finished_run / "gate_precision_coverage.png").stat().st_size > 0


def test_fit_cross_validates_by_package_and_writes_a_file_the_gate_reads(
    finished_run: Path, tmp_path: Path
) -> None:
    rows = gate_fit.rows_of(finished_run)
    assert {row.group for row in rows} == {f"pkg{k}" for k in range(5)}
    out = tmp_path / "gate.json"
    lines, model = gate_fit.fit_and_report([finished_run], out, folds=3)
    assert gate.load_model(out) == model
    assert model.about["answers"] == 30
    assert model.thresholds["eager"] <= model.thresholds["balanced"] <= model.thresholds["quiet"]
    text = "\n".join(lines)
    assert "cross-validated" in text
    assert "Baseline" in text
    assert "Room" in text  # each suite's AUC and its own hindsight threshold
    # the held-out scores separate sure-and-right from unsure-and-wrong: at the balanced
    # point the gate hides most wrong answers and few right ones
    scores = gate_fit.cross_scores(rows, model.names, folds=3)
    records = gate_fit._records(rows, scores)
    balanced = gating.at_threshold(records, model.thresholds["balanced"])
    assert balanced.shown_wrong <= 4 < 10
    assert balanced.hidden_right_share <= gate_fit.HIDDEN_RIGHT["balanced"]["humaneval"]
    # 20 right Python answers: too few for thresholds of its own (MIN_LANGUAGE_RIGHT)
    assert model.by_language == {}


def _answer(language: str, score: float, passed: bool) -> dict[str, object]:
    return {
        "suite": "humaneval-x-" + language,
        "language": language,
        "completion": "x",
        "gate_score": score,
        "passed": passed,
    }


def test_a_language_gets_thresholds_of_its_own_only_where_measured_well_enough() -> None:
    # go: 60 right answers spread over the scores, wrong ones low; rust: 10 right, 10 wrong
    go = [_answer("go", 0.2 + i / 100, True) for i in range(60)]
    go += [_answer("go", 0.01 * i, False) for i in range(20)]
    rust = [_answer("rust", 0.01 + i / 100, True) for i in range(10)]
    rust += [_answer("rust", 0.3, False) for _ in range(10)]
    thresholds = gate_fit.choose_thresholds(go + rust)
    for point in gate.POINTS:
        assert set(thresholds[point]) == {"", "go"}
    # go's own balanced threshold hides at most 5% of its right answers and all but the
    # highest-scoring of its wrong ones
    balanced = thresholds["balanced"]["go"]
    shown = gating.at_threshold(go, balanced)
    assert shown.hidden_right <= 3
    assert shown.shown_wrong <= 1


def test_fit_refuses_runs_of_several_runtimes(finished_run: Path, tmp_path: Path) -> None:
    runs = []
    for engine in ("llama.cpp", "ctranslate2"):
        copy = tmp_path / engine
        shutil.copytree(finished_run, copy)
        settings = json.loads((copy / SETTINGS).read_text())
        (copy / SETTINGS).write_text(json.dumps({**settings, "engine": engine}))
        runs.append(copy)
    _, model = gate_fit.fit_and_report(runs[:1], None, folds=3)
    assert model.about["engines"] == ["llama.cpp"]
    with pytest.raises(ValueError, match="several runtimes"):
        gate_fit.fit_and_report(runs, None, folds=3)


def test_the_groups_of_tasks() -> None:
    assert gate_fit.group_of("SingleLineInfilling/HumanEval/12/L3") == "HumanEval/12"
    assert gate_fit.group_of("MultiLineInfilling/HumanEval/12/L3_L5") == "HumanEval/12"
    assert gate_fit.group_of("JavaScript/12/L5") == "HumanEval/12"  # one problem, any language
    assert gate_fit.group_of("boltons-26.2.0/boltons/iterutils.py:chunked:line:L9") == "boltons"
    assert gate_fit.group_of("more-itertools-11.2.1/x.py:f:body:L1") == "more-itertools"


def test_a_hidden_block_showing_its_first_line() -> None:
    records = [
        # hidden block, its first line passes alone and scores high enough: shown, right
        {"completion": "a\nb", "passed": True, "gate_score": 0.2, "line": "a",
         "line_gate_score": 0.9, "line_passed": True},
        # hidden, its line too unsure: nothing shown
        {"completion": "c\nd", "passed": False, "gate_score": 0.2, "line": "c",
         "line_gate_score": 0.3},
        {"completion": "e", "passed": False, "gate_score": 0.8},
        {"completion": "", "passed": False, "gate_score": None},  # no answer: not counted
        {"completion": "f", "passed": True, "gate_score": None},  # unscored: shown
    ]  # fmt: skip
    partial = gating.at_threshold(records, 0.5)
    assert (partial.answers, partial.right, partial.shown, partial.shown_right) == (4, 2, 3, 2)
    assert partial.hidden_right == 1  # the block was right, only its line was shown
    whole = gating.at_threshold(records, 0.5, first_line=False)
    assert (whole.shown, whole.shown_right, whole.shown_wrong) == (2, 1, 1)
    off = gating.at_threshold(records, None)
    assert (off.shown, off.shown_wrong, off.precision) == (4, 2, 0.5)


def test_the_scores_ranking_and_a_suites_own_threshold() -> None:
    def answer(score: float, passed: bool) -> dict[str, object]:
        return {"completion": "x", "gate_score": score, "passed": passed}

    perfect = [answer(0.9, True), answer(0.8, True), answer(0.2, False), answer(0.1, False)]
    assert gating.auc(perfect) == 1.0
    reversed_ = [answer(1 - float(r["gate_score"]), bool(r["passed"])) for r in perfect]
    assert gating.auc(reversed_) == 0.0
    # one right answer tied with one wrong answer: that pair counts half, 3.5 of 4 pairs
    tied = [answer(0.5, True), answer(0.9, True), answer(0.5, False), answer(0.1, False)]
    assert gating.auc(tied) == 0.875
    assert gating.auc([answer(0.5, True)]) is None  # no wrong answer: nothing to rank
    unscored = {"completion": "x", "gate_score": None, "passed": False}  # a server's, no log-probs
    assert gating.auc([*perfect, unscored]) == 1.0
    # 20 right answers scoring 0.50-0.69, wrong ones 0.10-0.55: a budget of 5% hides one
    # right answer at most, so the highest such threshold is 0.51
    rs = [answer(0.5 + i / 100, True) for i in range(20)]
    rs += [answer(0.1 + i / 20, False) for i in range(10)]
    t = gating.own_threshold(rs, 0.05)
    assert t == 0.51
    assert gating.at_threshold(rs, t).hidden_right == 1
    assert gating.own_threshold(rs, 0.0) == 0.5


def test_gate_fit_without_runs_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "eval", "gate", "fit", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no samples.jsonl" in done.stderr
    assert not done.stdout
