"""Generate stage: stream from the engine until a text rule or an engine rule stops it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from completion.engine import Engine, GenerationParams

StopRule = Callable[[str], int | None]
"""Given the text so far, the index to cut it at (generation stops), or None to go on."""

RULE = "stop_rule"


@dataclass(frozen=True)
class Generated:
    """Raw model output and how it ended."""

    text: str
    stop_reason: str
    tokens: int
    first_token_ms: float | None
    ms: float


def generate(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: GenerationParams,
    stop_rule: StopRule,
    cancel: threading.Event | None = None,
    static_len: int = 0,
) -> Generated:
    """Stream tokens, decoding as we go; the stream is closed as soon as a rule fires."""
    started = time.monotonic()
    stream = engine.stream(prompt_ids, params, cancel, static_len)
    ids: list[int] = []
    text = ""
    reason: str | None = None
    try:
        for token in stream:
            ids.append(token)
            text = engine.decode(ids)
            cut = stop_rule(text)
            if cut is not None:
                text, reason = text[:cut], RULE
                break
    finally:
        stream.close()
    first = stream.first_token_s
    return Generated(
        text=text,
        stop_reason=reason or stream.reason,
        tokens=len(ids),
        first_token_ms=None if first is None else first * 1000,
        ms=(time.monotonic() - started) * 1000,
    )


def single_line_stop(text: str) -> int | None:
    """Cut at the first line break: a single-line completion stays on the cursor's line."""
    cut = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=-1)
    return None if cut < 0 else cut
