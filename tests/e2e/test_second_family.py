"""The second family (the tiny StarCoder) through the real server and the real benchmark CLI.

Greedy decoding of that checkpoint after `<fim_middle>` writes " a + b" and then its
`<filename>` stop token, then LEAK (tests/tiny_model.py): an answer of exactly `a + b`
shows that the server and the benchmark built a PSM prompt in StarCoder's tokens and
stopped at its stop token, with nothing but the installed model's directory to go on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lsp_helpers import STEADY, ask, expected, open_doc, start_server
from tiny_model import STARCODER_ANSWER

from completion.engines.ct2 import load_engine
from completion.models.store import InstalledModel

URI = "file:///tmp/offpilot-e2e/family.py"
SOURCE = "def add(a, b):\n    return \n"


async def test_the_server_answers_with_the_starcoder_model(
    tiny_starcoder: InstalledModel,
) -> None:
    client = await start_server("--model", str(tiny_starcoder.path), init_options=STEADY)
    try:
        open_doc(client, URI, SOURCE)
        items = await ask(client, URI, 1, 11)
        assert items == [STARCODER_ANSWER.strip()]
        assert items == expected(load_engine(tiny_starcoder), SOURCE, len("def add(a, b):\n") + 11)
        states = [s["state"] for s in client.statuses]  # type: ignore[attr-defined]
        assert states[:2] == ["loading", "ready"]
    finally:
        await client.shutdown_session()


def test_eval_run_scores_the_starcoder_model(
    tiny_starcoder: InstalledModel, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "offpilot.cli", "eval", "run", "--suite", "humaneval-single-line"]
    cmd += ["--limit", "3", "--workers", "1", "--time-budget", "30", "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--model", str(tiny_starcoder.path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["tasks"] == 3
    assert "pass@1" in summary
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3
    settings = json.loads((out / "settings.json").read_text())
    assert settings["model"] == "tiny-starcoder"
    # Every prompt ends in `<fim_middle>`, so every answer is the same one, cut by a stop
    # rule (a whole-line hole's block floor cuts it at once) or ended at `<filename>`.
    for record in records:
        assert STARCODER_ANSWER.startswith(record["raw"]), record
    ended = [r for r in records if r["stop_reason"] == "end_token"]
    assert ended
    assert all(r["raw"] == STARCODER_ANSWER for r in ended)
