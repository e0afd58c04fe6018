"""HumanEval-X suites: the real toolchains in the real sandbox agree with the references.

These compile and run programs with node, go, javac/java, g++ and rustc (`make setup`
installs them, scripts/sandbox-setup.sh). A missing toolchain fails the test under `make
test` (OFFPILOT_REQUIRE_REAL_MODEL=1) and skips it loudly elsewhere.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from toolchain_outcome import require

from completion.engines.fake import FakeEngine
from eval import data, toolchains
from eval.records import RunSettings, read_samples, summarize
from eval.repost import repost
from eval.run import judge, request_for, run
from eval.sandbox import execution
from eval.suites import humaneval_x

PER_SUITE = 3
RECORD = {"completion": "x", "latency_ms": 1.0, "timings_ms": {}}  # what summaries read


def task(language: str, prompt: str, middle: str, suffix: str, test: str) -> data.Task:
    return data.Task(
        f"t/{language}", prompt, suffix, middle, test, "f", extra={"language": language}
    )


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(data.X_SUITES))
def test_reference_passes_and_an_empty_hole_fails(suite: str) -> None:
    tasks = data.load_suite(suite)
    assert tasks, suite
    chosen = random.Random(f"agree/{suite}").sample(tasks, PER_SUITE)
    todo = [(t, c) for t in chosen for c in (t.canonical_solution, "")]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda tc: toolchains.run_task(*tc), todo))
    for (t, completion), out in zip(todo, outcomes, strict=True):
        require(out)
        if completion:
            assert out.result == execution.PASSED, (t.task_id, out.reason, out.output[-2000:])
        else:
            assert out.result != execution.PASSED, t.task_id


def test_shipped_suites_are_whole_line_holes_of_the_reference() -> None:
    for suite in sorted(data.X_SUITES):
        short, kind = suite.removeprefix("humaneval-x-").rsplit("-", 1)
        language = humaneval_x.LANGUAGES[short][0]
        tasks = data.load_suite(suite)
        quota = humaneval_x.BuildOptions().single if kind == "single" else 80
        assert 0 < len(tasks) <= quota, suite
        assert len({t.task_id for t in tasks}) == len(tasks)
        per_problem: dict[str, int] = {}
        for t in tasks:
            assert data.language(t) == language, t.task_id
            assert data.whole_lines(t), t.task_id
            lines = t.canonical_solution.splitlines()
            assert (len(lines) == 1) if kind == "single" else (2 <= len(lines) <= 6)
            assert t.canonical_solution.strip(" \n{}();,[]"), t.task_id
            problem = t.task_id.rsplit("/", 1)[0]
            per_problem[problem] = per_problem.get(problem, 0) + 1
        assert max(per_problem.values()) <= humaneval_x.BuildOptions().per_problem


def test_holes_are_code_lines_and_runs_of_two_to_six() -> None:
    p = humaneval_x.Problem(
        "X/0",
        "cpp",
        "int f(int a){\n",
        "    int b = a;\n    if (b) {\n        b++;\n    }\n\n    return b;\n}",
        "",
        "f",
    )
    assert humaneval_x.holes(p, "single") == [(0, 1), (1, 2), (2, 3), (5, 6)]
    multi = humaneval_x.holes(p, "multi")
    assert (0, 2) in multi
    assert (1, 4) in multi
    assert (0, 6) in multi
    assert (3, 5) not in multi  # starts with a brace
    assert all(end < 7 for _, end in multi)  # the last line has no newline: never in a hole
    assert (0, 5) not in multi  # ends on the blank line
    t = p.task(1, 4, "multi")
    assert t.canonical_solution == "    if (b) {\n        b++;\n    }\n"
    assert data.filled(t, t.canonical_solution) == p.head + p.body
    assert t.task_id == "X/0/L1-L3"
    assert t.kind == "multi-line: 2-3 lines"


def test_problems_are_assembled_as_upstream_does() -> None:
    go = humaneval_x.problem(
        "go",
        {
            "task_id": "Go/0",
            "prompt": "func Add(a int) int {\n",
            "declaration": "\nfunc Add(a int) int {\n",
            "canonical_solution": "    return a\n}\n",
            "test": "",
        },
    )
    assert go.head.startswith("package main\n")
    assert go.entry_point == "Add"
    rust = humaneval_x.problem(
        "rust",
        {
            "task_id": "Rust/0",
            "prompt": "/* doc */\n",
            "declaration": "use std::cmp::max;\nuse rand::Rng;\nuse regex::Regex;\n"
            "fn add(a: i32) -> i32{\n",
            "canonical_solution": "    a\n}\n",
            "test": "",
        },
    )
    assert "rand" not in rust.head
    assert "regex" not in rust.head
    assert "use std::cmp" in rust.head
    assert rust.entry_point == "add"
    tc = toolchains.toolchain("go")
    source = toolchains.program_source(tc, go.task(0, 1, "single"), "    return a\n")
    assert source.startswith('package main\nimport (\n    "testing"\n')


@pytest.mark.parametrize("language", sorted(toolchains.TOOLCHAINS))
def test_a_compile_error_is_classified_as_one(language: str) -> None:
    prompts = {
        "javascript": ("const f = () => {\n", "}\nconsole.assert(f() === 1)\n"),
        "go": ("package main\n\nfunc F() int {\n", "}\n"),
        "java": ("class Solution {\n    int f() {\n", "    }\n}\n"),
        "cpp": ("int f() {\n", "}\nint main() { return f() == 1 ? 0 : 1; }\n"),
        "rust": ("fn f() -> i32 {\n", "}\n"),
    }
    prompt, suffix = prompts[language]
    tests = {"java": "public class Main { public static void main(String[] a) {} }\n"}
    t = task(language, prompt, "    return 1;\n", suffix, tests.get(language, ""))
    out = require(toolchains.run_task(t, "    return )(;\n"))
    assert out.result == execution.ERROR, out.reason
    assert toolchains.is_compile_error(out.reason), out.reason


def test_a_failed_console_assert_fails_the_javascript_test() -> None:
    t = task(
        "javascript", "const f = () => {\n", "  return 2;\n", "}\n", "console.assert(f() === 2)\n"
    )
    assert require(toolchains.run_task(t, "  return 2;\n")).result == execution.PASSED
    wrong = toolchains.run_task(t, "  return 1;\n")
    assert wrong.result == execution.FAILED, wrong.reason
    assert "Assertion failed" in wrong.reason, wrong.reason


@pytest.mark.parametrize(
    ("language", "prompt", "loop", "suffix", "test"),
    [
        (
            "go",
            "package main\n\nfunc F() int {\n",
            "    for {\n    }\n",
            "}\n",
            "func TestF(t *testing.T) {\n    assert.Equal(t, 1, F())\n}\n",
        ),
        ("cpp", "int f() {\n", "    while (true) {}\n", "}\n", "int main() { return f(); }\n"),
    ],
)
def test_a_looping_program_is_timed_out(
    language: str, prompt: str, loop: str, suffix: str, test: str
) -> None:
    t = task(language, prompt, loop, suffix, test)
    out = require(toolchains.run_task(t, loop, run_s=2.0))
    assert out.result == execution.TIMEOUT, out.reason
    assert "test run past 2 s" in out.reason, out.reason
    assert out.ms < 60_000


def test_a_missing_toolchain_is_named_and_left_out_of_pass_at_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution.sandbox()  # probed with the real PATH (bwrap, setpriv)
    go = task(
        "go",
        "package main\n\nfunc F() int {\n",
        "    return 1\n",
        "}\n",
        "func TestF(t *testing.T) {\n    assert.Equal(t, 1, F())\n}\n",
    )
    js = task(
        "javascript", "const f = () => {\n", "  return 2;\n", "}\n", "console.assert(f() === 2)\n"
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no go, no node
    record = judge(go, go.canonical_solution, 5.0)
    assert record["result"] == execution.ERROR
    assert not record["passed"]
    assert record["reason"] == "toolchain missing: go (install golang-go)"
    monkeypatch.undo()
    passed = judge(js, js.canonical_solution, 5.0)
    require(execution.Outcome(passed["result"], passed["reason"], 0, "", 0.0))
    records = [
        {"task_id": go.task_id, "language": "go", **RECORD, **record},
        {"task_id": js.task_id, "language": "javascript", **RECORD, **passed},
    ]
    summary = summarize(RunSettings(suite="mixed"), records, tmp_path)
    assert summary["pass@1"] == 1.0
    assert summary["tasks"] == 1
    assert summary["skipped"] == {
        "samples": 1,
        "reasons": {"toolchain missing: go (install golang-go)": 1},
    }
    assert summary["language"] == "mixed"
    assert summary["by_language"]["go"]["skipped"] == 1
    assert summary["by_language"]["go"]["samples"] == 0
    assert summary["by_language"]["javascript"]["pass@1"] == 1.0


def test_summary_gives_pass_at_1_and_compile_errors_per_language(tmp_path: Path) -> None:
    def rec(tid: str, lang: str, passed: bool, reason: str, completion: str = "x") -> dict:
        result = "passed" if passed else "error" if reason.startswith("compile") else "failed"
        return {
            **RECORD,
            "task_id": tid,
            "language": lang,
            "passed": passed,
            "result": result,
            "reason": reason,
            "completion": completion,
            "exec_ms": 100.0,
        }

    records = [
        rec("a/0", "rust", True, "passed"),
        rec("a/1", "rust", False, "compile error: error[E0308]: mismatched types"),
        rec("a/2", "rust", False, "compile error: unclosed delimiter", completion=""),
        rec("a/3", "rust", False, "test failed: exit status 101"),
        rec("b/0", "java", True, "passed"),
    ]
    summary = summarize(RunSettings(suite="mixed"), records, tmp_path)
    rust = summary["by_language"]["rust"]
    assert rust["pass@1"] == 0.25
    assert rust["compile_errors"] == 2
    assert rust["compile_error_share"] == 0.5
    assert rust["shown"] == 3
    assert rust["shown_not_compiling"] == pytest.approx(1 / 3)
    assert summary["by_language"]["java"]["pass@1"] == 1.0
    assert summary["pass@1"] == pytest.approx(2 / 5)
    assert summary["skipped"]["samples"] == 0


def test_request_names_the_language_and_its_file() -> None:
    for suite, name in [
        ("humaneval-x-go-single", "main.go"),
        ("humaneval-x-java-multi", "Main.java"),
    ]:
        t = data.load_suite(suite)[0]
        request = request_for(t)
        assert request.language == data.language(t)
        assert request.path == name
        assert request.text == data.document(t)[0]


def test_run_and_repost_a_javascript_suite(tmp_path: Path) -> None:
    tasks = [
        data.Task(
            f"js/{name}",
            f"const {name} = (a) => {{\n",
            "}\n",
            body,
            f"console.assert({name}(2) === 4)\n",
            name,
            extra={"language": "javascript"},
        )
        for name, body in (("add2", "  return a + 2;\n"), ("dbl", "  return a * 2;\n"))
    ]
    suite = tmp_path / "tasks.jsonl"
    data.write_jsonl(suite, [t.to_json() for t in tasks])
    engine = FakeEngine(script={"add2 =": "  return a + 2;", "dbl =": "  return a - 2;"})
    settings = RunSettings(suite=str(suite), timeout_s=10.0, model="fake")
    summary = run(settings, tmp_path / "base", lambda: engine)
    records = read_samples(tmp_path / "base")
    for r in records:
        require(execution.Outcome(r["result"], r["reason"], 0, "", 0.0))
    assert {r["task_id"]: r["passed"] for r in records} == {"js/add2": True, "js/dbl": False}
    assert all(r["language"] == "javascript" for r in records)
    assert summary["language"] == "javascript"
    assert summary["pass@1"] == 0.5
    assert summary["by_language"]["javascript"]["samples"] == 2
    assert "## By language" in (tmp_path / "base" / "report.md").read_text()
    again = repost(tmp_path / "base", tmp_path / "again", "dedupe=0")
    assert again["language"] == "javascript"
    assert again["pass@1"] == 0.5
