"""The auto thread count: other processes' CPU use from /proc, and the threads it leaves."""

from __future__ import annotations

import multiprocessing
import sys
import time

import pytest

from completion import cpu_load
from completion.cpu_load import CpuSample, others_busy, parse_sample, threads_for

STAT = "cpu  100 5 20 800 10 0 3 2 7 0\ncpu0 50 2 10 400 5 0 1 1 3 0\n"
# A process name with spaces and parentheses: fields are counted after the last `)`.
SELF = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194304 10 0 0 0 31 9 0 0 20 0 3 0 1 2 3"


def test_parse_counts_busy_fields_and_the_processs_own_time() -> None:
    sample = parse_sample(STAT, SELF)
    assert sample.busy == 100 + 5 + 20 + 0 + 3 + 2  # guest (7) is already inside user
    assert sample.total == sample.busy + 800 + 10
    assert sample.own == 31 + 9


def test_others_busy_leaves_out_this_processs_own_time() -> None:
    before = CpuSample(busy=1000, total=2000, own=100)
    # 2 cores for 100 ticks each: 200 ticks; 150 busy, 50 of them this process.
    after = CpuSample(busy=1150, total=2200, own=150)
    assert others_busy(before, after, cores=2) == pytest.approx(1.0)
    assert others_busy(before, before, cores=2) == 0.0  # no time passed: no claim


@pytest.mark.parametrize(
    ("cores", "busy", "threads"),
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 2.0, 1), (8, 3.0, 5), (1, 0.0, 1)],
)
def test_threads_follow_the_free_cores(cores: int, busy: float, threads: int) -> None:
    assert threads_for(cores, busy) == threads


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_process_spinning_elsewhere_is_counted() -> None:
    """A real busy child: at least half a core of it shows up as another process's load."""
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, args=(3.0,))
    spinner.start()
    try:
        time.sleep(0.5)  # past its start-up
        before = cpu_load.read_sample()
        time.sleep(1.0)
        after = cpu_load.read_sample()
    finally:
        spinner.join()
    assert before is not None
    assert after is not None
    assert others_busy(before, after, cpu_load.usable_cores()) >= 0.5


def test_without_proc_every_core_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_load, "read_sample", lambda: None)
    assert cpu_load.auto_threads(interval_s=0.0) == cpu_load.usable_cores()
