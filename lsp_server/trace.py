"""One machine-readable record per finished completion request (`offpilot/completionTrace`).

Sent only to a client that asks for it (`completionTrace: true` in its settings), so editors
see nothing new. The benchmark (`offpilot bench replay`) reads these records instead of the
human log line, which stays as it is for people. The record's shape lives here once: the
server builds it, a client parses it back with `TraceRecord.from_json`.

Two kinds: `request`, when a request is answered (or cancelled, or fails), and `block_rest`,
when the rest of a block whose first line was already shown has been written (its `id` is
the request that showed the first line).

Each says what the show-or-not gate (completion/gate.py) did: the operating point, the
threshold it used for the request's language (the user's own shift applied), the answer's
score and whether the gate hid some or all of it (`text` is what was shown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from completion import gate
from completion.pipeline import CompletionResult
from lsp_server.completer import Outcome, Source

TRACE = "offpilot/completionTrace"

REQUEST = "request"
BLOCK_REST = "block_rest"

# the pipeline's trigger decision -> what the user gets
_MODES = {"single": "line", "multi": "block", "none": "none"}

# field name -> its camelCase JSON key
_KEYS = {
    "kind": "kind",
    "id": "id",
    "uri": "uri",
    "line": "line",
    "character": "character",
    "source": "source",
    "stop": "stop",
    "mode": "mode",
    "text": "text",
    "stages_ms": "stagesMs",
    "prompt_tokens": "promptTokens",
    "reused_tokens": "reusedTokens",
    "first_token_ms": "firstTokenMs",
    "decode_ms": "decodeMs",
    "decode_tokens": "decodeTokens",
    "since_arrival_ms": "sinceArrivalMs",
    "gate_point": "gatePoint",
    "gate_threshold": "gateThreshold",
    "gate_score": "gateScore",
    "gated": "gated",
}


@dataclass(frozen=True)
class TraceRecord:
    """What one request cost and how it was served."""

    kind: str  # request | block_rest
    id: int | str | None  # the JSON-RPC id of the request
    uri: str
    source: str  # a `Source` of lsp_server/completer.py, or "block" for `block_rest`
    stop: str = ""  # the stop reason of a generation
    mode: str = ""  # line | block | none ('' when no generation ran for this request)
    text: str = ""  # what was shown (the whole block for `block_rest`)
    line: int | None = None  # the request's position (None for `block_rest`)
    character: int | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)  # the pipeline's, plus convert
    prompt_tokens: int = 0  # of a generation: the prompt's length
    reused_tokens: int = 0  # of those, the ones whose model state was cached
    first_token_ms: float | None = None  # from the generation's start to its first token
    decode_ms: float | None = None  # the rest of the generation
    decode_tokens: int = 0  # tokens generated
    since_arrival_ms: float | None = None  # `block_rest`: from the request's arrival
    gate_point: str = ""  # the gate's operating point: off, quiet, balanced, eager
    # the least score shown, the user's shift applied; None: the gate is off, or the request
    # never reached the completer
    gate_threshold: float | None = None
    gate_score: float | None = None  # P(right) of the answer; None: not scored by this request
    gated: bool = False  # the gate hid the answer, or all of a block but its first line

    @property
    def computed_tokens(self) -> int:
        """Prompt tokens the model had to compute (not reused)."""
        return max(0, self.prompt_tokens - self.reused_tokens)

    def to_json(self) -> dict[str, Any]:
        """The notification's params (camelCase keys, as LSP messages have)."""
        out = {_KEYS[f.name]: getattr(self, f.name) for f in fields(self)}
        out["computedTokens"] = self.computed_tokens
        return out

    @classmethod
    def from_json(cls, data: Any) -> TraceRecord:
        """Parse a record; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"a trace record is an object, not {type(data).__name__}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = _KEYS[f.name]
            if key in data:
                values[f.name] = data[key]
        for required in ("kind", "uri", "source"):
            if not isinstance(values.get(required), str):
                raise ValueError(f"a trace record needs a string {_KEYS[required]!r}")
        stages = values.get("stages_ms", {})
        if not isinstance(stages, dict) or not all(
            isinstance(k, str) and _is_number(v) for k, v in stages.items()
        ):
            raise ValueError("stagesMs must map stage names to milliseconds")
        values["stages_ms"] = {k: float(v) for k, v in stages.items()}
        for name in ("prompt_tokens", "reused_tokens", "decode_tokens"):
            value = values.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{_KEYS[name]} must be a count, got {value!r}")
        for name in ("first_token_ms", "decode_ms", "since_arrival_ms"):
            value = values.get(name)
            if value is not None and not _is_number(value):
                raise ValueError(f"{_KEYS[name]} must be milliseconds, got {value!r}")
        for name in ("gate_threshold", "gate_score"):
            value = values.get(name)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"{_KEYS[name]} must be a probability, got {value!r}")
        for name in ("stop", "mode", "text", "gate_point"):
            if not isinstance(values.get(name, ""), str):
                raise ValueError(f"{_KEYS[name]} must be a string")
        if not isinstance(values.get("gated", False), bool):
            raise ValueError("gated must be true or false")
        return cls(**values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _generation(timings_ms: dict[str, float]) -> tuple[float | None, float | None]:
    """(time to first token, decode time) of a generation's timings, when it produced one."""
    first = timings_ms.get("first_token")
    generate = timings_ms.get("generate")
    if not first or generate is None:
        return None, None
    return first, max(0.0, generate - first)


def _gate_fields(
    result: CompletionResult, point: str, threshold: float | None
) -> tuple[str, float | None, float | None, bool]:
    """(point, threshold, score, gated) of an answer, for the record's gate fields.

    `threshold` is the completer's for the request (its engine's runtime and language,
    the user's shift), reported where no verdict carries the one the answer was judged by.
    """
    verdict = result.verdict
    if verdict is not None and verdict.score is not None:
        threshold = verdict.threshold  # the one it was judged by (its language's)
    score = verdict.score if verdict is not None else None
    # only an answer the gate judged can have been hidden by it (served ones were judged before)
    return point, threshold, score, verdict is not None and result.gated


def request_record(
    msg_id: int | str | None,
    uri: str,
    line: int,
    character: int,
    outcome: Outcome,
    convert_ms: float = 0.0,
    point: str = gate.DEFAULT_POINT,
) -> TraceRecord:
    """The record of one answered (or failed, or cancelled) request, at the gate's `point`."""
    result = outcome.result
    model = outcome.source is Source.MODEL
    first, decode = _generation(result.timings_ms) if model else (None, None)
    point, threshold, score, gated = _gate_fields(result, point, outcome.gate_threshold)
    return TraceRecord(
        REQUEST,
        msg_id,
        uri,
        str(outcome.source),
        result.stop_reason,
        _MODES.get(result.mode, result.mode),
        result.text,
        line,
        character,
        {"convert": convert_ms, **result.timings_ms},
        result.prompt_tokens,
        result.reused_tokens,
        first,
        decode,
        result.generated_tokens if model else 0,
        gate_point=point,
        gate_threshold=threshold,
        gate_score=score,
        gated=gated,
    )


def block_record(
    msg_id: int | str | None,
    uri: str,
    result: CompletionResult,
    since_arrival_ms: float,
    gate_threshold: float | None = None,
    point: str = gate.DEFAULT_POINT,
) -> TraceRecord:
    """The record of a block's rest, written after its first line was shown."""
    first, decode = _generation(result.timings_ms)
    point, threshold, score, gated = _gate_fields(result, point, gate_threshold)
    return TraceRecord(
        BLOCK_REST,
        msg_id,
        uri,
        "block",
        result.stop_reason,
        _MODES.get(result.mode, result.mode),
        result.text,
        stages_ms=dict(result.timings_ms),
        prompt_tokens=result.prompt_tokens,
        reused_tokens=result.reused_tokens,
        first_token_ms=first,
        decode_ms=decode,
        decode_tokens=result.generated_tokens,
        since_arrival_ms=since_arrival_ms,
        gate_point=point,
        gate_threshold=threshold,
        gate_score=score,
        gated=gated,
    )
