"""The program every sample runs under: limits, the pass token, then the sample as __main__.

`execution` writes this file's text beside the sample (read with importlib.resources; it is
never imported there) and runs it in the sample's interpreter, site enabled so that the
sample's packages import; so it uses only the standard library. It reads the token and closes
that pipe before the program starts, keeps only stdio and the channels named on its command
line, runs the program as __main__ and writes the token only if it returns.

Command line: cpu_s memory_bytes file_bytes processes token_fd keep_fds program, where
keep_fds is a comma-separated list with the result pipe first (0 disables a limit).
"""

from __future__ import annotations

import os
import resource
import sys
from types import TracebackType


def _offpilot_launch() -> None:
    cpu, mem, fsize, nproc, token_fd = (int(x) for x in sys.argv[1:6])
    keep = [int(x) for x in sys.argv[6].split(",")]  # the result pipe first
    path = sys.argv[7]
    try:  # die with the parent (the harness thread, or the namespace's init)
        import ctypes

        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass

    def cap(kind: int, value: int) -> None:
        if value > 0:
            _, hard = resource.getrlimit(kind)
            new = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (new, new))

    cap(resource.RLIMIT_CPU, cpu)
    cap(resource.RLIMIT_AS, mem)
    cap(resource.RLIMIT_FSIZE, fsize)
    cap(resource.RLIMIT_NPROC, nproc)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    token = os.read(token_fd, 64)
    os.close(token_fd)
    low = 3
    for fd in [*sorted(keep), 1 << 20]:
        os.closerange(low, fd)
        low = fd + 1
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    sys.excepthook = _offpilot_hook
    import runpy

    runpy.run_path(path, run_name="__main__")
    os.write(keep[0], token)


def _offpilot_hook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    # tracebacks start at the program, as if it ran as `python program.py`
    ours = (__file__, "<frozen runpy>")
    while tb is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    sys.__excepthook__(kind, value.with_traceback(tb), tb)


if __name__ == "__main__":
    _offpilot_launch()
