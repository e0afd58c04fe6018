"""Tasks from real code: blank code that a project's own tests exercise.

1. Trace the project's tests once (`eval.suites.tracing`): for every passing test, which of the
   project's functions it calls.
2. Pick holes in each exercised function from its syntax tree (`eval.suites.holes`): a line, a
   block or the whole body. Holes are whole lines.
3. Each task's `test` is a driver that runs only the tests that called that function,
   against the project with the filled-in file (see `eval.data` for the project format).
   Files reached through a symlink are never task sources (see `data.project_file`).
4. Verify: the reference filling must pass, and the empty filling must fail (else the tests
   do not notice the hole and the task is dropped).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from eval import data
from eval.sandbox import execution
from eval.suites.holes import Hole, holes, python_parser
from eval.suites.tracing import find_tests, is_test, trace

MAX_TESTS_PER_TASK = 40

# The program of a task's test (it runs in the sandbox, never here); see `task_test`
_TASK_TEST = resources.files("eval.suites").joinpath("task_test.py").read_text(encoding="utf-8")


def task_test(tests: list[str], path: str) -> str:
    """A task's `test`: the task-test program and one call with the task's data.

    The tasks file keeps the whole program, so a task runs without this module; the data
    goes in as literals of plain strings (`repr`), never spliced into the program's code.
    """
    call = f"main({data.PROJECT_DIR_NAME!r}, {list(tests)!r}, {path!r})"
    return f'{_TASK_TEST}\n\nif __name__ == "__main__":\n    {call}\n'


def imported_names(project: Path, rel: str, text: str) -> set[str]:
    """The names a project file binds by importing them from the project's other modules.

    `from .mod import a as b` gives `b`, `import pkg.mod as m` and `from pkg import mod` give
    `m` and `mod` (their attributes come from that module); standard-library and third-party
    imports resolve to no project file and give nothing.
    """
    from completion import crossfile

    current = str((project / rel).resolve())
    names: set[str] = set()
    for imp in crossfile.parse_imports(text):
        if imp.name == "*":
            continue
        if crossfile.resolve_module(imp.module, imp.level, current, str(project)) is not None:
            names.add(imp.alias.split(".")[0])
    return names


def uses_imported(middle: str, names: set[str]) -> list[str]:
    """The imported names the code `middle` uses (sorted)."""
    return sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", middle)) & names)


def build_tasks(
    project: Path,
    calls: dict[tuple[str, int], list[str]],
    rng: random.Random,
    tests: list[str],
    kinds: tuple[str, ...] = ("line", "block", "body"),
    cross_file: bool = False,
) -> list[data.Task]:
    """Every candidate task: up to one hole of each kind per exercised function.

    `cross_file` keeps only holes whose reference uses a name imported from another module of
    the project (the task records them as `imported_names`).
    """
    by_file: dict[str, dict[int, list[str]]] = {}
    for (rel, line), ids in calls.items():
        if not is_test(Path(rel)) and _plain_file(project, rel):
            by_file.setdefault(rel, {})[line - 1] = ids
    parser = python_parser()
    tasks = []
    for rel in sorted(by_file):
        text = (project / rel).read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        imported = imported_names(project, rel, text)
        rows = by_file[rel]
        per_fn: dict[int, list[Hole]] = {}
        for hole in holes(text.encode("utf-8"), set(rows), parser):
            per_fn.setdefault(hole.def_row, []).append(hole)
        for def_row, cands in sorted(per_fn.items()):
            ids = rows.get(def_row) or next(
                (rows[r] for r in rows if r < def_row and def_row - r < 10), []
            )
            if not ids:
                continue
            chosen_tests = _pick_tests(ids, rng)
            for kind in kinds:
                options = [h for h in cands if h.kind == kind]
                if cross_file:
                    options = [
                        h
                        for h in options
                        if uses_imported("".join(lines[h.start : h.end]), imported)
                    ]
                if not options:
                    continue
                hole = rng.choice(options)
                prompt = "".join(lines[: hole.start])
                middle = "".join(lines[hole.start : hole.end])
                suffix = "".join(lines[hole.end :])
                used = uses_imported(middle, imported)
                extra: dict[str, object] = {"tests": chosen_tests}
                if used:
                    extra["imported_names"] = used
                tasks.append(
                    data.Task(
                        task_id=f"{project.name}/{rel}:{hole.function}:{kind}:L{hole.start + 1}",
                        prompt=prompt,
                        suffix=suffix,
                        canonical_solution=middle,
                        test=task_test(chosen_tests, rel),
                        entry_point=hole.function,
                        kind=kind,
                        project=str(project.resolve()),
                        path=rel,
                        extra=extra,
                    )
                )
    return tasks


def _plain_file(project: Path, rel: str) -> bool:
    try:
        data.project_file(project, rel)
    except data.TaskPathError:
        return False
    return True


def _pick_tests(ids: list[str], rng: random.Random) -> list[str]:
    if len(ids) <= MAX_TESTS_PER_TASK:
        return sorted(ids)
    return sorted(rng.sample(ids, MAX_TESTS_PER_TASK))


def verify(task: data.Task, timeout_s: float) -> str | None:
    """None if the reference passes and the empty filling fails, else why the task is bad."""
    limits = execution.Limits(timeout_s=timeout_s)
    try:
        good = execution.run_program(
            data.program(task, task.canonical_solution),
            limits,
            data.setup_for(task, task.canonical_solution),
        )
        if good.result != execution.PASSED:
            return f"reference does not pass: {good.reason}"
        blank = execution.run_program(data.program(task, ""), limits, data.setup_for(task, ""))
    except data.TaskPathError as exc:
        return f"task refused: {exc}"
    if blank.result == execution.PASSED:
        return "the tests pass with the hole left empty"
    return None


def make_tasks(
    project: Path,
    out: Path,
    limit: int | None = None,
    seed: int = 0,
    tests_dir: Path | None = None,
    verify_tasks: bool = True,
    timeout_s: float = 300.0,
    workers: int | None = None,
    log: Callable[[str], None] = lambda _m: None,
    kinds: tuple[str, ...] = ("line", "block", "body"),
    cross_file: bool = False,
    calls: dict[tuple[str, int], list[str]] | None = None,
) -> list[data.Task]:
    """Build, verify and write the tasks of a project; returns what was written.

    `kinds` limits the hole kinds; `cross_file` keeps only holes that use a name imported
    from another module of the project (see `build_tasks`). `calls`, a trace already made
    (`tracing.trace`), saves tracing again for a second draw from the same project.
    """
    project = project.resolve()
    tests = [str(tests_dir)] if tests_dir else find_tests(project)
    if not tests:
        raise FileNotFoundError(f"no tests found in {project}")
    if calls is None:
        log(f"tracing {project.name}: pytest {' '.join(tests)}")
        calls = trace(project, tests, timeout_s)
    rng = random.Random(seed)
    candidates = build_tasks(project, calls, rng, tests, kinds, cross_file)
    rng.shuffle(candidates)
    log(
        f"{len(candidates)} candidate holes in {len({t.entry_point for t in candidates})} functions"
    )
    kept: list[data.Task] = []
    if verify_tasks:
        want = limit or len(candidates)
        with ThreadPoolExecutor(workers or 2) as pool:
            for start in range(0, len(candidates), 8):
                batch = candidates[start : start + 8]
                for task, why in zip(
                    batch, pool.map(lambda t: _verify_one(t, timeout_s), batch), strict=True
                ):
                    if why is None:
                        kept.append(task)
                    else:
                        log(f"dropped {task.task_id}: {why}")
                if len(kept) >= want:
                    break
        kept = kept[:want]
    else:
        kept = candidates[:limit] if limit else candidates
    kept.sort(key=lambda t: t.task_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.write_jsonl(out, [t.to_json() for t in kept])
    return kept


def _verify_one(task: data.Task, timeout_s: float) -> str | None:
    return verify(task, min(timeout_s, 30.0))
