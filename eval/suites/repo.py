"""The real-project suites: holes in pinned real packages, judged by the packages' own tests.

`make-tasks` chose and verified the holes once (the reference passes, the empty filling
fails); the manifest `eval/data/repo-suites.json.gz` keeps only their coordinates: package,
file, lines, function, the tests to run and a sha256 of the blanked text. `build` fetches the
pinned sdists (`packages`), unpacks them and cuts the same holes again, so the same pins give
the same tasks and task ids without the packages' code in this repository and without
tracing or verifying again. `remake` is the maintainers' path: it runs `make-tasks` on every
package at fixed seeds and writes the manifest.
"""

from __future__ import annotations

import collections
import functools
import gzip
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import data
from eval.suites import packages
from eval.suites.make_tasks import make_tasks, task_test
from eval.suites.tracing import find_tests, trace

MANIFEST = data.DATA_DIR / "repo-suites.json.gz"
# suite -> the hole kinds it holds; `repo-crossfile` holds holes of every kind whose
# reference uses a name imported from another module of the same package.
SUITE_KINDS = dict(zip(data.REPO_SUITES, ("line", "block", "body", ""), strict=True))
PROJECTS_DIR = "projects"
SDISTS_DIR = "sdists"
# make-tasks per package when remaking: tasks of all kinds, and cross-file ones on their own
REMAKE_SEED = 0
REMAKE_LIMIT = 90
REMAKE_CROSSFILE_LIMIT = 30


class SuiteError(RuntimeError):
    """A suite that cannot be built: a package not fetched, or a hole that does not match."""


@dataclass(frozen=True)
class Hole:
    """One manifest entry: where a task's hole is in its package."""

    suite: str
    package: str
    path: str
    start: int  # 0-based first line of the hole
    end: int  # one past its last line
    kind: str
    function: str
    tests: tuple[str, ...]
    imported_names: tuple[str, ...]
    middle_sha256: str

    def to_json(self) -> dict[str, Any]:
        """The entry as the manifest stores it."""
        return {
            **self.__dict__,
            "tests": list(self.tests),
            "imported_names": list(self.imported_names),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Hole:
        """An entry read from the manifest."""
        return cls(
            **{
                **obj,
                "tests": tuple(obj["tests"]),
                "imported_names": tuple(obj.get("imported_names", ())),
            }
        )


def read_manifest(path: Path = MANIFEST) -> list[Hole]:
    """Every hole of every real-project suite."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        obj = json.load(fh)
    return [Hole.from_json(h) for h in obj["holes"]]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cut(hole: Hole, project: Path, project_rel: str) -> data.Task:
    """The task of a hole in an unpacked package; SuiteError if the file does not match."""
    try:
        source = data.project_file(project, hole.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, data.TaskPathError) as exc:
        raise SuiteError(f"{hole.package}: cannot read {hole.path}: {exc}") from exc
    lines = source.splitlines(keepends=True)
    middle = "".join(lines[hole.start : hole.end])
    if _sha(middle) != hole.middle_sha256:
        raise SuiteError(f"{hole.package}/{hole.path}:{hole.start + 1}: the hole's text changed")
    extra: dict[str, Any] = {"suite_package": hole.package}
    if hole.imported_names:
        extra["imported_names"] = list(hole.imported_names)
    return data.Task(
        task_id=f"{project.name}/{hole.path}:{hole.function}:{hole.kind}:L{hole.start + 1}",
        prompt="".join(lines[: hole.start]),
        suffix="".join(lines[hole.end :]),
        canonical_solution=middle,
        test=task_test(list(hole.tests), hole.path),
        entry_point=hole.function,
        kind=hole.kind,
        project=project_rel,
        path=hole.path,
        extra=extra,
    )


def fetch_all(
    root: Path,
    offline: bool = False,
    index: str = packages.PYPI_SIMPLE,
    pins: tuple[packages.Package, ...] = packages.PACKAGES,
) -> dict[str, Path]:
    """Every pinned package fetched and unpacked under `root`: name -> project directory."""
    out = {}
    for package in pins:
        sdist = packages.fetch(package, root / SDISTS_DIR, index, offline)
        out[package.name] = packages.unpack(sdist, package, root / PROJECTS_DIR)
    return out


def build(
    root: Path | None = None,
    offline: bool = False,
    index: str = packages.PYPI_SIMPLE,
    manifest: Path = MANIFEST,
    pins: tuple[packages.Package, ...] = packages.PACKAGES,
) -> dict[str, int]:
    """Fetch the packages and write every suite's tasks file under `root`: suite -> tasks."""
    root = root or data.repo_suites_dir()
    projects = fetch_all(root, offline, index, pins)
    by_suite: dict[str, list[dict[str, Any]]] = {name: [] for name in SUITE_KINDS}
    for hole in read_manifest(manifest):
        if hole.suite not in by_suite:
            raise SuiteError(f"the manifest names an unknown suite {hole.suite!r}")
        if hole.package not in projects:
            raise SuiteError(f"the manifest names an unpinned package {hole.package!r}")
        project = projects[hole.package]
        task = cut(hole, project, f"{PROJECTS_DIR}/{project.name}")
        by_suite[hole.suite].append(task.to_json())
    for name, tasks in by_suite.items():
        tasks.sort(key=lambda t: t["task_id"])
        tmp = root / f".{name}.jsonl.part"
        data.write_jsonl(tmp, tasks)
        os.replace(tmp, root / f"{name}.jsonl")
    return {name: len(tasks) for name, tasks in by_suite.items()}


def hole_of(task: data.Task, suite: str, package: str) -> Hole:
    """The manifest entry of a make-tasks task (its lines from the prompt and the reference)."""
    start = task.prompt.count("\n")
    return Hole(
        suite=suite,
        package=package,
        path=str(task.path),
        start=start,
        end=start + task.canonical_solution.count("\n"),
        kind=task.kind,
        function=task.entry_point,
        tests=tuple(task.extra["tests"]),
        imported_names=tuple(task.extra.get("imported_names", ())),
        middle_sha256=_sha(task.canonical_solution),
    )


def remake(
    root: Path | None = None,
    manifest: Path = MANIFEST,
    offline: bool = False,
    workers: int = 2,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, int]:
    """Choose and verify the holes again with make-tasks at fixed seeds; write the manifest.

    Each package gives up to REMAKE_LIMIT verified holes of all kinds (split by kind into
    lines, blocks and bodies) and, on its own draw, up to REMAKE_CROSSFILE_LIMIT that use an
    imported name. A hole in both draws stays in `repo-crossfile` only, so suites are disjoint.
    """
    root = root or data.repo_suites_dir()
    projects = fetch_all(root, offline)
    holes: list[Hole] = []
    work = root / "remake"
    work.mkdir(parents=True, exist_ok=True)
    suite_of = {kind: suite for suite, kind in SUITE_KINDS.items() if kind}
    for name, project in projects.items():
        log(f"{name}: tracing its tests")
        calls = trace(project, find_tests(project), 600.0)
        draw = functools.partial(
            make_tasks, project, seed=REMAKE_SEED, workers=workers, log=log, calls=calls
        )
        cross = draw(
            work / f"{name}-crossfile.jsonl", limit=REMAKE_CROSSFILE_LIMIT, cross_file=True
        )
        taken = {t.task_id for t in cross}
        holes += [hole_of(t, "repo-crossfile", name) for t in cross]
        every = draw(work / f"{name}.jsonl", limit=REMAKE_LIMIT)
        holes += [hole_of(t, suite_of[t.kind], name) for t in every if t.task_id not in taken]
    holes.sort(key=lambda h: (h.suite, h.package, h.path, h.start))
    pins = {p.name: f"{p.version} {p.sha256}" for p in packages.PACKAGES}
    with gzip.GzipFile(manifest, "wb", mtime=0) as fh:  # the same holes, the same bytes
        body = {"packages": pins, "holes": [h.to_json() for h in holes]}
        fh.write((json.dumps(body, indent=0) + "\n").encode("utf-8"))
    return dict(collections.Counter(hole.suite for hole in holes))
