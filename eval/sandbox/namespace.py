"""Namespace mode: the bubblewrap command line, and which directories it empties or binds back.

A sample sees a read-only `/`, private bounded tmpfs mounts on PRIVATE, an empty `/run` and
home directories, and the interpreter's own paths under those bound back read-only.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

HIDDEN = ("/root", "/home")  # emptied in namespace mode (the interpreter's paths come back)

# Replaced by a private tmpfs in namespace mode; an interpreter under them is bound back
# (a checkout, and its .venv, in /tmp is common: CI's, `mktemp -d`).
PRIVATE = ("/tmp", "/dev/shm")


def hidden_dirs() -> tuple[str, ...]:
    """Home directories to empty in namespace mode: /root, /home and the user's own."""
    dirs = [*HIDDEN, os.path.expanduser("~")]
    out: list[str] = []
    for d in dirs:
        real = os.path.realpath(d)
        if real != "/" and os.path.isdir(real) and not any(_under(real, o) for o in out):
            out = [o for o in out if not _under(o, real)] + [real]
    return tuple(out)


def binds(python: str, hidden: tuple[str, ...]) -> tuple[str, ...]:
    """The interpreter's paths that lie under an emptied directory (bound back read-only)."""
    code = (
        "import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, "
        "sys.exec_prefix, sys.base_exec_prefix, *sys.path]))"
    )
    paths = [python]
    try:
        out = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            check=True,
        )
        paths += [p for p in json.loads(out.stdout) if isinstance(p, str) and p]
    except (OSError, ValueError, subprocess.SubprocessError):
        pass  # the probe will say that the interpreter does not start
    found: set[str] = set()
    for path in paths:
        for link in _link_chain(path):
            real = os.path.realpath(link)
            if os.path.isfile(real):
                real = os.path.dirname(real)
            if os.path.isdir(real) and any(_under(real, h) for h in hidden):
                found.add(real)
    ordered = sorted(found)
    return tuple(p for p in ordered if not any(p != q and _under(p, q) for q in ordered))


def _link_chain(path: str) -> list[str]:
    """`path` and every symlink it goes through (each must exist inside the sandbox)."""
    chain = []
    current = os.path.abspath(path)
    for _ in range(40):
        chain.append(current)
        if not os.path.islink(current):
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return chain


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def bwrap_args(
    bwrap: str,
    hidden: tuple[str, ...],
    binds: tuple[str, ...],
    tmp_bytes: int,
    root: Path,
    work: Path,
    as_root: bool,
) -> list[str]:
    """The bwrap command (up to its `--`) for a sample whose directory `root` holds `work`.

    `as_root`: the harness is root and setpriv inside drops to a throw-away uid (no user
    namespace); otherwise bwrap maps the user into a user namespace and drops all.
    """
    args = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if as_root:  # root: no user namespace; setpriv inside needs these two, then drops all
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    size = ["--size", str(tmp_bytes)] if tmp_bytes > 0 else []
    for private in PRIVATE:
        args += ["--perms", "1777", *size, "--tmpfs", private]
    empty = ("/run", *hidden)
    for path in empty:
        args += ["--tmpfs", path]
    made: set[str] = set()
    fresh = (*PRIVATE, *empty)
    for path, how in [*((b, "--ro-bind") for b in binds), (str(root), "--bind")]:
        # bwrap would make a mount point's missing parents 0700 (unreadable to the uid)
        parts = Path(path).parts
        for i in range(2, len(parts)):
            parent = str(Path(*parts[:i]))
            if parent not in made and any(parent != f and _under(parent, f) for f in fresh):
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += [how, path, path]
    return [*args, "--chdir", str(work), "--"]
