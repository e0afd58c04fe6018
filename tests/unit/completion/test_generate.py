"""Generate: the streaming loop, stopped by a rule, the cancel flag or the time budget."""

from __future__ import annotations

import threading

from completion.engines.fake import FakeEngine
from completion.engines.interface import GenerationParams
from completion.generate import generate
from completion.stops import StopReason


def test_cancel_flag_stops_between_tokens() -> None:
    engine = FakeEngine(default="x" * 1000, step_delay_s=0.001)
    cancel = threading.Event()
    seen: list[int] = []

    def rule(text: str) -> int | None:
        seen.append(len(text))
        if len(text) == 5:
            cancel.set()
        return None

    out = generate(engine, [1], GenerationParams(max_new_tokens=1000), rule, cancel)
    assert out.stop_reason == StopReason.CANCELLED
    assert out.tokens == 5


def test_time_budget_stops_generation() -> None:
    engine = FakeEngine(default="y" * 1000, step_delay_s=0.01)
    params = GenerationParams(max_new_tokens=1000, time_budget_s=0.05)
    out = generate(engine, [1], params, lambda _t: None)
    assert out.stop_reason == StopReason.TIME_BUDGET
    assert 1 <= out.tokens < 100
