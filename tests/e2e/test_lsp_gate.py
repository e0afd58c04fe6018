"""The gate's per-user threshold through the real server over stdio, with a simulated user.

The tiny StarCoder writes `a + b` wherever it is asked (tests/tiny_model.py), sure of every
token, so the gate shows it: right after `return` in an `add`, wrong anywhere else. The user
accepts the right suggestions and rejects the wrong ones, as an editor reports them
(`offpilot/didShow`, `didAccept`, `didRejectCompletion`); the trace records say which
threshold the gate used for each request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import STEADY, ask, open_doc, start_server
from lsprotocol import types
from pytest_lsp import LanguageClient

from completion import gate
from completion.models.store import InstalledModel
from lsp_server.protocol import plain
from lsp_server.trace import TRACE, TraceRecord

# eager: the most suggestions shown, so the user has the most to judge
POINT = "eager"
SETTINGS = {**STEADY, "prefetch": False, "completionTrace": True, "gate": POINT}
RIGHT = "a + b"
PYTHON_ROUNDS = 30  # every fifth one right: the user rejects 4 in 5
RUST_ROUNDS = 8  # fewer verdicts than gate.MIN_VERDICTS: the threshold must stay put


def _python(i: int) -> tuple[str, int, int, str | None]:
    """A Python document, the cursor (line, character) and the right answer there, if any."""
    if i % 5 == 0:
        return f"def add(a, b):\n    return \n\n# {i}\n", 1, 11, RIGHT
    return f"x{i} = {i}\ny{i} = \n", 1, len(f"y{i} = "), None


def _rust(i: int) -> tuple[str, int, int, str | None]:
    if i % 2 == 0:
        return f"fn add{i}(a: i32, b: i32) -> i32 {{\n    return \n}}\n", 1, 11, RIGHT
    return f"fn f{i}() {{\n    let v{i} = \n}}\n", 1, len(f"    let v{i} = "), None


class User:
    """Asks for a suggestion in a new document, then accepts it if right, else rejects it."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.verdicts: dict[str, list[bool]] = {"python": [], "rust": []}

    async def visit(self, language: str, i: int) -> None:
        text, line, character, right = (_python if language == "python" else _rust)(i)
        uri = f"file:///tmp/offpilot-e2e/gate/{language}{i}.{language[:2]}"
        open_doc(self.client, uri, text, language)
        shown = await ask(self.client, uri, line, character)
        if not shown:
            return
        event = {"uri": uri, "languageId": language}
        self.client.protocol.notify("offpilot/didShowCompletion", {**event, "text": shown[0]})
        if shown[0] == right:
            accepted = {**event, "acceptedLength": len(right)}
            self.client.protocol.notify("offpilot/didAcceptCompletion", accepted)
        else:
            self.client.protocol.notify("offpilot/didRejectCompletion", event)
        self.verdicts[language].append(shown[0] == right)

    async def written(self) -> None:
        """Wait until the server has counted every verdict sent (its stats summary)."""
        await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="offpilot.stats")
        )


async def test_a_users_rejects_raise_the_threshold_in_their_language_only(
    tiny_starcoder: InstalledModel, tmp_path: Path
) -> None:
    env = {"OFFPILOT_STATE_DIR": str(tmp_path)}  # the real user's stats stay untouched
    client = await start_server("--model", str(tiny_starcoder.path), init_options=SETTINGS, env=env)
    records: list[dict[str, Any]] = []

    @client.feature(TRACE)
    def on_trace(params: Any) -> None:
        records.append(plain(params))

    user = User(client)
    try:
        for i in range(PYTHON_ROUNDS):
            await user.visit("python", i)
            if i < RUST_ROUNDS:
                await user.visit("rust", i)
        await user.written()
        await user.visit("python", PYTHON_ROUNDS + 1)  # after every verdict is counted
        await user.visit("rust", RUST_ROUNDS + 1)
    finally:
        await client.shutdown_session()

    python, rust = user.verdicts["python"], user.verdicts["rust"]
    assert len(python) > gate.MIN_VERDICTS, "the gate hid the tiny model's answers"
    assert 0 < sum(python) < len(python) / 2  # the user rejects most
    assert 0 < sum(rust) < len(rust) < gate.MIN_VERDICTS
    shipped = gate.shipped_model("ctranslate2")  # the tiny model has no GGUF: CTranslate2 runs it
    base = shipped.threshold(POINT, 0.0, "python")
    rust_base = shipped.threshold(POINT, 0.0, "rust")
    assert base is not None
    assert rust_base is not None
    by_language: dict[str, list[float]] = {"python": [], "rust": []}
    for data in records:
        record = TraceRecord.from_json(data)
        assert record.source == "model", record
        assert (record.gate_point, record.gated) == (POINT, False)  # all shown: eager and sure
        assert record.gate_score is not None
        assert record.gate_threshold is not None
        by_language["python" if record.uri.endswith(".py") else "rust"].append(
            record.gate_threshold
        )
    moved = by_language["python"]
    assert len(moved) == PYTHON_ROUNDS + 1
    assert moved[0] == pytest.approx(base)  # no verdicts yet
    assert all(base - 1e-9 <= t <= base + gate.MAX_SHIFT + 1e-9 for t in moved)
    # the last request's threshold is the one the whole record gives (the last visit's own
    # verdict came after its request)
    last = gate.user_shift(sum(python[:-1]), len(python[:-1]) - sum(python[:-1]))
    assert last > 0
    assert moved[-1] == pytest.approx(shipped.threshold(POINT, last, "python"))
    assert by_language["rust"] == [pytest.approx(rust_base)] * (RUST_ROUNDS + 1)
    assert (tmp_path / "stats.json").exists()
