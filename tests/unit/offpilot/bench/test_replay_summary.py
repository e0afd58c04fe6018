"""The replay's soak figure: RSS growth after the first two minutes."""

from __future__ import annotations

from offpilot.bench.replay.summary import rss_growth


def test_growth_counts_from_minute_two_and_ignores_a_reload_dip() -> None:
    samples = [(0.0, 45.0), (60.0, 1000.0), (120.0, 1200.0), (130.0, 300.0), (200.0, 1250.0)]
    assert rss_growth(samples, after_s=120.0) == 50.0  # the model load and the dip aside
    assert rss_growth([(0.0, 45.0)], after_s=120.0) is None  # a run too short to tell
