"""Hangs and crashes of the real server over stdio (tiny real CT2 model): messages out of
order, a model that fails to load, huge frames and documents, bursts, reloads, line ends.
"""

from __future__ import annotations

import time

import pytest
from lsp_helpers import ask, change, open_doc, start_server

from completion.engine import CT2Engine, load_engine
from completion.model_store import InstalledModel
from completion.pipeline import CompletionRequest, complete
from completion.positions import offset_at
from lsp_server.completer import completion_options
from lsp_server.config import ServerConfig

URI = "file:///tmp/offpilot-e2e/faults.py"
SOURCE = "def add(a, b):\n    return \n"
STEADY = {"debounceMs": 0, "timeBudgetMs": 60_000, "multiLine": False}
STEADY_CONFIG = ServerConfig(debounce_ms=0, time_budget_ms=60_000, multiline=False)


@pytest.fixture(scope="module")
def engine(tiny_model: InstalledModel) -> CT2Engine:
    return load_engine(tiny_model)


def expected(engine: CT2Engine, text: str, offset: int) -> list[str]:
    """What the pipeline itself answers for this snapshot (greedy decoding is deterministic)."""
    out = complete(engine, CompletionRequest(text, offset), completion_options(STEADY_CONFIG))
    return [out.text] if out.text else []


async def test_an_edit_after_a_unicode_line_separator(
    tiny_model: InstalledModel, engine: CT2Engine
) -> None:
    """U+2028 (and form feed, U+0085...) do not end lines in LSP: the edit lands on line 1."""
    text = "total = 1\u2028count = 2\x0cname = 3\nresult = \n"
    edited = text.replace("result = ", "result = total")
    wrong = "total = 1\u2028count = 2total\x0cname = 3\nresult = \n"  # pygls' splitlines
    position = (1, len("result = total"))
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    try:
        open_doc(client, URI, text)
        change(client, URI, 2, 1, len("result = "), "total")
        answer = await ask(client, URI, *position)
        assert answer == expected(engine, edited, offset_at(edited, *position))
        assert answer != expected(engine, wrong, offset_at(wrong, *position))
    finally:
        await client.shutdown_session()


async def test_edits_to_a_huge_document_do_not_hold_up_another(
    tiny_model: InstalledModel,
) -> None:
    """20 keystrokes near the end of a 50 MB file, then a request in a 2-line file.

    pygls re-split and rebuilt the whole text for each keystroke: the request waited 3.3 s
    (about 10 s on a busy 2-core box). Now an edit costs its piece of the text.
    """
    client = await start_server("--model", str(tiny_model.path), init_options=STEADY)
    big_uri = "file:///tmp/offpilot-e2e/huge.py"
    try:
        lines = 2_300_000
        open_doc(client, big_uri, "value = compute(1, 2)\n" * lines)  # 50.6 MB
        open_doc(client, URI, SOURCE)
        await ask(client, URI, 1, 11)  # both are open, the model is loaded
        line = lines - 1000
        for i in range(20):
            change(client, big_uri, i + 2, line, 5 + i, "x")
        started = time.monotonic()
        await ask(client, URI, 1, 11)
        waited = time.monotonic() - started
        assert waited < 1.5, f"the 2-line file waited {waited:.2f} s behind the edits"
    finally:
        await client.shutdown_session()
