"""pass@k against brute-force counting, and the latency percentiles."""

from __future__ import annotations

import itertools
import math

import pytest

from eval.metrics import latency_stats, mean_pass_at_k, pass_at_k, percentile


def brute_force(n: int, c: int, k: int) -> float:
    """The share of all k-subsets of n samples (c correct) that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_brute_force(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    # C(1000, 100) overflows a float; the product form does not
    value = pass_at_k(1000, 3, 100)
    exact = 1 - math.comb(997, 100) / math.comb(1000, 100)
    assert value == pytest.approx(exact, rel=1e-9)
    assert pass_at_k(200, 0, 100) == 0.0
    assert pass_at_k(200, 150, 100) == 1.0


def test_pass_at_1_is_the_pass_rate() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_mean_over_tasks_skips_tasks_with_too_few_samples() -> None:
    assert mean_pass_at_k([(2, 1), (2, 0), (1, 1)], 2) == pytest.approx(0.5)
    assert mean_pass_at_k([], 1) == 0.0


def test_percentiles_match_numpy() -> None:
    np = pytest.importorskip("numpy")
    values = [float(x) for x in [5, 1, 9, 3, 7, 2, 8, 100, 4, 6, 11]]
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    stats = latency_stats(values)
    assert stats["n"] == len(values)
    assert stats["p50"] == pytest.approx(6.0)
    assert latency_stats([]) == {"n": 0}
