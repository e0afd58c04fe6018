"""Infilling suites from HumanEval-X: holes in the reference bodies of five languages.

HumanEval-X (Zheng et al. 2023) has the 164 HumanEval problems in C++, Go, Java,
JavaScript and Rust, each a generation task: `prompt` (signature and doc comment), the
reference body `canonical_solution` and a `test` program. This module blanks whole lines of
each body, as HumanEval-Infilling did for Python, and writes tasks in that format with a
`language` field:

- single-line: one non-blank line of the body that is not only brackets;
- multi-line: 2 to `MULTI_MAX` consecutive whole lines, not all blank or brackets.

A hole is kept only when the reference program passes and the program with the hole left
empty fails, both run with the language's real toolchain (`eval.toolchains`). The sample is
seeded and spread over the problems: candidates are drawn one per problem per round, in a
seeded problem order, until the quota is met.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import data, toolchains
from eval.sandbox import execution

# short name -> (language id, HumanEval-X file)
LANGUAGES = {
    "js": ("javascript", "humaneval_js.jsonl.gz"),
    "go": ("go", "humaneval_go.jsonl.gz"),
    "java": ("java", "humaneval_java.jsonl.gz"),
    "cpp": ("cpp", "humaneval_cpp.jsonl.gz"),
    "rust": ("rust", "humaneval_rust.jsonl.gz"),
}
KINDS = ("single", "multi")
MULTI_MIN, MULTI_MAX = 2, 6


@dataclass(frozen=True)
class BuildOptions:
    """How many holes to keep, and how they are drawn."""

    single: int = 120
    multi: int = 80
    per_problem: int = 3  # at most this many holes of one kind from one problem
    seed: int = 0
    workers: int = 2


# external crates the upstream Cargo project provides; rustc alone has none of them (the few
# problems that use one fail their reference run and are left out)
_RUST_CRATES = re.compile(r"^use (rand|regex|md5)\b.*\n?", re.M)
_ENTRY = {
    "javascript": r"const\s+(\w+)\s*=",
    "go": r"func\s+(\w+)\s*\(",
    "java": r"(\w+)\s*\([^()]*\)\s*\{\s*$",
    "cpp": r"(\w+)\s*\([^()]*\)\s*\{?\s*$",
    "rust": r"fn\s+(\w+)",
}


@dataclass(frozen=True)
class Problem:
    """One HumanEval-X problem as a file: the code before the body, the body, the test."""

    task_id: str
    language: str
    head: str
    body: str
    test: str
    entry_point: str

    def task(self, start: int, end: int, kind: str) -> data.Task:
        """The task whose hole is body lines [start, end)."""
        lines = self.body.splitlines(keepends=True)
        middle = "".join(lines[start:end])
        tag = f"L{start}" if end - start == 1 else f"L{start}-L{end - 1}"
        return data.Task(
            task_id=f"{self.task_id}/{tag}",
            prompt=self.head + "".join(lines[:start]),
            suffix="".join(lines[end:]),
            canonical_solution=middle,
            test=self.test,
            entry_point=self.entry_point,
            kind=f"{kind}-line: {data.lines_kind(middle)}",
            extra={"language": self.language},
        )


def problem(language: str, row: dict[str, Any]) -> Problem:
    """A HumanEval-X row as a file, the way its upstream harness assembles it.

    Go: `package main` first (the harness adds the test's imports after it, see
    `toolchains`). Rust: the doc comment, then the declaration's `use` lines (without the
    external crates) and signature.
    """
    head = row["prompt"]
    if language == "go":
        head = "package main\n\n" + head
    if language == "rust":
        head = head + _RUST_CRATES.sub("", row["declaration"])
    found = re.findall(_ENTRY[language], row.get("declaration") or row["prompt"], re.M)
    entry = found[-1] if found else ""
    return Problem(row["task_id"], language, head, row["canonical_solution"], row["test"], entry)


def _braces_only(line: str) -> bool:
    return not line.strip() or not re.sub(r"[{}()\[\];,\s]", "", line)


def holes(p: Problem, kind: str) -> list[tuple[int, int]]:
    """Candidate line spans [start, end) of the body for a kind of hole.

    Every line of a span ends with a newline (a whole line), the first line of a single- or
    multi-line span is code, and no span is only blank lines and brackets.
    """
    lines = p.body.splitlines(keepends=True)
    if not p.head.endswith("\n"):
        return []
    whole = [line.endswith("\n") for line in lines]
    spans = []
    if kind == "single":
        return [(i, i + 1) for i, line in enumerate(lines) if whole[i] and not _braces_only(line)]
    for i in range(len(lines)):
        if _braces_only(lines[i]):
            continue
        for n in range(MULTI_MIN, MULTI_MAX + 1):
            if i + n > len(lines) or not all(whole[i : i + n]):
                break
            if lines[i + n - 1].strip():
                spans.append((i, i + n))
    return spans


def read_problems(source: Path, short: str) -> list[Problem]:
    """The problems of one language from a HumanEval-X directory."""
    language, name = LANGUAGES[short]
    with gzip.open(source / name, "rt", encoding="utf-8") as fh:
        return [problem(language, json.loads(line)) for line in fh if line.strip()]


def candidates(
    problems: list[Problem], kind: str, seed: int, per_problem: int
) -> Iterator[tuple[Problem, tuple[int, int]]]:
    """Holes in draw order: round r takes the r-th (seeded) hole of each problem in turn."""
    rng = random.Random(f"{seed}/{kind}")
    order = list(problems)
    rng.shuffle(order)
    spans = {}
    for p in order:
        s = holes(p, kind)
        rng.shuffle(s)
        spans[p.task_id] = s[:per_problem]
    for r in range(per_problem):
        for p in order:
            if r < len(spans[p.task_id]):
                yield p, spans[p.task_id][r]


def build(
    problems: list[Problem],
    options: BuildOptions = BuildOptions(),
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, list[data.Task]]:
    """The kept holes per kind: reference passes, blank fails; in draw order, then sorted."""
    references: dict[str, bool] = {}

    def reference_ok(p: Problem) -> bool:
        if p.task_id not in references:
            task = p.task(0, 0, "single")  # an empty hole at the top: the whole reference
            references[p.task_id] = toolchains.run_task(task, "").result == execution.PASSED
            if not references[p.task_id]:
                log(f"{p.task_id}: the reference fails; no holes from it")
        return references[p.task_id]

    def check(item: tuple[Problem, tuple[int, int]], kind: str) -> data.Task | None:
        p, (start, end) = item
        task = p.task(start, end, kind)
        assert data.filled(task, task.canonical_solution) == p.head + p.body
        blank = toolchains.run_task(task, "")
        return task if blank.result != execution.PASSED else None

    kept: dict[str, list[data.Task]] = {}
    with ThreadPoolExecutor(max(1, options.workers)) as pool:
        ordered = sorted(problems, key=lambda p: p.task_id)
        list(pool.map(reference_ok, ordered))  # one reference run per problem, in parallel
        for kind in KINDS:
            quota = options.single if kind == "single" else options.multi
            todo = [c for c in candidates(problems, kind, options.seed, options.per_problem)]
            todo = [c for c in todo if references[c[0].task_id]]
            chosen: list[data.Task] = []
            batch = max(2, 2 * options.workers)
            started = time.monotonic()
            for i in range(0, len(todo), batch):
                if len(chosen) >= quota:
                    break
                chunk = todo[i : i + batch]
                for task in pool.map(functools.partial(check, kind=kind), chunk):
                    if task is not None and len(chosen) < quota:
                        chosen.append(task)
            log(
                f"{kind}: {len(chosen)} holes kept of {min(i + batch, len(todo))} tried "
                f"({time.monotonic() - started:.0f} s)"
            )
            kept[kind] = sorted(chosen, key=_order)
    return kept


def _order(task: data.Task) -> tuple[int, str]:
    number = task.task_id.split("/")[1]
    return (int(number) if number.isdigit() else 0, task.task_id)


def write_suite(path: Path, tasks: list[data.Task]) -> None:
    """A gzipped JSONL suite (fixed mtime, so a rebuild with the same result is the same file)."""
    text = "".join(json.dumps(_record(t)) + "\n" for t in tasks)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(text.encode("utf-8"))


def _record(task: data.Task) -> dict[str, Any]:
    obj = task.to_json()
    obj.pop("kind", None)  # load_suite derives it, as for the Python suites
    return obj


def suite_name(short: str, kind: str) -> str:
    """The registered name of a language's suite (`data.X_SUITES`)."""
    return f"humaneval-x-{short}-{kind}"


def make_suites(
    source: Path,
    out_dir: Path,
    languages: tuple[str, ...] = tuple(LANGUAGES),
    options: BuildOptions = BuildOptions(),
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Build and write the suites of `languages`; {suite name: tasks}."""
    counts = {}
    for short in languages:
        if short not in LANGUAGES:
            raise ValueError(f"unknown language {short!r}: {', '.join(LANGUAGES)}")
        started = time.monotonic()

        def tagged(message: str, short: str = short) -> None:
            log(f"{short}: {message}")

        kept = build(read_problems(source, short), options, tagged)
        for kind, tasks in kept.items():
            name = suite_name(short, kind)
            write_suite(out_dir / data.X_SUITES[name], tasks)
            counts[name] = len(tasks)
        log(f"{short}: built in {time.monotonic() - started:.0f} s")
    return counts
