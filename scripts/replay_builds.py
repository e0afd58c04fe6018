"""The users' typing replay of two checkouts' servers, interleaved, with the same typing.

`offpilot bench replay` compares settings of one build; a change to the product code needs
two builds side by side. Each arm's server runs from its own checkout (`PYTHONPATH`), both
take turns file by file (`replay_interleaved`), threads pinned (2, or the cores `--load`
leaves) so that neither counts the other's turn as load. Run it from outside both
checkouts. Usage:

    python scripts/replay_builds.py before=/path/to/old after=/path/to/new --out replay.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import offpilot.lsp_client as lsp_client
from offpilot.bench.replay.cli import _figures
from offpilot.bench.replay.load import busy_cores
from offpilot.bench.replay.session import ReplayOptions, default_corpus, replay_interleaved


def _server_command(root: str, *extra: str) -> list[str]:
    """`offpilot serve` from the checkout at `root` (the arm's first server argument)."""
    return ["env", f"PYTHONPATH={root}", sys.executable, "-m", "offpilot.cli", "serve", *extra]


def main() -> int:
    """Replay both arms, write the figures (and the raw records) to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs=2, metavar="NAME=CHECKOUT")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-keystrokes", type=int, default=ReplayOptions.max_keystrokes)
    parser.add_argument("--load", type=int, default=0, help="keep N cores busy meanwhile")
    parser.add_argument(
        "--switch-lines", type=int, default=0, help="two files at once, N lines each in turn"
    )
    parser.add_argument(
        "--land-ms", type=float, default=0.0, help="read where the cursor lands, then type"
    )
    args = parser.parse_args()
    arms = dict(arm.split("=", 1) for arm in args.arms)
    lsp_client.server_command = _server_command  # type: ignore[assignment]
    # the threads `auto` would take with that load (it would sample the other arm's turn)
    threads = max(1, (os.cpu_count() or 1) - args.load)
    opts = ReplayOptions(
        seed=args.seed,
        max_keystrokes=args.max_keystrokes,
        switch_lines=args.switch_lines,
        land_ms=args.land_ms,
        server_config={"threads": threads},
    )
    with tempfile.TemporaryDirectory() as tmp, busy_cores(args.load):
        server_args = {
            name: [str(Path(root).resolve()), "--log-file", f"{tmp}/{name}.log"]
            for name, root in arms.items()
        }
        reports = asyncio.run(replay_interleaved(default_corpus(), opts, server_args))
    summary = {name: _figures(report) for name, report in reports.items()}
    raw = {name: asdict(report) for name, report in reports.items()}
    Path(args.out).write_text(json.dumps({"summary": summary, "raw": raw}, indent=1))
    for name, figures in summary.items():
        print(name, json.dumps(figures["pause_latency_ms"]))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
