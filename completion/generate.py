"""Generate stage: stream from the engine until a text rule or an engine rule stops it.

The rules themselves live in completion/stops.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from completion.engines.interface import Engine, GenerationParams
from completion.stops import RULE, StopReason, StopRule, final_cut


@dataclass(frozen=True)
class Generated:
    """Raw model output and how it ended."""

    text: str
    stop_reason: str
    tokens: int
    first_token_ms: float | None
    ms: float
    reused_tokens: int = 0  # prompt tokens served from the engine's cached head
    log_probs: tuple[float, ...] = ()  # of each generated token (`tokens` of them)


def generate(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: GenerationParams,
    stop_rule: StopRule,
    cancel: threading.Event | None = None,
    static_len: int = 0,
    on_text: Callable[[str, Sequence[float]], None] | None = None,
) -> Generated:
    """Stream tokens, decoding as we go; the stream is closed as soon as a rule fires.

    `on_text` sees the output, and its tokens' log-probs, after every token the stop rule
    let through.
    """
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
            if on_text is not None:
                on_text(text, stream.log_probs)
        else:
            cut = final_cut(text, stop_rule)
            if cut is not None:
                text, reason = text[:cut], RULE
    finally:
        stream.close()
    if stream.reason == StopReason.BACKEND_ERROR and reason is None:
        text = ""  # what a failed server sent before it failed (a cut stream) is no answer
    first = stream.first_token_s
    return Generated(
        text=text,
        stop_reason=reason or stream.reason,
        tokens=len(ids),
        first_token_ms=None if first is None else first * 1000,
        ms=(time.monotonic() - started) * 1000,
        reused_tokens=stream.reused_tokens,
        log_probs=tuple(stream.log_probs[: len(ids)]),
    )
