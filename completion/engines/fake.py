"""`FakeEngine`: a deterministic engine for unit tests, under the same stop conditions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from completion.engines.interface import (
    GenerationParams,
    HypothesisTracker,
    Samples,
    Stream,
    TokenStep,
)
from completion.models.specs import Family, FimOrder, FimTokens
from completion.stops import StopRule


class FakeEngine:
    """A deterministic engine for unit tests: one character per token, scripted output.

    `script` maps a prompt (decoded) to what the model "writes"; the first key found in the
    prompt wins, else `default` is produced. Ids are Unicode code points; the FIM markers are
    private-use characters. Every token's log-probability is `log_prob`, or the value of the
    first key of `log_probs` found in the prompt: one for every token, or one per token (the
    last repeated); scripted confidence, for the gate.
    """

    name = "fake"
    runtime = "fake"

    def __init__(
        self,
        script: dict[str, str] | None = None,
        default: str = "",
        step_delay_s: float = 0.0,
        prompt_delay_s: float = 0.0,
        order: FimOrder = FimOrder.SUFFIX_FIRST,
        log_prob: float = -0.05,
    ) -> None:
        self.fim = FimTokens("\ue000", "\ue001", "\ue002", order)  # the default model's order
        self.family = Family("fake", self.fim, stop_tokens=())  # the default windows
        self.script = script or {}
        self.default = default
        self.log_prob = log_prob
        self.log_probs: dict[str, float | list[float]] = {}
        self.step_delay_s = step_delay_s
        self.prompt_delay_s = prompt_delay_s
        self.prompts: list[str] = []
        self.static_lens: list[int] = []
        self.heads: set[tuple[int, ...]] = set()  # cached prompt heads, as CT2Engine keeps them
        self.produced_tokens = 0
        self._eos = 0xE00F
        # For `sample`: a prompt key -> the outputs of hypotheses 0, 1, ... (cycled).
        self.variants: dict[str, list[str]] = {}

    def encode(self, text: str) -> list[int]:
        """One id per code point."""
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Code points back to text, markers dropped."""
        return "".join(chr(i) for i in ids if not 0xE000 <= i <= 0xE0FF)

    def token_id(self, token: str) -> int | None:
        """Markers are single private-use characters."""
        return ord(token) if len(token) == 1 else None

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        static_len: int = 0,
    ) -> Stream:
        """Replay the scripted output, honouring the same stop rules as the real engine."""
        prompt = "".join(chr(i) for i in prompt_ids)
        self.static_lens.append(static_len)
        self.prompts.append(prompt)
        output = next((v for k, v in self.script.items() if k in prompt), self.default)
        log_prob = self._log_probs(prompt)
        head = tuple(prompt_ids[:static_len])
        reused = static_len if static_len and head in self.heads else 0
        if static_len:
            self.heads.add(head)

        def produce() -> Iterator[TokenStep]:
            time.sleep(self.prompt_delay_s)
            for i, ch in enumerate(output):
                time.sleep(self.step_delay_s)
                self.produced_tokens += 1
                yield ord(ch), log_prob(i)
            yield self._eos, log_prob(len(output))

        stream = Stream(produce(), params, frozenset({self._eos}), cancel)
        stream.reused_tokens = reused
        return stream

    def sample(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        n: int,
        stop_rule: StopRule | None = None,
        cancel: threading.Event | None = None,
    ) -> Samples:
        """`n` scripted hypotheses (from `variants`, else the script) after one prompt pass."""
        prompt = "".join(chr(i) for i in prompt_ids)
        self.prompts.append(prompt)
        single = next((v for k, v in self.script.items() if k in prompt), self.default)
        outputs = next((v for k, v in self.variants.items() if k in prompt), [single])
        tracker = HypothesisTracker(
            n, self.decode, params, frozenset({self._eos}), stop_rule, cancel
        )
        time.sleep(self.prompt_delay_s)
        log_prob = self._log_probs(prompt)
        pending = [[ord(c) for c in outputs[i % len(outputs)]] + [self._eos] for i in range(n)]
        for step in range(max((len(p) for p in pending), default=0)):
            time.sleep(self.step_delay_s)
            done = True
            for i, ids in enumerate(pending):
                if step < len(ids) and not tracker.feed(i, ids[step], log_prob(step)):
                    self.produced_tokens += 1
                    done = False
            if done:
                break
        return tracker.result()

    def _log_probs(self, prompt: str) -> Callable[[int], float]:
        """The scripted log-probability of the i-th token generated after `prompt`."""
        script = next((v for k, v in self.log_probs.items() if k in prompt), self.log_prob)
        if isinstance(script, float | int):
            return lambda _i: float(script)
        values = list(script) or [self.log_prob]
        return lambda i: values[min(i, len(values) - 1)]
