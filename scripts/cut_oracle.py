"""The best any line-level stop rule could do with a run's model output.

For every sample of a finished `offpilot eval run` (best made with `block_stop=0`, so that
`raw` holds the uncut output), tries every whole-line prefix of the raw output, longest
first (the empty one too), and runs the task's tests on it. A task counts when some
prefix passes: no stop rule or post-processing that only cuts lines can do better. Usage:
`python scripts/cut_oracle.py RUN_DIR` (writes RUN_DIR/cut_oracle.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval import data
from eval.records import read_samples
from eval.repost import load_settings
from eval.run import judge

CUT = ("max_tokens", "time_budget")  # the last line is unfinished


def main() -> None:
    """Print the run's pass count and the oracle's as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="directory of a finished `eval run`")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per test run")
    args = parser.parse_args()
    settings = load_settings(args.run)
    tasks = {t.task_id: t for t in data.load_suite(settings.suite)}
    found: dict[str, int | None] = {}
    passed = 0
    for record in read_samples(args.run):
        lines = record["raw"].split("\n")
        if record.get("stop_reason") in CUT and len(lines) > 1:
            lines = lines[:-1]
        task = tasks[record["task_id"]]
        found[record["task_id"]] = next(
            (
                k
                for k in range(len(lines), -1, -1)
                if judge(task, "\n".join(s.rstrip() for s in lines[:k]).rstrip(), args.timeout)[
                    "passed"
                ]
            ),
            None,
        )
        passed += bool(record["passed"])
    summary = {
        "samples": len(found),
        "run_passed": passed,
        "oracle_passed": sum(k is not None for k in found.values()),
    }
    (args.run / "cut_oracle.json").write_text(json.dumps({**summary, "lines": found}, indent=1))
    print(json.dumps(summary))  # noqa: T201


if __name__ == "__main__":
    main()
