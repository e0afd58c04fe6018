"""What the Ray driver accepts from a worker, without a cluster: only what it dispatched."""

from __future__ import annotations

from typing import Any

from eval import data
from eval.ray_run import unexpected

TASK = data.Task.from_json(
    {"task_id": "t/0", "prompt": "x = ", "test": "", "entry_point": "f", "canonical_solution": "1"}
)


def record(task_id: str = "t/0", sample: int = 1, **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "sample": sample, "passed": False, **extra}


def test_the_records_of_the_dispatched_samples_are_accepted() -> None:
    assert unexpected([record(sample=3), record(sample=1)], TASK, (1, 3)) == ""


def test_a_record_of_another_task_or_sample_is_refused() -> None:
    """Written, it would stand for a sample never made and shut out the real one (#24)."""
    assert "dispatched" in unexpected([record(sample=2)], TASK, (1,))
    assert "dispatched" in unexpected([record(task_id="t/9")], TASK, (1,))
    assert "dispatched" in unexpected([record(), record()], TASK, (1,))  # one twice
    assert "dispatched" in unexpected([record()], TASK, (1, 2))  # one missing
    assert "dispatched" in unexpected([], TASK, (1,))
    assert "not a list" in unexpected({"task_id": "t/0"}, TASK, (1,))
    assert "passed" in unexpected([record(passed="yes")], TASK, (1,))
