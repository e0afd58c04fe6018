"""Gate stage: whether to show an answer at all, from the model's confidence and the cursor.

A wrong suggestion costs the user a read and a dismissal; a hidden right one costs only the
typing it would have saved. So after post-processing, each non-empty answer is scored: the
probability that it is right, from a small logistic model over what is known when the
answer is ready (`features`: the tokens' log-probs, length, how generation ended, the
trigger's mode, the language, whether the text repeats the code around it, the cursor's
surroundings). An answer scoring under the operating point's threshold is hidden.

The model's parameters are a small JSON file fitted offline by `offpilot eval gate fit`
(eval/gate_fit.py) on the project's own eval runs, with cross-validation split by problem
and by package; running it needs nothing but this module. There is one file per runtime
(`shipped_model`): `completion/data/gate.json` for llama.cpp's log-probs, the default, and
`gate-ctranslate2.json` for CTranslate2's.
The operating points (`quiet`, `balanced`, `eager`) are thresholds chosen there; docs/quality.md
says what each costs in hidden right answers. An answer without log-probs (a server that
sends none) is shown unscored.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from completion.context import Context
from completion.stops import RULE, StopReason

OFF = "off"
POINTS = ("quiet", "balanced", "eager")  # fewer suggestions ... more suggestions
DEFAULT_POINT = "balanced"
# `--set gate=0` / `gate=1` (the benchmark's on/off syntax) name these
_ALIASES = {"0": OFF, "false": OFF, "no": OFF, "1": DEFAULT_POINT, "true": DEFAULT_POINT}
# A user's own accept/reject record may move the threshold by at most this much (`shift`).
MAX_SHIFT = 0.15
# `user_shift`: accepts and rejects in a language before they move its threshold, the
# acceptance the operating points are meant for, and how far a gap in it moves the threshold.
MIN_VERDICTS = 20
EXPECTED_ACCEPTANCE = 0.4
_SHIFT_PER_ACCEPTANCE = 0.5
_SHIFT_PRIOR = 50  # verdicts that count as much as the prior: the move grows with evidence

_LOW = -1.0  # a token below this log-prob (p < 0.37) counts as unsure
_CLOSING_ONLY = frozenset("()[]{};, \t")
_TRIVIAL = frozenset({"pass", "...", "return", "return None", "continue", "break"})
_LANGUAGE_GROUPS = {
    "python": "python",
    "javascript": "js",
    "typescript": "js",
    "typescriptreact": "js",
    "go": "go",
    "java": "java",
    "c": "cpp",
    "cpp": "cpp",
    "rust": "rust",
}
_NEARBY_LINES = 40  # lines above and below searched for a repeat of the answer's first line


def language_group(language: str) -> str:
    """The group a supported language id shares its gate features and thresholds with."""
    return _LANGUAGE_GROUPS.get(language, "")


def normalize_point(value: str) -> str:
    """The operating point a setting names (`off`, `quiet`, `balanced`, `eager`, 0, 1).

    ValueError for anything else, so that a typo never runs without the gate unnoticed.
    """
    point = _ALIASES.get(value.strip().lower(), value.strip().lower())
    if point != OFF and point not in POINTS:
        raise ValueError(f"gate must be off or one of {', '.join(POINTS)}, not {value!r}")
    return point


def user_shift(accepted: int, rejected: int) -> float:
    """How far to move a language's threshold from the user's own accepts and rejects.

    A user who rejects more than `EXPECTED_ACCEPTANCE` implies sees fewer suggestions there
    (a higher threshold), one who accepts most sees more; the move is 0 before
    `MIN_VERDICTS`, grows with the evidence, and stays within `MAX_SHIFT`.
    """
    n = max(0, accepted) + max(0, rejected)
    if n < MIN_VERDICTS:
        return 0.0
    gap = EXPECTED_ACCEPTANCE - max(0, accepted) / n
    move = _SHIFT_PER_ACCEPTANCE * gap * n / (n + _SHIFT_PRIOR)
    return max(-MAX_SHIFT, min(MAX_SHIFT, move))


def features(
    text: str,
    raw: str,
    log_probs: tuple[float, ...],
    stop_reason: str,
    mode: str,
    context: Context,
) -> dict[str, float] | None:
    """What the gate reads about an answer; None when it cannot be scored (no log-probs)."""
    if not text.strip() or not log_probs or any(math.isnan(p) for p in log_probs):
        return None
    n = len(log_probs)
    head = log_probs[: min(n, 4)]
    lines = text.split("\n")
    first = lines[0].strip() or (lines[1].strip() if len(lines) > 1 else "")
    group = language_group(context.syntax)
    above = {ln.strip() for ln in context.prefix.split("\n")[-_NEARBY_LINES - 1 : -1]}
    below = {ln.strip() for ln in context.suffix.split("\n")[1 : _NEARBY_LINES + 1]}
    substantial = len(first) >= 4 and not set(first) <= _CLOSING_ONLY
    return {
        "lp_mean": sum(log_probs) / n,
        "lp_min": min(log_probs),
        "lp_first": log_probs[0],
        "lp_head_mean": sum(head) / len(head),
        "lp_last": log_probs[-1],
        "low_share": sum(p < _LOW for p in log_probs) / n,
        "log_tokens": math.log1p(n),
        "lines": float(min(len([ln for ln in lines if ln.strip()]), 12)),
        "log_chars": math.log1p(len(text.strip())),
        "stop_rule": float(stop_reason == RULE),
        "stop_end": float(stop_reason == StopReason.END_TOKEN),
        "stop_cap": float(stop_reason == StopReason.MAX_TOKENS),
        "stop_budget": float(stop_reason == StopReason.TIME_BUDGET),
        "multi": float(mode == "multi"),
        "mid_line": float(bool(context.line_suffix.strip())),
        "line_start": float(not context.line_prefix.strip()),
        "after_opener": float(context.prefix.rstrip().endswith((":", "{"))),
        "end_of_file": float(not context.suffix.strip()),
        "repeats_above": float(substantial and first in above),
        "repeats_below": float(substantial and first in below),
        "post_cut": float(len(text.strip()) < len(raw.strip())),
        "trivial": float(text.strip() in _TRIVIAL),
        **{f"lang_{g}": float(group == g) for g in ("python", "js", "go", "java", "cpp", "rust")},
    }


@dataclass(frozen=True)
class GateModel:
    """A fitted logistic model and its operating points: P(right) = sigmoid(w . z + b).

    `z` is each feature standardised by `mean` and `scale`; `thresholds` maps an operating
    point to the least probability shown there, and `by_language` gives a language group
    (`language_group`) thresholds of its own where it was measured: the same score hides
    more right answers in some languages than in others.
    """

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    thresholds: dict[str, float]
    about: dict[str, Any]
    by_language: dict[str, dict[str, float]] = field(default_factory=dict)

    def score(self, values: dict[str, float]) -> float:
        """The probability that the answer is right; a feature the model lacks counts as 0."""
        z = self.intercept
        for name, mean, scale, weight in zip(
            self.names, self.mean, self.scale, self.coef, strict=True
        ):
            z += weight * (values.get(name, 0.0) - mean) / scale
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def threshold(self, point: str, shift: float = 0.0, language: str = "") -> float | None:
        """The least score shown at `point` in `language`, moved by the user's `shift`.

        None when the gate is off.
        """
        point = normalize_point(point)
        if point == OFF:
            return None
        own = self.by_language.get(language_group(language), {})
        base = own.get(point, self.thresholds[point])
        return min(0.95, max(0.0, base + max(-MAX_SHIFT, min(MAX_SHIFT, shift))))

    def to_json(self) -> dict[str, Any]:
        """The parameter file's content (`load_model` reads it back)."""
        return {
            "features": list(self.names),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "thresholds": self.thresholds,
            "by_language": self.by_language,
            "about": self.about,
        }


class GateFileError(ValueError):
    """A gate parameter file that cannot be used."""


def parse_model(payload: Any) -> GateModel:
    """A `GateModel` from a parameter file's JSON; GateFileError when it does not fit."""
    try:
        names = tuple(str(n) for n in payload["features"])
        vectors = [tuple(float(v) for v in payload[k]) for k in ("mean", "scale", "coef")]
        thresholds = {str(k): float(v) for k, v in payload["thresholds"].items()}
        by_language = {
            str(group): {str(k): float(v) for k, v in points.items()}
            for group, points in payload.get("by_language", {}).items()
        }
        model = GateModel(
            names,
            vectors[0],
            vectors[1],
            vectors[2],
            float(payload["intercept"]),
            thresholds,
            dict(payload.get("about", {})),
            by_language,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GateFileError(f"not a gate parameter file: {exc}") from None
    if any(len(v) != len(names) for v in vectors) or any(s <= 0 for s in model.scale):
        raise GateFileError("a gate parameter file's vectors must match its features")
    if set(POINTS) - set(thresholds):
        raise GateFileError(f"a gate parameter file needs thresholds for {', '.join(POINTS)}")
    return model


def load_model(path: Path | None = None) -> GateModel:
    """The gate's parameters: `path`, else the file shipped in the package."""
    if path is None:
        return shipped_model()
    try:
        return parse_model(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise GateFileError(f"cannot read the gate parameters {path}: {exc}") from None


# The shipped parameters by the runtime whose log-probs they were fitted on: the default
# model in llama.cpp (its 4-bit GGUF, also what a llama.cpp server runs), else in CTranslate2
# (int8). The same weights give each runtime log-probs of its own, and so thresholds.
_SHIPPED = {"ctranslate2": "data/gate-ctranslate2.json"}
_SHIPPED_DEFAULT = "data/gate.json"


def shipped_model(runtime: str = "") -> GateModel:
    """The parameters fitted for the default model in `runtime` (Engine.runtime)."""
    return _shipped_file(_SHIPPED.get(runtime, _SHIPPED_DEFAULT))


@functools.cache
def _shipped_file(name: str) -> GateModel:
    text = resources.files("completion").joinpath(name).read_text(encoding="utf-8")
    return parse_model(json.loads(text))


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one answer: its score (None: unscored) and whether it is shown."""

    score: float | None
    shown: bool
    features: dict[str, float] | None = None
    threshold: float | None = None  # the least score shown (None: unscored, or the gate off)


def assess(
    text: str,
    raw: str,
    log_probs: tuple[float, ...],
    stop_reason: str,
    mode: str,
    context: Context,
    point: str,
    shift: float = 0.0,
    model: GateModel | None = None,
) -> Verdict | None:
    """The gate on an answer at `point` in the cursor's language; None for an empty one.

    Scored with the gate off too (shown then): the benchmark records every score. `model`:
    the parameters for the engine's runtime (`shipped_model`), the default's when None.
    """
    if not text:
        return None
    values = features(text, raw, log_probs, stop_reason, mode, context)
    return judge(values, point, shift, model, language=context.syntax)


def judge(
    values: dict[str, float] | None,
    point: str,
    shift: float = 0.0,
    model: GateModel | None = None,
    language: str = "",
) -> Verdict:
    """Score an answer's `features`; decide at `point` in `language`, moved by `shift`."""
    if values is None:
        return Verdict(None, True, None)
    model = model or shipped_model()
    score = model.score(values)
    threshold = model.threshold(point, shift, language)
    return Verdict(score, threshold is None or score >= threshold, values, threshold)
