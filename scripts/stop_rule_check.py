"""Check the multi-line stop rule against reference answers, without a model.

For every task of the HumanEval multi-line suite, the reference middle is followed by what a
model typically writes next (the suffix's own lines, or test code at the end of the file)
and streamed through the pipeline's stop rule. Counts how often the rule cuts exactly at
the end of the reference, too early ("short") or too late ("long"), split by whether the
hole is at the end of the file. Usage: `python scripts/stop_rule_check.py [--limit N]`.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from completion.context import extract_context
from completion.options import CompletionOptions
from completion.stops import cut_offline
from completion.trigger import Mode
from eval import data
from eval.run import request_for

TEST_CODE = "\n\ndef check(candidate):\n    assert candidate\n"


def main() -> None:
    """Print the counts as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N tasks")
    args = parser.parse_args()
    tasks = data.select(data.load_suite("humaneval-multi-line"), args.limit, 0)
    options = CompletionOptions()
    counts: Counter[str] = Counter()
    for task in tasks:
        request = request_for(task)
        context = extract_context(request.text, request.offset, request.language, request.path)
        rule = options.stop_rule(context, Mode.MULTI)
        after = task.suffix.lstrip("\n") if task.suffix.strip() else TEST_CODE
        got, _ = cut_offline(task.canonical_solution + after, rule, "end_token")
        want = task.canonical_solution.rstrip()
        if got.rstrip() == want:
            verdict = "exact"
        elif want.startswith(got.rstrip()):
            verdict = "short"
        else:
            verdict = "long"
        where = "end of file" if not task.suffix.strip() else "code below"
        counts[f"{verdict}, {where}"] += 1
        counts[verdict] += 1
    print(json.dumps({"tasks": len(tasks), **dict(sorted(counts.items()))}, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
