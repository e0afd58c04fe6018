"""`offpilot bench replay --compare-backend URL`: the local engine and a backend in one run.

The backend here is the scripted loopback server (the measured run against llama.cpp is
in docs/latency.md): the two arms must see the same typing, interleaved.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted_backend import ScriptedBackend

from completion.models.store import InstalledModel
from offpilot.bench.replay.session import default_corpus

pytestmark = pytest.mark.backend


@pytest.fixture
def scripted() -> Iterator[ScriptedBackend]:
    server = ScriptedBackend(pieces=("x",))
    yield server
    server.close()


def test_compare_backend_replays_both_with_the_same_typing(
    tiny_model: InstalledModel, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    out_file = tmp_path / "replay.json"
    proc = subprocess.run(
        [sys.executable, "-m", "offpilot.cli", "bench", "replay", "--max-keystrokes", "60",
         "--model", str(tiny_model.path), "--compare-backend", scripted.url,
         "--out", str(out_file)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    local, backend = summary["local"], summary["backend"]
    assert local["keystrokes"] == backend["keystrokes"] >= len(default_corpus()) * 60
    # (which pauses a typing request already in flight answers depends on the server's speed)
    assert local["pause_requests"] >= 3
    assert backend["pause_requests"] >= 3
    assert backend["url"] == scripted.url
    assert len(scripted.requests) >= backend["model_requests"]["n"] >= 1  # it did generate
    ratios = summary["backend_over_local"]
    assert set(ratios) == {"pause_latency", "first_token"}
    assert ratios["pause_latency"]["p50"] > 0
    raw = json.loads(out_file.read_text())["raw"]
    # the same files typed in each arm (the keystroke counts above are equal)
    docs = {arm: sorted({t["uri"] for t in raw[arm]["traces"]}) for arm in ("local", "backend")}
    assert docs["local"] == docs["backend"]
    assert len(docs["local"]) == len(default_corpus())
