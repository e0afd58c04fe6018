"""Throw-away uids for samples when the harness is root: pick one, find and kill its processes.

Each sample runs as a uid owned by no account (`setpriv` drops to it with no capability), so
it cannot touch the harness's files or signal its processes, and every process it leaves is
found by uid and killed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from eval.sandbox.capture import kill_pids

UID_BASE = 200_000  # throw-away uids: base + the child's pid (pid_max is far below 1e6)

_uid_lock = threading.Lock()
_uid_counter = 0


def pick() -> int:
    """A uid owned by no account and not used by a running process."""
    global _uid_counter
    while True:
        with _uid_lock:
            _uid_counter += 1
            uid = UID_BASE + (os.getpid() % 10_000) * 100 + _uid_counter % 100
        if not processes(uid):
            return uid


def processes(uid: int) -> list[int]:
    """Pids of the processes running as `uid`."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def user_tasks(uid: int) -> int:
    """Threads now running as `uid` (what RLIMIT_NPROC counts)."""
    total = 0
    for pid in processes(uid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/task"))
    return total


def kill(uid: int, rounds: int = 20) -> None:
    """Kill every process of a throw-away uid (a fork bomb may still be forking)."""
    for _ in range(rounds):
        pids = processes(uid)
        if not pids:
            return
        kill_pids(pids)
        time.sleep(0.02)


def setpriv_args(uid: int, read_all: bool = False) -> list[str]:
    """`setpriv` flags: a throw-away uid with no capability and no setuid.

    `read_all` (process mode only, when the interpreter is unreadable to any other uid, e.g.
    under a 0700 /root) keeps CAP_DAC_READ_SEARCH, ambient so that it survives the exec of
    the interpreter: the sample can then read every file. RLIMIT_NPROC binds this uid.
    """
    inh = "--inh-caps=-all,+dac_read_search" if read_all else "--inh-caps=-all"
    caps = ["--ambient-caps=+dac_read_search"] if read_all else []
    return [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", inh, *caps, "--no-new-privs"]


def chown_tree(root: Path, uid: int) -> None:
    """Hand a directory tree to the sandbox uid."""
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
