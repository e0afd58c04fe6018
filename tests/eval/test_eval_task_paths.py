"""Hostile project tasks: paths and symlinks that leave the sandbox, and a forged trace.

Every case uses real files in tmp_path and a victim file outside the project whose content
must survive.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from completion.engines.fake import FakeEngine
from eval import data, run
from eval.records import RunSettings, read_samples
from eval.sandbox import execution
from eval.suites import make_tasks, tracing

CORE = '''\
"""A tiny library."""


def clamp(x, lo, hi):
    """Limit x to [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x
'''

TESTS = """\
from tinylib.core import clamp


def test_clamp():
    assert clamp(5, 0, 3) == 3
    assert clamp(-1, 0, 3) == 0
    assert clamp(2, 0, 3) == 2
"""

REPO = Path(__file__).resolve().parents[2]

VICTIM = """\
def shout(s):
    s = s.upper()
    return s + "!"
"""

EVIL_TESTS = """\
def test_shout():
    from tinylib.evil import shout  # inside: a missing module fails this test only

    assert shout("a") == "A!"
"""


def make_project(root: Path) -> Path:
    (root / "tinylib").mkdir(parents=True)
    (root / "tinylib" / "__init__.py").write_text("")
    (root / "tinylib" / "core.py").write_text(CORE)
    (root / "tests").mkdir()
    (root / "tests" / "test_core.py").write_text(TESTS)
    return root


def victim(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim.py"
    path.write_text(VICTIM)
    return path


def task_for(project: Path, path: str) -> data.Task:
    return data.Task(
        task_id="t/0",
        prompt="",
        suffix="",
        canonical_solution="x = 1\n",
        test="print('ran')\n",
        entry_point="f",
        project=str(project),
        path=path,
    )


def escaping_paths(target: Path) -> list[str]:
    """An absolute path and a `dir/../..` path, both naming `target`."""
    return [str(target), "tinylib/" + "../" * 40 + str(target).lstrip("/")]


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
def test_task_path_leaving_the_work_directory_is_refused(tmp_path: Path, kind: str) -> None:
    project = make_project(tmp_path / "p")
    target = victim(tmp_path)
    path = escaping_paths(target)[kind == "dotdot"]
    record = run.judge(task_for(project, path), "x = 2\n", timeout_s=20)
    assert record["result"] == execution.ERROR
    assert not record["passed"]
    assert "leaves the project" in record["reason"], record["reason"]
    assert target.read_text() == VICTIM
    # the setup itself refuses too, before writing anything
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(data.TaskPathError):
        data.setup_for(task_for(project, path), "junk")(work)
    assert target.read_text() == VICTIM


def test_a_good_task_path_is_accepted(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    work = tmp_path / "work"
    work.mkdir()
    setup = data.setup_for(task_for(project, "tinylib/./core.py"), "y = 2\n")
    assert setup is not None
    setup(work)
    assert (work / data.PROJECT_DIR_NAME / "tinylib" / "core.py").read_text() == "y = 2\n"
    assert (project / "tinylib" / "core.py").read_text() == CORE


def test_copy_drops_links_out_and_keeps_links_in_inside_the_copy(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    target = victim(tmp_path)
    (project / "tinylib" / "evil.py").symlink_to(target)  # absolute, out
    (project / "outdir").symlink_to(target.parent, target_is_directory=True)
    (project / "rel_out.py").symlink_to(Path("..", "outside", "victim.py"))
    (project / "alias.py").symlink_to(project / "tinylib" / "core.py")  # absolute, in
    (project / "rel_in.py").symlink_to(Path("tinylib", "core.py"))
    dest = tmp_path / "copy"
    data.copy_project(project, dest)
    assert not any(os.path.lexists(dest / n) for n in ("tinylib/evil.py", "outdir", "rel_out.py"))
    for name in ("alias.py", "rel_in.py"):
        link = dest / name
        assert link.is_symlink()
        assert not os.path.isabs(os.readlink(link))
        assert link.resolve() == (dest / "tinylib" / "core.py").resolve()
    # a symlinked file is never a task's file, even one pointing inside
    with pytest.raises(data.TaskPathError, match="symlink"):
        data.project_file(dest, "alias.py")


def test_symlink_out_of_the_project_makes_no_task_and_is_never_written(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    target = victim(tmp_path)
    (project / "tinylib" / "evil.py").symlink_to(target)
    (project / "tests" / "test_evil.py").write_text(EVIL_TESTS)
    # the whole make-tasks run makes tasks of clamp only, leaving the victim alone
    out = tmp_path / "tasks.jsonl"
    tasks = make_tasks.make_tasks(project, out, timeout_s=60, workers=2, kinds=("line",))
    assert target.read_text() == VICTIM
    assert tasks
    assert {t.path for t in tasks} == {"tinylib/core.py"}
    assert all(p.name != "evil.py" for p in tracing.source_files(project))
    # tasks from a trace that names the link: none
    calls = {("tinylib/evil.py", 1): ["tests/test_evil.py::test_shout"]}
    assert make_tasks.build_tasks(project, calls, random.Random(0), []) == []
    # verify of a task through the link writes nothing through it
    why = make_tasks.verify(task_for(project, "tinylib/evil.py"), timeout_s=20)
    assert why is not None, why
    assert "symlink" in why, why
    assert target.read_text() == VICTIM


FORGED_TESTS = (
    TESTS
    + """

def test_forge():
    print('@@OFFPILOT-TRACE@@{"rc": 0, "passed": 1, "calls": '
          '[["tinylib/core.py", 4, ["tests/test_core.py::test_forged"]]]}')
    assert False
"""
)


def test_a_forged_trace_line_does_not_decide_the_trace(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    (project / "tests" / "test_core.py").write_text(FORGED_TESTS)
    calls = tracing.trace(project, ["tests"], timeout_s=60)
    ids = {i for found in calls.values() for i in found}
    assert "tests/test_core.py::test_forged" not in ids
    assert calls[("tinylib/core.py", 4)] == ["tests/test_core.py::test_clamp"]


FD_FORGED_TESTS = (
    TESTS
    + """

def test_forge_on_every_fd():
    import os
    forged = b'{"rc": 0, "passed": 1, "calls": [["tinylib/core.py", 4, ["x::test_forged"]]]}'
    for name in os.listdir("/proc/self/fd"):
        try:
            os.write(int(name), forged)
        except OSError:
            pass
"""
)


def test_a_message_without_the_token_on_the_channel_is_no_trace(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    (project / "tests" / "test_core.py").write_text(FD_FORGED_TESTS)
    refusal: str | None = None
    calls: dict[tuple[str, int], list[str]] = {}
    try:
        calls = tracing.trace(project, ["tests"], timeout_s=60)
    except RuntimeError as exc:  # the channel held junk: refused, not believed
        refusal = str(exc)
    assert refusal is None or "no trace came back" in refusal
    assert "x::test_forged" not in {i for found in calls.values() for i in found}


SECRET = "TOP-SECRET-7f3a"

READS_SECRETS = """\
def test_reads():
    found = []
    for name in ("tests/secret.txt", "tests/private/key.txt"):
        try:
            found.append(open(name).read())
        except OSError as exc:
            found.append(type(exc).__name__)
    assert found == ["FileNotFoundError", "FileNotFoundError"], found
"""


LAST = "    return x\n"  # the hole of `project_task`: CORE's last line


def engine() -> FakeEngine:
    """A model that fills `project_task`'s hole rightly."""
    return FakeEngine(default=LAST.rstrip("\n"))


def project_task(project: str) -> dict[str, str]:
    """A tasks-file line of a project task judged by the project's own tests."""
    driver = make_tasks.task_test(["tests"], "tinylib/core.py")
    return {
        "task_id": "p/0",
        "prompt": CORE.removesuffix(LAST),
        "suffix": "",
        "canonical_solution": LAST,
        "test": driver,
        "entry_point": "clamp",
        "project": project,
        "path": "tinylib/core.py",
    }


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_a_project_outside_the_tasks_files_directory_is_refused(tmp_path: Path, kind: str) -> None:
    """A tasks file may not name a directory it does not live with (#24, 2)."""
    outside = make_project(tmp_path / "home" / "secrets")
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "link").symlink_to(outside, target_is_directory=True)
    project = {"absolute": str(outside), "dotdot": "../home/secrets", "symlink": "link"}[kind]
    suite = tasks_dir / "tasks.jsonl"
    data.write_jsonl(suite, [project_task(project)])
    with pytest.raises(data.TaskPathError, match=r"outside .*--projects"):
        data.load_suite(str(suite))
    # the run refuses before it writes a sample
    out = tmp_path / "run"
    with pytest.raises(data.TaskPathError):
        run.run(RunSettings(suite=str(suite)), out, lambda: FakeEngine(default="x = 1"))
    assert not (out / "samples.jsonl").exists()
    if kind == "absolute":  # `--projects` names the root that makes it legitimate
        (task,) = data.load_suite(str(suite), projects=tmp_path / "home")
        assert task.project == str(outside.resolve())


def test_the_cli_refuses_a_project_elsewhere_with_a_message(tmp_path: Path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    outside = make_project(tmp_path / "elsewhere")
    suite = tmp_path / "tasks" / "tasks.jsonl"
    suite.parent.mkdir()
    data.write_jsonl(suite, [project_task(str(outside))])
    cmd = [sys.executable, "-m", "offpilot.cli", "eval", "run", "--suite", str(suite)]
    cmd += ["--model", str(tiny_model.path), "--out", str(tmp_path / "run")]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert refused.returncode == 2, refused.stderr
    assert "offpilot eval:" in refused.stderr
    assert "--projects" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stdout == ""


def test_a_project_under_projects_runs(tmp_path: Path) -> None:
    """A relative `project` is taken from `--projects DIR`, and the task is judged there."""
    make_project(tmp_path / "projects" / "tiny")
    suite = tmp_path / "tasks" / "tasks.jsonl"
    suite.parent.mkdir()
    data.write_jsonl(suite, [project_task("tiny")])
    settings = RunSettings(suite=str(suite), timeout_s=60, projects=str(tmp_path / "projects"))
    summary = run.run(settings, tmp_path / "run", engine, workers=1)
    assert summary["results"] == {"passed": 1}, read_samples(tmp_path / "run")


def test_the_copy_takes_only_what_others_may_read(tmp_path: Path) -> None:
    """A 0600 file or a private directory of the project never reaches the sample (#24, 2).

    The harness (root here) hands the copy to the sample's uid, which could not have read
    them in place; the project's test passes only if it finds neither.
    """
    project = make_project(tmp_path / "tasks" / "p")
    (project / "tests" / "test_secrets.py").write_text(READS_SECRETS)
    secret = project / "tests" / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    (project / "tests" / "private").mkdir(mode=0o700)
    (project / "tests" / "private" / "key.txt").write_text(SECRET)
    (project / "tests" / "private" / "key.txt").chmod(0o644)
    suite = tmp_path / "tasks" / "tasks.jsonl"
    data.write_jsonl(suite, [project_task(str(project))])
    out = tmp_path / "run"
    run.run(RunSettings(suite=str(suite), timeout_s=60), out, engine)
    (record,) = read_samples(out)
    assert record["result"] == execution.PASSED, record["reason"]
    assert SECRET not in (out / "samples.jsonl").read_text()


def test_the_copy_takes_regular_files_only(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    os.mkfifo(project / "pipe")  # a copy that opened it would wait for a writer forever
    (project / "secret.txt").write_text(SECRET)
    (project / "secret.txt").chmod(0o600)
    copied = tmp_path / "copy"
    assert sorted(data.copy_project(project, copied)) == ["pipe", "secret.txt"]
    assert not any(os.path.lexists(copied / n) for n in ("pipe", "secret.txt"))
    assert (copied / "tinylib" / "core.py").read_text() == CORE


def test_a_project_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    with open(project / "big.bin", "wb") as fh:
        fh.truncate(data.COPY_MAX_BYTES + 1)  # sparse: costs no disk
    record = run.judge(task_for(project, "tinylib/core.py"), CORE, timeout_s=20)
    assert record["result"] == execution.ERROR
    assert not record["passed"]
    assert "COPY_MAX_BYTES" in record["reason"], record["reason"]
    with pytest.raises(data.ProjectTooLargeError):
        data.copy_project(project, tmp_path / "copy", max_bytes=1000)
