"""How many cores other processes keep busy, and the engine thread count that follows.

Measured (docs/latency.md, typing replay on 2 cores): with one core kept busy, two
CTranslate2 threads make every decode step wait for the busy core (pause p50 2,125 ms),
one thread answers at 529 ms; on a quiet machine two threads decode 1.45x faster than one.
So the `threads: 0` setting (auto) runs as many threads as the other processes leave cores
free, at least one. Linux only (`/proc`); elsewhere it falls back to every core.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_STAT = Path("/proc/stat")
_SELF_STAT = Path("/proc/self/stat")


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU time (clock ticks) of the machine, and of this process."""

    busy: int  # all cores: user, nice, system, irq, softirq, steal
    total: int  # busy plus idle and iowait
    own: int  # this process, every thread: utime + stime


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_sample(proc_stat: str, self_stat: str) -> CpuSample:
    """A sample from the text of `/proc/stat` and `/proc/self/stat`.

    `guest` time is already counted in `user`, so only the first eight fields add up.
    The process's name (field 2) may hold spaces or parentheses: fields are counted after
    its last `)`.
    """
    fields = [int(v) for v in proc_stat.split("\n", 1)[0].split()[1:9]]
    fields += [0] * (8 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    after_name = self_stat.rsplit(")", 1)[1].split()
    own = int(after_name[11]) + int(after_name[12])  # utime, stime: fields 14 and 15
    return CpuSample(busy=busy, total=busy + idle + iowait, own=own)


def read_sample() -> CpuSample | None:
    """The current sample; None where `/proc` cannot tell (not Linux, or unreadable)."""
    try:
        return parse_sample(_STAT.read_text(), _SELF_STAT.read_text())
    except (OSError, ValueError, IndexError):
        return None


def others_busy(before: CpuSample, after: CpuSample, cores: int) -> float:
    """Cores kept busy by other processes between two samples (0 .. `cores`)."""
    elapsed = (after.total - before.total) / max(1, cores)  # ticks per core
    if elapsed <= 0:
        return 0.0
    others = ((after.busy - before.busy) - (after.own - before.own)) / elapsed
    return min(float(cores), max(0.0, others))


def threads_for(cores: int, busy_elsewhere: float) -> int:
    """Threads for the cores the others leave free: half a free core or more counts."""
    return max(1, min(cores, int(cores - busy_elsewhere + 0.5)))


def auto_threads(interval_s: float = 0.5) -> int:
    """The thread count for the machine's load now, sampled over `interval_s`."""
    cores = usable_cores()
    before = read_sample()
    if before is None or cores == 1:
        return cores
    time.sleep(interval_s)
    after = read_sample()
    if after is None:
        return cores
    return threads_for(cores, others_busy(before, after, cores))


@dataclass
class ThreadTuner:
    """When the auto thread count should change: `confirm` checks in a row must agree.

    A change reloads the model (about a second, and the cached prompt heads are lost), so a
    build that ends in a few seconds should not cause one; a load that stays does.
    """

    confirm: int = 2
    _wanted: int = 0
    _streak: int = 0

    def observe(self, running: int, best: int) -> bool:
        """True when the engine running `running` threads should reload with `best`."""
        if best == running:
            self._streak = 0
            return False
        if best != self._wanted:
            self._wanted, self._streak = best, 0
        self._streak += 1
        if self._streak < self.confirm:
            return False
        self._streak = 0
        return True
