"""pass@k against brute-force counting, the latency percentiles, and the paired tests by hand."""

from __future__ import annotations

import itertools
import math

import pytest

from eval.metrics import (
    bootstrap_ci,
    latency_stats,
    mcnemar_exact,
    mean_pass_at_k,
    paired_test,
    pass_at_k,
    percentile,
)


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
    with pytest.raises(ValueError, match="got n=3 c=4 k=1"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="got n=3 c=1 k=4"):
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


def test_mcnemar_exact_against_hand_computed_binomials() -> None:
    assert mcnemar_exact(0, 5) == 2 / 2**5  # 0.0625: five of five one way is not enough
    assert mcnemar_exact(1, 9) == 2 * (1 + 10) / 2**10  # 0.021484375
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(2, 8) == 0.109375  # 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(3, 17) == 2 * (1 + 20 + 190 + 1140) / 2**20
    assert mcnemar_exact(5, 5) == 1.0  # the doubled tail is capped
    assert mcnemar_exact(0, 0) == 1.0  # no discordant task: no evidence
    with pytest.raises(ValueError, match="discordant counts must be >= 0, got -1, 3"):
        mcnemar_exact(-1, 3)


def test_bootstrap_ci_is_seeded_and_holds_the_estimate() -> None:
    values = [1.0] * 40 + [0.0] * 60
    ci = bootstrap_ci(values, seed=7, resamples=2000)
    assert ci == bootstrap_ci(values, seed=7, resamples=2000)
    assert ci != bootstrap_ci(values, seed=8, resamples=2000)
    assert ci[0] < 0.4 < ci[1]
    # the normal approximation: 0.4 +- 1.96 * sqrt(0.4 * 0.6 / 100) = [0.304, 0.496]
    assert ci[0] == pytest.approx(0.304, abs=0.02)
    assert ci[1] == pytest.approx(0.496, abs=0.02)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_a_small_difference_on_150_tasks_is_not_significant() -> None:
    base = [1.0] * 60 + [0.0] * 90
    other = list(base)
    for i in range(5):  # 5 tasks fixed, 3 broken: +2/150
        other[60 + i] = 1.0
    for i in range(3):
        other[i] = 0.0
    t = paired_test(base, other, seed=0, resamples=5000)
    assert t["diff"] == pytest.approx(2 / 150)
    assert (t["better"], t["worse"]) == (5, 3)
    assert t["p"] == 2 * (1 + 8 + 28 + 56) / 2**8  # 0.7265625
    assert t["ci95"][0] < 0 < t["ci95"][1]
    assert t["ci95"][0] <= t["diff"] <= t["ci95"][1]
    with pytest.raises(ValueError, match="one value per task on both sides"):
        paired_test([1.0], [1.0, 0.0])
