"""The gate's figures in a run: what was shown, how much of it was right, what it hid.

Every sample record carries its answer (`completion`, what pass@k scores), what the gate let
the editor show (`shown`: the answer, a block's first line alone, or nothing), whether each
passes, and the gate's score. So one run gives the gate on and off side by side, and the
score gives precision at any coverage (`precision_coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# the thresholds of the precision-coverage table and plot
CURVE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))
# the thresholds an operating point is chosen from
THRESHOLD_GRID = tuple(round(0.01 * i, 2) for i in range(100))


@dataclass(frozen=True)
class Shown:
    """What an editor shows over a set of answers, and how much of it is right."""

    answers: int  # non-empty answers
    right: int  # of those, right (they pass the test)
    shown: int
    shown_right: int
    hidden_right: int  # right answers not shown whole

    @property
    def shown_wrong(self) -> int:
        """Shown, and wrong: what the user reads and dismisses."""
        return self.shown - self.shown_right

    @property
    def precision(self) -> float:
        """The share of what is shown that is right."""
        return self.shown_right / self.shown if self.shown else 0.0

    @property
    def hidden_right_share(self) -> float:
        """The share of the right answers the gate kept from the user."""
        return self.hidden_right / self.right if self.right else 0.0

    @property
    def coverage(self) -> float:
        """The share of the answers shown."""
        return self.shown / self.answers if self.answers else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counts and the ratios derived from them."""
        return {
            **asdict(self),
            "shown_wrong": self.shown_wrong,
            "precision": round(self.precision, 4),
            "hidden_right_share": round(self.hidden_right_share, 4),
            "coverage": round(self.coverage, 4),
        }


def _answered(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if str(r.get("completion", "")).strip()]


def as_run_showed(records: Iterable[Mapping[str, Any]]) -> Shown:
    """What the run's own gate showed (`shown`, judged as `shown_passed`)."""
    rs = _answered(records)
    shown = [r for r in rs if str(r.get("shown", r["completion"])).strip()]
    return Shown(
        answers=len(rs),
        right=sum(bool(r.get("passed")) for r in rs),
        shown=len(shown),
        shown_right=sum(bool(r.get("shown_passed", r.get("passed"))) for r in shown),
        hidden_right=sum(
            bool(r.get("passed")) and r.get("shown", r["completion"]) != r["completion"] for r in rs
        ),
    )


def at_threshold(
    records: Iterable[Mapping[str, Any]],
    threshold: float | Mapping[str, float] | None,
    score_key: str = "gate_score",
    first_line: bool = True,
) -> Shown:
    """What a gate at `threshold` would show (None: no gate), from the recorded scores.

    `threshold` may map a record's `language` to its own ("" for the rest). A block under
    the threshold shows its first line alone when `first_line` and that line scores at
    least the threshold itself (`line_gate_score`, judged as `line_passed`). An unscored
    answer is shown.
    """
    rs = _answered(records)
    shown = shown_right = hidden_right = 0
    for r in rs:
        score = r.get(score_key)
        passed = bool(r.get("passed"))
        t = threshold
        if isinstance(t, Mapping):
            t = t.get(str(r.get("language", "")), t.get(""))
        if t is None or score is None or score >= t:
            shown += 1
            shown_right += passed
            continue
        hidden_right += passed
        line_score = r.get("line_" + score_key)
        if first_line and r.get("line") and line_score is not None and line_score >= t:
            shown += 1
            shown_right += bool(r.get("line_passed"))
    return Shown(len(rs), sum(bool(r.get("passed")) for r in rs), shown, shown_right, hidden_right)


def auc(records: Iterable[Mapping[str, Any]], score_key: str = "gate_score") -> float | None:
    """How well the score ranks right answers above wrong ones (ROC AUC; ties count half).

    The chance that a right answer scores above a wrong one: 0.5 is no better than a coin,
    1.0 a perfect ranking. None without both kinds of scored answers.
    """
    scored = [
        (float(r[score_key]), bool(r.get("passed")))
        for r in _answered(records)
        if r.get(score_key) is not None and r[score_key] == r[score_key]  # NaN: unscored
    ]
    right = sum(p for _, p in scored)
    wrong = len(scored) - right
    if not right or not wrong:
        return None
    # Mann-Whitney U from mid-ranks
    scored.sort(key=lambda sp: sp[0])
    rank_sum = 0.0
    i = 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        mid = (i + 1 + j) / 2
        rank_sum += mid * sum(p for _, p in scored[i:j])
        i = j
    return (rank_sum - right * (right + 1) / 2) / (right * wrong)


def own_threshold(records: Iterable[Mapping[str, Any]], hidden_budget: float) -> float:
    """The highest threshold (0.00-0.99) hiding at most `hidden_budget` of the right answers.

    Chosen on the very answers it is then measured on: a ceiling for a threshold set for
    this set of answers alone, not a figure to expect on new ones.
    """
    rs = list(records)
    return max(
        (t for t in THRESHOLD_GRID if at_threshold(rs, t).hidden_right_share <= hidden_budget),
        default=0.0,
    )


def precision_coverage(
    records: Iterable[Mapping[str, Any]], thresholds: Iterable[float] = CURVE_THRESHOLDS
) -> list[dict[str, Any]]:
    """The gate's precision against coverage, one row per threshold on its score."""
    rs = list(records)
    return [{"threshold": t, **at_threshold(rs, t).as_dict()} for t in thresholds]


def summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json's `gate` block: as run, and with no gate, from the same samples."""
    rs = list(records)
    return {
        "as_run": as_run_showed(rs).as_dict(),
        "no_gate": at_threshold(rs, None).as_dict(),
        "curve": precision_coverage(rs),
    }
