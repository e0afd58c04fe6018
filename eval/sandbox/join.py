"""Joins the sample's cgroups before anything of it runs, then becomes the sandbox command.

`execution` passes this file's text with `python -I -S -c` (read with importlib.resources,
never imported there): command line `cgroup.procs... -- command...`. Standard library only.
"""

import os
import sys

if __name__ == "__main__":
    i = sys.argv.index("--")
    for p in sys.argv[1:i]:
        with open(p, "w") as f:
            f.write("0")
    os.execv(sys.argv[i + 1], sys.argv[i + 1 :])
