"""Hostile project tasks: paths and symlinks that leave the sandbox, and a forged trace.

Every case uses real files in tmp_path and a victim file outside the project whose content
must survive.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from eval import data, run
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
    assert record["result"] == execution.ERROR and not record["passed"]
    assert "leaves the project" in record["reason"], record["reason"]
    assert target.read_text() == VICTIM
    # the setup itself refuses too, before writing anything
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(data.TaskPathError):
        setup = data.setup_for(task_for(project, path), "junk")
        setup(work)
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
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
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
    assert tasks and {t.path for t in tasks} == {"tinylib/core.py"}
    assert all(p.name != "evil.py" for p in tracing.source_files(project))
    # tasks from a trace that names the link: none
    calls = {("tinylib/evil.py", 1): ["tests/test_evil.py::test_shout"]}
    assert make_tasks.build_tasks(project, calls, random.Random(0), []) == []
    # verify of a task through the link writes nothing through it
    why = make_tasks.verify(task_for(project, "tinylib/evil.py"), timeout_s=20)
    assert why is not None and "symlink" in why, why
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
    try:
        calls = tracing.trace(project, ["tests"], timeout_s=60)
    except RuntimeError as exc:  # the channel held junk: refused, not believed
        assert "no trace came back" in str(exc)
    else:
        assert "x::test_forged" not in {i for found in calls.values() for i in found}
