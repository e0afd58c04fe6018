"""The trace record: built from what the completer returns, parsed back by a client."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from concurrent.futures import Future
from typing import Any

import pytest

from completion import gate
from completion.engines.fake import FakeEngine
from completion.engines.interface import Engine
from completion.pipeline import CompletionRequest, CompletionResult
from lsp_server.completer import Completer, Outcome, Snapshot, Source
from lsp_server.config import ServerConfig, parse_config
from lsp_server.trace import BLOCK_REST, REQUEST, TraceRecord, block_record, request_record


def ready(engine: Engine) -> Future[Engine]:
    f: Future[Engine] = Future()
    f.set_result(engine)
    return f


MODEL = Outcome(
    Source.MODEL,
    CompletionResult(
        "a + b",
        "end_token",
        prompt_tokens=120,
        generated_tokens=5,
        timings_ms={
            "context": 1.0,
            "prompt": 2.0,
            "first_token": 30.0,
            "generate": 80.0,
            "total": 84.0,
        },
        mode="single",
        reused_tokens=100,
    ),
)


def test_a_model_answer_round_trips_with_its_cost() -> None:
    record = request_record(3, "file:///a.py", 1, 11, MODEL, 0.5)
    data = record.to_json()
    assert data["stagesMs"] == {"convert": 0.5, **MODEL.result.timings_ms}
    assert (data["firstTokenMs"], data["decodeMs"], data["decodeTokens"]) == (30.0, 50.0, 5)
    assert (data["promptTokens"], data["reusedTokens"], data["computedTokens"]) == (120, 100, 20)
    assert (data["kind"], data["mode"], data["stop"]) == (REQUEST, "line", "end_token")
    assert TraceRecord.from_json(data) == record


def test_answers_without_a_generation_have_no_generation_figures() -> None:
    reused = Outcome.served(Source.REUSED, "b", dict(MODEL.result.timings_ms))
    cached = Outcome.served(Source.CACHE, "x", {"total": 1.0})
    for outcome in (cached, reused, Outcome(Source.CANCELLED)):
        record = request_record("r1", "file:///a.py", 0, 0, outcome)
        assert (record.first_token_ms, record.decode_ms, record.decode_tokens) == (None, None, 0)
        assert TraceRecord.from_json(record.to_json()) == record


GOOD: dict[str, Any] = request_record(1, "file:///a.py", 0, 0, MODEL).to_json()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (None, "is an object, not NoneType"),
        ([1, 2], "is an object, not list"),
        ("record", "is an object, not str"),
        ({k: v for k, v in GOOD.items() if k != "kind"}, "needs a string 'kind'"),
        ({**GOOD, "source": 3}, "needs a string 'source'"),
        ({**GOOD, "stagesMs": [1, 2]}, "stagesMs must map"),
        ({**GOOD, "stagesMs": {"total": "fast"}}, "stagesMs must map"),
        ({**GOOD, "stagesMs": {"total": math.nan}}, "stagesMs must map"),
        ({**GOOD, "promptTokens": -1}, "promptTokens must be a count"),
        ({**GOOD, "reusedTokens": True}, "reusedTokens must be a count"),
        ({**GOOD, "decodeTokens": 1.5}, "decodeTokens must be a count"),
        ({**GOOD, "firstTokenMs": "12"}, "firstTokenMs must be milliseconds"),
        ({**GOOD, "decodeMs": math.inf}, "decodeMs must be milliseconds"),
        ({**GOOD, "text": None}, "text must be a string"),
        ({**GOOD, "gateScore": 1.5}, "gateScore must be a probability"),
        ({**GOOD, "gateThreshold": "0.3"}, "gateThreshold must be a probability"),
        ({**GOOD, "gated": 1}, "gated must be true or false"),
        ({**GOOD, "gatePoint": None}, "gatePoint must be a string"),
    ],
)
def test_what_is_not_a_record_is_refused(bad: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        TraceRecord.from_json(bad)


def test_unknown_keys_are_ignored_so_records_can_grow() -> None:
    assert TraceRecord.from_json({**GOOD, "queueMs": 3}) == TraceRecord.from_json(GOOD)


def test_the_setting_is_off_by_default_and_parsed() -> None:
    assert ServerConfig().completion_trace is False
    config, warnings = parse_config({"completionTrace": True})
    assert config.completion_trace is True
    assert warnings == []
    config, warnings = parse_config({"completionTrace": "yes"})
    assert config.completion_trace is False
    assert "completionTrace" in warnings[0]


async def test_a_blocks_rest_is_traced_with_the_request_that_showed_its_first_line() -> None:
    block = "total = 0\n    for i in range(n):\n        total += i\n    return total\n"
    engine = FakeEngine(default=block, step_delay_s=0.01)
    records: list[TraceRecord] = []
    completer = Completer(
        ServerConfig(debounce_ms=0, prefetch=False),
        on_block=lambda *block: records.append(block_record(*block)),
    )
    doc = "def f(n):\n    \n\nprint(f(1))\n"
    cursor = doc.index("    \n") + 4
    snap = Snapshot("file:///a.py", CompletionRequest(doc, cursor, "python"))
    first = await completer.complete(snap, ready(engine), request_id=41)
    assert (first.result.stop_reason, first.result.mode) == ("first_line", "multi")
    for _ in range(500):
        if records:
            break
        await asyncio.sleep(0.01)
    (rest,) = records
    assert (rest.kind, rest.id, rest.uri, rest.source, rest.mode) == (
        BLOCK_REST, 41, "file:///a.py", "block", "block",
    )  # fmt: skip
    assert rest.text == block.rstrip("\n")
    assert rest.prompt_tokens > 0
    assert rest.decode_tokens > 0
    assert rest.since_arrival_ms is not None
    assert rest.since_arrival_ms >= first.result.timings_ms["total"]
    assert rest.first_token_ms is not None
    assert rest.decode_ms is not None
    assert (rest.gate_point, rest.gated) == (gate.DEFAULT_POINT, False)  # shown whole
    assert rest.gate_score is not None
    # the block's language's own threshold (a.py: Python)
    assert rest.gate_threshold == gate.shipped_model().threshold(gate.DEFAULT_POINT, 0.0, "python")


def test_the_gate_fields_say_what_the_gate_did() -> None:
    """Point, threshold with the user's shift, score, and whether the answer was hidden."""
    hidden = Outcome(
        Source.MODEL,
        CompletionResult(
            "", "end_token", answer="a + b", verdict=gate.Verdict(0.12, False, None, 0.3)
        ),
        gate_shift=0.05,
    )
    data = request_record(4, "file:///a.py", 1, 11, hidden, point="quiet").to_json()
    threshold = 0.3  # the one the answer was judged by
    assert (data["gatePoint"], data["gateThreshold"], data["gateScore"], data["gated"]) == (
        "quiet", threshold, 0.12, True,
    )  # fmt: skip
    assert data["text"] == ""
    assert TraceRecord.from_json(data).to_json() == data

    shown = Outcome(Source.MODEL, dataclasses.replace(MODEL.result, answer="a + b"))
    off = request_record(5, "file:///a.py", 1, 11, shown, point="off")
    assert (off.gate_point, off.gate_threshold, off.gated) == ("off", None, False)
    cached = Outcome.served(Source.CACHE, "a + b", {"total": 1.0})
    record = request_record(
        6, "file:///a.py", 1, 11, dataclasses.replace(cached, gate_threshold=0.2)
    )
    assert (record.gate_score, record.gated) == (None, False)  # judged when it was made
    assert record.gate_threshold == 0.2  # the completer's, for the request
    never = request_record(7, "file:///a.py", 0, 0, Outcome(Source.NOT_OPEN))
    assert (never.gate_threshold, never.gate_score, never.gated) == (None, None, False)
