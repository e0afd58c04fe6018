"""A test of another language passes only when it ran to its end, not when it exited 0.

Issue 24 (3): a completion that calls `exit(0)` (C++), `process.exit(0)` (JavaScript) or
`System.exit(0)` (Java) was judged passed, since the driver took exit status 0 as a pass.
Each language's test now prints a per-sample nonce after its last assertion, and the judge
requires it. These run the real toolchains in the real sandbox (skipped loudly, or failed
under `make test`, where a toolchain is missing).
"""

from __future__ import annotations

import pytest
from toolchain_outcome import require

from eval import data, toolchains
from eval.sandbox import execution

UNFINISHED = "exited 0 before the tests finished"

# language: (prompt, reference, suffix, test); the test fails unless f() returns 1
TASKS = {
    "cpp": (
        "int f() {\n",
        "    return 1;\n",
        "}\n",
        "#include <assert.h>\nint main() {\n    assert(f() == 1);\n}\n",
    ),
    "javascript": ("const f = () => {\n", "  return 1;\n", "}\n", "console.assert(f() === 1)\n"),
    "java": (
        "class Solution {\n    int f() {\n",
        "        return 1;\n",
        "    }\n}\n",
        "public class Main {\n    public static void main(String[] a) {\n"
        "        if (new Solution().f() != 1) throw new AssertionError();\n    }\n}\n",
    ),
    "go": (
        "package main\n\nfunc F() int {\n",
        "    return 1\n",
        "}\n",
        "func TestF(t *testing.T) {\n    assert.Equal(t, 1, F())\n}\n",
    ),
    "rust": (
        "fn f() -> i32 {\n",
        "    1\n",
        "}\n",
        "#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n"
        "    fn test_f() {\n        assert_eq!(f(), 1);\n    }\n}\n",
    ),
}

# (language, completion, what the judge must say): each ends the program with status 0
# before the test's assertions run
EARLY_EXITS = [
    ("cpp", "    exit(0);\n", UNFINISHED),
    ("javascript", "  process.exit(0);\n", UNFINISHED),
    (
        "javascript",
        "  console.log('OFFPILOT-END ' + '0'.repeat(32)); process.exit(0);\n",
        UNFINISHED,
    ),
    ("java", "        System.exit(0);\n        return 0;\n", UNFINISHED),
    ("java", "        Runtime.getRuntime().halt(0);\n        return 0;\n", UNFINISHED),
    # go: the completion's file cannot import os, but `testing` runs no tests and exits 0...
    (
        "go",
        "    testing.Main(func(a, b string) (bool, error) { return true, nil }, nil, nil, nil)\n"
        "    return 0\n",
        UNFINISHED,
    ),
    # ... and a TestMain of its own never calls m.Run (now a duplicate: a compile error)
    ("go", "    return 0\n}\n\nfunc TestMain(m *testing.M) {\n", toolchains.COMPILE_ERROR),
    ("go", "    os.Exit(0)\n    return 0\n", toolchains.COMPILE_ERROR),
    ("rust", "    std::process::exit(0)\n", UNFINISHED),
]


def task(language: str) -> data.Task:
    prompt, reference, suffix, test = TASKS[language]
    return data.Task(
        f"end/{language}", prompt, suffix, reference, test, "f", extra={"language": language}
    )


@pytest.mark.parametrize("language", sorted(TASKS))
def test_the_reference_runs_to_the_end_and_passes(language: str) -> None:
    t = task(language)
    out = require(toolchains.run_task(t, t.canonical_solution))
    assert out.result == execution.PASSED, (out.reason, out.output[-2000:])
    assert "OFFPILOT-END" not in out.output  # the nonce line is the judge's, not shown


@pytest.mark.parametrize(
    ("language", "completion", "said"),
    EARLY_EXITS,
    ids=[
        "cpp-exit",
        "js-process-exit",
        "js-fake-end-line",
        "java-system-exit",
        "java-halt",
        "go-testing-main",
        "go-own-testmain",
        "go-os-exit",
        "rust-process-exit",
    ],
)
def test_a_completion_that_exits_0_before_the_tests_end_is_not_passed(
    language: str, completion: str, said: str
) -> None:
    out = require(toolchains.run_task(task(language), completion))
    assert out.result != execution.PASSED, (out.reason, out.output[-2000:])
    assert said in out.reason, (out.reason, out.output[-2000:])


def test_a_wrong_answer_still_fails() -> None:
    out = require(toolchains.run_task(task("rust"), "    2\n"))
    assert out.result == execution.FAILED, out.reason


def test_the_end_line_is_found_after_more_output_than_is_kept() -> None:
    t = task("javascript")
    t = data.Task(
        t.task_id,
        t.prompt,
        t.suffix,
        t.canonical_solution,
        f"console.log('x'.repeat({2 * toolchains.OUTPUT_CAP}))\n" + t.test,
        "f",
        extra=t.extra,
    )
    out = require(toolchains.run_task(t, t.canonical_solution))
    assert out.result == execution.PASSED, out.reason
    assert "output cut at" in out.output
