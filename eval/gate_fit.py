"""`offpilot eval gate fit`: fit the show-or-not gate on eval runs, and say what it does.

The training rows are the answers of finished runs (`samples.jsonl`: the gate's features and
whether the answer passed), and the first lines of their blocks, which the gate may show
alone. Every figure printed for a task comes from a model fitted without that task's group
(cross-validation by group): a HumanEval problem in any language and hole kind is one group,
a real package another. The shipped parameters are then fitted on every row.

Fitting uses scikit-learn (the `train` extra); the product reads the result with
completion/gate.py alone.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from completion import gate
from eval import gating
from eval.records import SETTINGS, read_samples

FOLDS = 5
C = 0.5  # inverse regularisation strength of the logistic model
# Operating points, set on the cross-validated scores: eager and balanced hide at most this
# share of the right answers in each family of suites (a user's code is more like the real
# packages than like HumanEval: there a wrong suggestion is likelier, and the gate may hide
# more); quiet is the lowest threshold at which each suite's precision of what is shown is
# at least QUIET_PRECISION.
HIDDEN_RIGHT = {
    "eager": {"humaneval": 0.02, "humaneval-x": 0.02, "repo": 0.05},
    "balanced": {"humaneval": 0.05, "humaneval-x": 0.05, "repo": 0.10},
}
QUIET_PRECISION = 0.80
QUIET_MIN_SHOWN = 10
# A language gets thresholds of its own only with this many right answers: with fewer, the
# budget of 5% is one right answer or none, and which one scores lowest sets the threshold
# (re-fitted on 19 right Rust answers, `balanced` fell to 0.01: nothing hidden at all).
MIN_LANGUAGE_RIGHT = 40
BASELINE_FEATURE = "lp_mean"  # the baseline: a hand-set threshold on one log-prob

_HUMANEVAL = re.compile(r"(?:HumanEval|JavaScript|Go|Java|CPP|Rust|Python)/(\d+)")


def group_of(task_id: str) -> str:
    """The cross-validation group: the HumanEval problem (any language), else the package."""
    if m := _HUMANEVAL.search(task_id):
        return f"HumanEval/{m.group(1)}"
    head = task_id.split("/", 1)[0]
    return re.sub(r"-\d[\w.]*$", "", head)  # "boltons-26.2.0" -> "boltons"


@dataclass(frozen=True)
class Row:
    """One answer (or a block's first line alone) the gate scores."""

    suite: str
    task_id: str
    group: str
    features: dict[str, float]
    passed: bool
    first_line: bool = False  # the row is a block's first line

    @property
    def language(self) -> str:
        """The language group of the answer (completion/gate.py `language_group`)."""
        return next(
            (name[5:] for name, v in self.features.items() if name.startswith("lang_") and v),
            "",
        )


def _setting(run: Path, key: str) -> str:
    """A run's setting (the model, the engine it ran in), "" when the run does not say."""
    settings = json.loads((run / SETTINGS).read_text(encoding="utf-8"))
    return str(settings.get(key, ""))


def rows_of(run: Path) -> list[Row]:
    """The scored answers of a run directory, and their blocks' first lines."""
    settings = json.loads((run / SETTINGS).read_text(encoding="utf-8"))
    suite = Path(str(settings.get("suite", run.name))).stem
    rows = []
    for r in read_samples(run):
        task = str(r["task_id"])
        if answer := r.get("features"):
            rows.append(Row(suite, task, group_of(task), answer, bool(r.get("passed"))))
        line = r.get("line_features")
        if line and r.get("line") != r.get("completion"):
            rows.append(
                Row(suite, task, group_of(task), line, bool(r.get("line_passed")), first_line=True)
            )
    return rows


def _matrix(rows: Sequence[Row], names: Sequence[str]) -> Any:
    import numpy as np

    return np.array([[row.features.get(n, 0.0) for n in names] for row in rows], dtype=float)


def fit(rows: Sequence[Row], names: Sequence[str], thresholds: dict[str, float]) -> gate.GateModel:
    """A logistic model on `rows` (standardised features), as the gate reads it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = _matrix(rows, names)
    y = np.array([row.passed for row in rows], dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("fitting the gate needs right and wrong answers (a fold had one kind)")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=2000).fit((x - mean) / scale, y)
    return gate.GateModel(
        tuple(names),
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in model.coef_[0]),
        float(model.intercept_[0]),
        thresholds,
        {},
    )


def cross_scores(rows: Sequence[Row], names: Sequence[str], folds: int = FOLDS) -> list[float]:
    """Each row's score from a model fitted without its group (GroupKFold)."""
    from sklearn.model_selection import GroupKFold

    scores = [math.nan] * len(rows)
    groups = [row.group for row in rows]
    splitter = GroupKFold(n_splits=min(folds, len(set(groups))))
    for train, test in splitter.split(list(range(len(rows))), groups=groups):
        model = fit([rows[i] for i in train], names, {})
        for i in test:
            scores[i] = model.score(rows[i].features)
    return scores


def _records(rows: Sequence[Row], scores: Sequence[float]) -> list[dict[str, Any]]:
    """Rows as the sample records `eval.gating` reads: answer rows with their first lines."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for row, score in zip(rows, scores, strict=True):
        rec = records.setdefault(
            (row.suite, row.task_id), {"suite": row.suite, "language": row.language}
        )
        if row.first_line:
            rec.update(line="x", line_gate_score=score, line_passed=row.passed)
        else:
            rec.update(completion="x", gate_score=score, passed=row.passed)
    return [r for r in records.values() if "completion" in r]


def family_of(suite: str) -> str:
    """The family whose hidden-answer budget a suite shares (`HIDDEN_RIGHT`)."""
    if suite.startswith("repo-"):
        return "repo"
    return "humaneval-x" if suite.startswith("humaneval-x") else "humaneval"


def _points(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The operating points of one set of answers (`choose_thresholds`)."""
    grid = gating.THRESHOLD_GRID
    families: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        families.setdefault(family_of(str(r.get("suite", ""))), []).append(r)

    def precise(t: float) -> bool:
        shown = [gating.at_threshold(rs, t) for rs in families.values()]
        return all(v.precision >= QUIET_PRECISION or v.shown < QUIET_MIN_SHOWN for v in shown)

    # the highest threshold within every family's budget: the lowest of each family's own
    # (a higher threshold never hides fewer right answers)
    points = {
        p: min(
            (gating.own_threshold(rs, shares.get(family, 0.05)) for family, rs in families.items()),
            default=grid[-1],
        )
        for p, shares in HIDDEN_RIGHT.items()
    }
    points["quiet"] = max(points["balanced"], min((t for t in grid if precise(t)), default=0.9))
    return points


def choose_thresholds(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per operating point, a threshold for each language group ("": every language).

    Set on cross-validated scores. eager and balanced: the highest threshold hiding at most
    its family's share of the right answers (`HIDDEN_RIGHT`) in every family of suites of
    that language. quiet: the lowest at which every family's precision of what is shown
    reaches QUIET_PRECISION (a family showing fewer than QUIET_MIN_SHOWN counts as reaching
    it: too few to tell). The same score hides more right answers in some languages than
    in others, hence one threshold per language where it was measured well enough
    (MIN_LANGUAGE_RIGHT right answers); any other language has the thresholds of all.
    """
    languages = sorted({str(r.get("language", "")) for r in records} - {""})
    out: dict[str, dict[str, float]] = {p: {} for p in gate.POINTS}
    for language in ["", *languages]:
        rs = [r for r in records if not language or r.get("language") == language]
        if language and gating.at_threshold(rs, None).right < MIN_LANGUAGE_RIGHT:
            continue
        for point, t in _points(rs).items():
            out[point][language] = t
    return out


def _baseline_records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The baseline's 'scores': the mean log-prob mapped into (0, 1)."""
    scores = [1 / (1 + math.exp(-4 * (row.features[BASELINE_FEATURE] + 0.5))) for row in rows]
    return _records(rows, scores)


def _wrong_change(v: gating.Shown, off: gating.Shown) -> float:
    """The change in suggestions shown but wrong against no gate (-0.25: a quarter fewer)."""
    return (v.shown_wrong - off.shown_wrong) / off.shown_wrong if off.shown_wrong else 0.0


def table(
    by_suite: dict[str, list[dict[str, Any]]],
    thresholds: Mapping[str, Mapping[str, float]],
    first_line: bool = True,
) -> list[str]:
    """Markdown rows: per suite, no gate and each operating point (its language's threshold)."""
    lines = [
        "| suite | point | threshold | answers | right | shown | shown but wrong "
        "| vs no gate | precision | right hidden |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    points = [("off", None), *sorted(thresholds.items(), key=lambda kv: kv[1][""])]
    for suite, records in by_suite.items():
        off = gating.at_threshold(records, None)
        languages = {str(r.get("language", "")) for r in records}
        for point, t in points:
            v = gating.at_threshold(records, t, first_line=first_line)
            change = _wrong_change(v, off)
            used = sorted({t.get(lang, t[""]) for lang in languages}) if t else []
            shown_t = "-" if t is None else "/".join(f"{x:.2f}" for x in used)
            lines.append(
                f"| {suite} | {point} | {shown_t} | {v.answers} | "
                f"{v.right} | {v.shown} | {v.shown_wrong} | {change:+.0%} | "
                f"{v.precision:.3f} | {v.hidden_right} ({v.hidden_right_share:.1%}) |"
            )
    return lines


def _by_suite(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """All answers, each family of suites with more than one suite, then each suite."""
    out: dict[str, list[dict[str, Any]]] = {}
    families: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["suite"], []).append(r)
        families.setdefault(family_of(r["suite"]), []).append(r)
    several = {
        f"family {name}": rs
        for name, rs in sorted(families.items())
        if len({r["suite"] for r in rs}) > 1
    }
    return {"all": [r for rs in out.values() for r in rs], **several, **dict(sorted(out.items()))}


def room(
    by_suite: Mapping[str, Sequence[Mapping[str, Any]]],
    thresholds: Mapping[str, Mapping[str, float]],
) -> list[str]:
    """Markdown rows: per suite, the score's held-out AUC, and `balanced` against ceilings.

    "own" is the threshold a suite would take alone, chosen in hindsight on its own held-out
    scores for its family's budget of hidden right answers; "best precision" the highest
    precision any threshold reaches there while showing at least QUIET_MIN_SHOWN answers.
    Where the shipped point falls short of a target and "own" does not, the shared threshold
    is what costs (one per language, set by the strictest family); where "own" falls short
    too, the score does not separate right from wrong well enough for that target.
    """
    lines = [
        "| suite | AUC | budget | balanced: vs no gate, precision, right hidden "
        "| own threshold: vs no gate, precision, right hidden | best precision (right hidden) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    grid = gating.THRESHOLD_GRID
    for suite, records in by_suite.items():
        if suite == "all":  # the families' budgets differ: a mix has none of its own
            continue
        family = suite.removeprefix("family ") if suite.startswith("family ") else family_of(suite)
        budget = HIDDEN_RIGHT["balanced"][family]
        off = gating.at_threshold(records, None)
        auc = gating.auc(records)
        own = gating.own_threshold(records, budget)
        cells = []
        for t in (thresholds["balanced"], own):
            v = gating.at_threshold(records, t)
            cells.append(
                f"{_wrong_change(v, off):+.0%}, {v.precision:.3f}, {v.hidden_right_share:.1%}"
            )
        views = [gating.at_threshold(records, t) for t in grid]
        best = max(
            (v for v in views if v.shown >= QUIET_MIN_SHOWN),
            key=lambda v: v.precision,
            default=views[0],  # too few answers to tell: as with no gate
        )
        lines.append(
            f"| {suite} | {'-' if auc is None else f'{auc:.3f}'} | {budget:.0%} | {cells[0]} "
            f"| {own:.2f}: {cells[1]} | {best.precision:.3f} ({best.hidden_right_share:.0%}) |"
        )
    return lines


def report(
    rows: Sequence[Row], names: Sequence[str], folds: int = FOLDS
) -> tuple[list[str], dict[str, dict[str, float]], dict[str, Any]]:
    """The cross-validated tables (gate, all-or-nothing, baseline), the thresholds, a summary."""
    scores = cross_scores(rows, names, folds)
    records = _records(rows, scores)
    thresholds = choose_thresholds(records)
    suites = _by_suite(records)
    base = _baseline_records(rows)
    lines = ["## The gate (cross-validated by problem and package)", ""]
    lines += table(suites, thresholds)
    lines += ["", "## All or nothing: a hidden block never shows its first line", ""]
    lines += table(suites, thresholds, first_line=False)
    lines += [
        "",
        f"## Baseline: a threshold on `{BASELINE_FEATURE}` alone, set by the same rule",
        "",
    ]
    lines += table(_by_suite(base), choose_thresholds(base))
    lines += [
        "",
        "## Room: each suite with a threshold of its own, chosen in hindsight",
        "",
    ]
    lines += room(suites, thresholds)
    about = {
        "rows": len(rows),
        "answers": len(records),
        "suites": {s: len(rs) for s, rs in suites.items() if s != "all" and " " not in s},
        "folds": folds,
    }
    return lines, thresholds, about


def fit_and_report(
    runs: Sequence[Path], out: Path | None, folds: int = FOLDS
) -> tuple[list[str], gate.GateModel]:
    """Cross-validate on `runs`, fit on all their rows, write the parameters to `out`."""
    engines = sorted({_setting(run, "engine") for run in runs} - {""})
    if len(engines) > 1:  # each runtime's log-probs are its own (gate.shipped_model)
        raise ValueError(
            f"these runs come from several runtimes ({', '.join(engines)}): "
            "fit one file per runtime"
        )
    rows = [row for run in runs for row in rows_of(run)]
    if not rows:
        raise ValueError("no scored answers in these runs (were they made with log-probs?)")
    names = sorted(rows[0].features)
    lines, thresholds, about = report(rows, names, folds)
    models = sorted({_setting(run, "model") for run in runs})
    about = {"models": models, "engines": engines, "fitted": time.strftime("%Y-%m-%d"), **about}
    default = {point: by[""] for point, by in thresholds.items()}
    by_language: dict[str, dict[str, float]] = {}
    for point, by in thresholds.items():
        for language, t in by.items():
            if language:
                by_language.setdefault(language, {})[point] = t
    model = replace(fit(rows, names, default), about=about, by_language=by_language)
    if out is not None:
        out.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
    return lines, model
