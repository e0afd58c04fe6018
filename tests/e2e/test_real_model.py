"""The real default model (Qwen2.5-Coder-0.5B int8) through the real server and CLI."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import STEADY, ask, change, open_doc, start_server
from lsprotocol import types

from completion.models.store import InstalledModel
from lsp_server.protocol import plain
from lsp_server.trace import TRACE, TraceRecord

pytestmark = pytest.mark.real_model


async def test_add_completes_over_lsp(real_model: InstalledModel) -> None:
    # correctness, not latency: no time budget, so a busy machine cannot cut the answer short
    client = await start_server(
        "--model", str(real_model.path), init_options={"timeBudgetMs": 60_000}
    )
    try:
        uri = "file:///tmp/offpilot-e2e/add.py"
        open_doc(client, uri, "def add(a, b):\n    return \n")
        assert await ask(client, uri, 1, 11) == ["a + b"]
        # mid-file, with code below the cursor and a unicode line above
        text = 'GREETING = "héllo 😀"\n\n\ndef is_even(n):\n    return \n\n\nprint(is_even(4))\n'
        uri2 = "file:///tmp/offpilot-e2e/even.py"
        open_doc(client, uri2, text)
        [suggestion] = await ask(client, uri2, 4, 11)
        assert "%" in suggestion
        assert "2" in suggestion
    finally:
        await client.shutdown_session()


async def test_the_first_request_is_answered(real_model: InstalledModel) -> None:
    """A request that arrives while the model loads gets its whole time budget after the load.

    The budget counted from the request's arrival, so a load longer than the budget (1.7 s
    here against 1 s) left an editor's first request an empty answer.
    """
    client = await start_server(
        "--model", str(real_model.path), init_options={"timeBudgetMs": 1000}
    )
    try:
        uri = "file:///tmp/offpilot-e2e/first.py"
        open_doc(client, uri, "def add(a, b):\n    return \n")
        assert await ask(client, uri, 1, 11) == ["a + b"]
    finally:
        await client.shutdown_session()


def test_complete_cli(real_model: InstalledModel, tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import math\n\n\ndef area_of_circle(r):\n    return \n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "offpilot.cli",
            "complete",
            str(src),
            "4",
            "11",
            "--model",
            str(real_model.path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "math.pi" in out.stdout
    assert "r" in out.stdout


def test_default_install_prunes_the_output_vocabulary(real_model: InstalledModel) -> None:
    """`offpilot model install` keeps only code tokens as outputs, and the engine maps ids back."""
    from completion.engines.ct2 import CT2Engine, EngineOptions
    from completion.engines.interface import GenerationParams

    info = real_model.manifest.output_vocabulary
    assert info["tokens"] == "qwen2-code-tokens"
    assert 90_000 < info["rows"] < info["of"] == 151_936
    engine = CT2Engine(real_model, EngineOptions(warmup=False))
    prompt = engine.encode("# 日本語のコメント\ndef is_palindrome(s):\n    return s ==")
    ids = list(engine.stream(prompt, GenerationParams(max_new_tokens=8, time_budget_s=None)))
    assert engine.decode(ids).lstrip().startswith("s[::-1]")


async def test_the_gate_on_the_real_models_answers(real_model: InstalledModel) -> None:
    """The default gate over LSP: a sure answer is shown, and the trace says how it scored."""
    settings = {"timeBudgetMs": 60_000, "completionTrace": True, "prefetch": False}
    client = await start_server("--model", str(real_model.path), init_options=settings)
    records: list[dict[str, Any]] = []

    @client.feature(TRACE)
    def on_trace(params: Any) -> None:
        records.append(plain(params))

    try:
        uri = "file:///tmp/offpilot-e2e/gate-add.py"
        open_doc(client, uri, "def add(a, b):\n    return \n")
        assert await ask(client, uri, 1, 11) == ["a + b"]
    finally:
        await client.shutdown_session()
    [record] = [TraceRecord.from_json(r) for r in records if r.get("uri") == uri]
    assert (record.gate_point, record.gated) == ("balanced", False)
    assert record.gate_score is not None
    assert record.gate_threshold is not None
    assert record.gate_threshold <= record.gate_score < 1


async def test_coming_back_to_a_file_computes_no_prompt_again(real_model: InstalledModel) -> None:
    """Two files in turn through the server: the return restores the place it left (llama.cpp).

    The completion cache is off, so every request reaches the engine; the trace records say
    how many prompt tokens each reused.
    """
    settings = {**STEADY, "cache": False, "prefetch": False, "completionTrace": True}
    client = await start_server("--model", str(real_model.path), init_options=settings)
    records: list[TraceRecord] = []

    @client.feature(TRACE)
    def on_trace(params: Any) -> None:
        records.append(TraceRecord.from_json(plain(params)))

    files = {}
    for name, module in (("module", threading), ("its_test", argparse)):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        above = source[:6000].rsplit("\n\n", 1)[0]  # up to a blank line, below from there
        below = source[len(above) :].lstrip("\n")[:3000]
        uri = f"file:///tmp/offpilot-e2e/places/{name}.py"
        # the cursor on an empty line opened between the two
        files[name] = uri, above + "\n\n\n" + below, above.count("\n") + 2
    try:
        for uri, text, _ in files.values():
            open_doc(client, uri, text)
        answers = []
        for name in ("module", "its_test", "module"):
            uri, _, line = files[name]
            answers.append(await ask(client, uri, line, 0))
    finally:
        await client.shutdown_session()
    first, _, back = [r for r in records if r.kind == "request"]
    assert first.prompt_tokens > 500
    assert back.prompt_tokens == first.prompt_tokens
    assert back.reused_tokens >= back.prompt_tokens - 1  # restored, not computed
    assert answers[2] == answers[0]


def trace_of(params: Any) -> TraceRecord:
    return TraceRecord.from_json(plain(params))


async def test_a_warm_where_the_cursor_rests_spares_the_first_request_its_prompt(
    real_model: InstalledModel,
) -> None:
    """The cursor lands in a long file and rests; the user then types there.

    With `warm` on, the client's `offpilot/cursorRested` computes the prompt meanwhile, and the
    request after the keystroke computes only what was typed; with it off, the request
    computes the whole prompt. The trace records say how many prompt tokens each reused.
    """
    source = Path(threading.__file__ or "").read_text(encoding="utf-8")
    above = source[:6000].rsplit("\n\n", 1)[0]
    below = source[len(above) :].lstrip("\n")[:3000]
    text = above + "\n\n\n" + below
    line = above.count("\n") + 2  # an empty line opened between the two
    computed = {}
    for warm in (True, False):
        settings = {**STEADY, "prefetch": False, "completionTrace": True, "warm": warm}
        client = await start_server("--model", str(real_model.path), init_options=settings)
        records: list[TraceRecord] = []
        client.feature(TRACE)(lambda params, kept=records: kept.append(trace_of(params)))

        uri = f"file:///tmp/offpilot-e2e/warm-{warm}.py"
        try:
            open_doc(client, uri, text)
            client.protocol.notify(
                "offpilot/cursorRested",
                {"textDocument": {"uri": uri}, "position": {"line": line, "character": 0}},
            )
            for _ in range(900):  # the user reads while the model loads and the prompt is computed
                stats = await client.workspace_execute_command_async(
                    types.ExecuteCommandParams(command="offpilot.stats")
                )
                if sum(stats["warms"].values()) or not warm:
                    break
                await asyncio.sleep(0.1)
            assert stats["warms"] == ({"computed": 1} if warm else {"skipped": 1})
            change(client, uri, 2, line, 0, "x = ")
            await ask(client, uri, line, 4)
        finally:
            await client.shutdown_session()
        [record] = [r for r in records if r.kind == "request" and r.uri == uri]
        assert record.prompt_tokens > 500
        computed[warm] = record.prompt_tokens - record.reused_tokens
    assert computed[True] <= 10  # the typed tokens and the line's end
    assert computed[False] > 500


async def test_requests_during_the_model_load_are_answered(real_model: InstalledModel) -> None:
    """llama.cpp's binding pointed stdout at /dev/null while it loaded a model: every answer
    the server wrote meanwhile was lost, and the client waited for ever."""
    client = await start_server("--model", str(real_model.path))
    try:
        before_ready = 0
        for _ in range(300):
            ready = any(s["state"] == "ready" for s in client.statuses)  # type: ignore[attr-defined]
            stats = await asyncio.wait_for(
                client.workspace_execute_command_async(
                    types.ExecuteCommandParams(command="offpilot.stats")
                ),
                10,
            )
            assert "requests" in stats
            if ready:
                break
            before_ready += 1
            await asyncio.sleep(0.05)
        assert ready
        assert before_ready >= 3  # asked while it loaded
    finally:
        await client.shutdown_session()
