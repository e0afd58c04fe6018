"""cgroups: one per sample, holding every process it starts, with its memory and process caps.

Only as root (v1 with the memory and pids controllers, or a v2 root with both enabled). A
cgroup is named `<harness pid>-...`, so the next harness finds and removes the cgroups of
one that was killed (`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from eval.sandbox.capture import kill_pids

log = logging.getLogger(__name__)

_cgroup_lock = threading.Lock()
_cgroup_state: dict[str, tuple[tuple[Path, ...], bool] | None] = {}
_cgroup_counter = 0


def roots() -> tuple[tuple[Path, ...], bool] | None:
    """(our parent cgroup per hierarchy, is cgroup v2) where we may create cgroups, else None.

    Only as root: v1 with the memory and pids controllers, or a v2 root with both enabled.
    """
    with _cgroup_lock:
        if "roots" not in _cgroup_state:
            _cgroup_state["roots"] = _find_roots()
        return _cgroup_state["roots"]


def _find_roots() -> tuple[tuple[Path, ...], bool] | None:
    if os.geteuid() != 0:
        return None
    base = Path("/sys/fs/cgroup")
    try:
        v1 = (base / "memory", base / "pids")
        if all((d / "cgroup.procs").exists() for d in v1):
            mine = tuple(d / "offpilot-eval" for d in v1)
            for d in mine:
                d.mkdir(exist_ok=True)
            return mine, False
        controllers = (base / "cgroup.controllers").read_text().split()
        if {"memory", "pids"} <= set(controllers):
            (base / "cgroup.subtree_control").write_text("+memory +pids")
            mine2 = base / "offpilot-eval"
            mine2.mkdir(exist_ok=True)
            (mine2 / "cgroup.subtree_control").write_text("+memory +pids")
            return (mine2,), True
    except OSError:
        pass
    return None


@dataclass
class Cgroup:
    """The cgroup(s) of one sample: caps for all its processes, and a way to find them all."""

    dirs: tuple[Path, ...]
    v2: bool

    @classmethod
    def create(cls, memory_bytes: int, tasks: int) -> Cgroup | None:
        """A fresh cgroup capped at `memory_bytes` and `tasks` processes (0: no cap), or None."""
        global _cgroup_counter
        found = roots()
        if found is None:
            return None
        parents, v2 = found
        with _cgroup_lock:
            _cgroup_counter += 1
            # pids are reused (pid_max is often 32768): a dead harness's cgroup may still
            # carry this pid, so the name gets a random part too
            name = f"{os.getpid()}-{_cgroup_counter}-{secrets.token_hex(4)}"
        group = cls(tuple(r / name for r in parents), v2)
        try:
            for d in group.dirs:
                d.mkdir()
            if v2:
                _write_knob(group.dirs[0] / "memory.max", memory_bytes)
                if memory_bytes > 0:  # no swapping past the cap
                    _write_knob(group.dirs[0] / "memory.swap.max", 1, optional=True, text="0")
                _write_knob(group.dirs[0] / "pids.max", tasks)
            else:
                memory, pids = group.dirs
                _write_knob(memory / "memory.limit_in_bytes", memory_bytes)
                _write_knob(memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
                _write_knob(pids / "pids.max", tasks)
        except OSError as exc:
            log.warning("eval sandbox: cannot set up a cgroup (%s); per-process limits only", exc)
            group.remove()
            return None
        return group

    @property
    def procs(self) -> list[str]:
        """Its `cgroup.procs` files: writing a pid to each moves that process in."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        """The processes in it now."""
        found: set[int] = set()
        for p in self.procs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in Path(p).read_text().split())
        return found

    def kill(self, rounds: int = 200) -> None:
        """SIGKILL every process in it until none is left (a fork bomb may still fork)."""
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return
            if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (self.dirs[0] / "cgroup.kill").write_text("1")
            kill_pids(pids)
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of it for going over the memory cap."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        for d in self.dirs:
            try:
                text = (d / name).read_text()
            except OSError:
                continue
            m = re.search(r"^oom_kill (\d+)", text, re.M)
            if m and int(m.group(1)) > 0:
                return True
        return False

    def remove(self) -> None:
        """Delete its directories (once its processes are gone)."""
        for d in self.dirs:
            for _ in range(100):  # rmdir fails until the last zombie is reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _write_knob(path: Path, value: int, optional: bool = False, text: str = "") -> None:
    """Write a cgroup limit (0: leave it unlimited)."""
    if value <= 0:
        return
    try:
        path.write_text(text or str(value))
    except OSError:
        if not optional:
            raise


def sweep_stale() -> None:
    """Kill the samples in, and remove, the cgroups of harnesses that died."""
    found = roots()
    if found is None:
        return
    parents, v2 = found
    for parent in parents:
        for entry in listdir(parent):
            if entry.is_dir() and owner_died(entry.name):
                stale = Cgroup((Path(entry.path),), v2)
                stale.kill()
                stale.remove()


def owner_died(name: str) -> bool:
    """Whether `name` (`<harness pid>-...`) belongs to a harness that is no longer running."""
    pid = _owner_pid(name)
    return pid is not None and not _alive(pid)


def listdir(path: Path) -> list[os.DirEntry[str]]:
    """The entries of a directory; none when it cannot be read."""
    try:
        return list(os.scandir(path))
    except OSError:
        return []


def _owner_pid(name: str) -> int | None:
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() and "-" in name else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
