"""Scores: the unbiased pass@k estimator, latency percentiles, and paired tests of two runs.

The paired tests (`paired_test`: McNemar's exact test and a paired bootstrap interval) are
what `eval.compare` reports beside each difference in pass@1.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) passes.

    The unbiased estimator of Chen et al. (2021), `1 - C(n-c, k) / C(n, k)`, computed as a
    product so that it stays exact for large n: `1 - prod(1 - k / i for i in n-c+1..n)`.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over tasks given (samples, correct) per task; tasks with n < k are skipped."""
    scores = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return sum(scores) / len(scores) if scores else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_stats(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99 and max of a list of milliseconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: the discordant tasks as a fair coin, `b` one way, `c` other.

    p = min(1, 2 * P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2), computed with integers.
    No discordant task is no evidence either way: p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / (1 << n))  # 1 << n == 2**n, an int (2**n types as Any)


def bootstrap_ci(
    values: Sequence[float], seed: int = 0, resamples: int = 10_000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (tasks resampled, seeded).

    Given the per-task differences of two entrants this is the paired bootstrap: a task's
    two outcomes always move together.
    """
    if not values:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    n = len(values)
    means = [sum(rng.choices(values, k=n)) / n for _ in range(resamples)]
    tail = (1 - level) / 2 * 100
    return (percentile(means, tail), percentile(means, 100 - tail))


def paired_test(
    base: Sequence[float], other: Sequence[float], seed: int = 0, resamples: int = 10_000
) -> dict[str, Any]:
    """The difference `other - base` of per-task pass@1, its bootstrap CI and McNemar p.

    `better` and `worse` count the tasks where `other` scores above or below `base`; for
    one sample per task they are McNemar's discordant pairs (else the test is a sign test).
    """
    if len(base) != len(other):
        raise ValueError("paired scores must have one value per task on both sides")
    diffs = [o - b for b, o in zip(base, other, strict=True)]
    better = sum(d > 0 for d in diffs)
    worse = sum(d < 0 for d in diffs)
    lo, hi = bootstrap_ci(diffs, seed, resamples)
    return {
        "tasks": len(diffs),
        "diff": sum(diffs) / len(diffs) if diffs else math.nan,
        "ci95": [lo, hi],
        "better": better,
        "worse": worse,
        "p": mcnemar_exact(better, worse),
    }
