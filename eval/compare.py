"""`offpilot eval compare`: models or backends side by side on the same tasks.

Each entrant is one run directory (one suite) or a directory of runs (one per suite, as
`offpilot eval compare --model ... --suite ...` writes them). Runs are paired task by task:
every difference in pass@1 comes with a paired test over the tasks, McNemar's exact test
on the discordant tasks and a seeded paired bootstrap interval of the difference, so that
0.01 on 150 tasks reads as the noise it is. With more than two entrants each is tested
against the first, the baseline.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from completion.engines.interface import Engine
from eval import data, gating, metrics, toolchains
from eval.metrics import bootstrap_ci, paired_test
from eval.records import SETTINGS, RunSettings, SampleRecord, by_language, read_samples

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
PASS_PNG = "compare_pass1.png"
DIFF_PNG = "compare_diff.png"
LATENCY_PNG = "compare_latency.png"


class CompareError(Exception):
    """The runs cannot be compared (not runs, other tasks, too few entrants)."""


Key = tuple[str, str]  # a task of a comparison: (suite name, task id)


# -- entrants and their engines ----------------------------------------------------------------


@dataclass(frozen=True)
class Entrant:
    """One contestant to run: a label and where its engine comes from (a model or a backend)."""

    label: str
    model: str = ""  # model name or directory (completion.models.store.locate)
    # URL of an OpenAI-compatible server (issue 15, part 2); `model` then gives the tokenizer
    backend: str = ""


def engine_factory(
    entrant: Entrant, cache_dir: str | None = None
) -> tuple[dict[str, Any], Callable[[], Engine]]:
    """The one place an entrant becomes an engine: the run settings that name it, and a loader.

    The settings (`model`, ...) go into each of the entrant's runs, so a resumed run cannot
    mix engines; `eval.run.run` calls the loader only if there is work left. The model is
    located now, so a missing one fails before any run starts.
    """
    from completion.engines.choose import open_engine
    from completion.models.store import locate

    model = locate(entrant.model or None, cache_dir)
    if entrant.backend:
        settings = {"model": model.manifest.name, "backend": entrant.backend}
        return settings, lambda: open_engine(model, backend=entrant.backend)
    return {"model": model.manifest.name}, lambda: open_engine(model)


def run_entrants(
    entrants: Sequence[Entrant],
    template: RunSettings,
    suites: Sequence[str],
    out: Path,
    cache_dir: str | None = None,
    workers: int | None = None,
    progress_stream: TextIO | None = None,
) -> list[Path]:
    """Run (or resume) every suite for every entrant; returns their directories, baseline first.

    An entrant's run goes to `out/<label>/` (to `out/<label>/<suite>/` with more than one
    suite). Each is a normal `eval.run.run` with `template`'s settings, so the tasks are the
    same for all and a killed comparison resumes. An entrant's engine is loaded at most once.
    """
    from eval.run import run

    factories = [engine_factory(e, cache_dir) for e in entrants]  # fail before running
    dirs = []
    for entrant, (named, factory) in zip(entrants, factories, strict=True):
        engine = functools.cache(factory)  # loaded once for all suites, if at all
        home = out / entrant.label
        for suite in suites:
            where = home if len(suites) == 1 else home / data.suite_name(suite)
            settings = dataclasses.replace(template, suite=suite, **named)
            run(settings, where, engine, workers=workers, progress_stream=progress_stream)
        engine.cache_clear()  # free the model before the next entrant loads
        dirs.append(home)
    return dirs


def unique_labels(names: Sequence[str]) -> list[str]:
    """The names as labels, a repeated one numbered (`run`, `run-2`)."""
    seen: dict[str, int] = defaultdict(int)
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return labels


# -- loading finished runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One task of one entrant: its scored samples and how many passed."""

    suite: str
    task_id: str
    language: str
    samples: int
    passed: int

    @property
    def score(self) -> float:
        """The task's pass@1 (the unbiased estimator: passed / samples)."""
        return metrics.pass_at_k(self.samples, self.passed, 1)


@dataclass(frozen=True)
class Contestant:
    """A finished entrant: its runs' settings, per-task outcomes and sample records."""

    label: str
    dirs: tuple[str, ...]
    settings: tuple[dict[str, Any], ...]
    outcomes: dict[Key, Outcome]
    records: tuple[SampleRecord, ...]
    skipped: int  # samples whose toolchain was missing (no answer of the model)

    def on(self, paired: set[Key]) -> list[SampleRecord]:
        """The sample records of the paired tasks."""
        return [r for r in self.records if (r["suite"], r["task_id"]) in paired]

    def warm(self, paired: set[Key]) -> list[SampleRecord]:
        """The timed requests of the paired tasks, the first after each model load left out."""
        return [
            r
            for r in self.on(paired)
            if not r.get("cold") and isinstance(r.get("latency_ms"), int | float)
        ]


def run_dirs(path: Path) -> list[Path]:
    """The run directories an entrant path stands for: itself, or its runs one level down."""
    if (path / SETTINGS).is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if (p / SETTINGS).is_file())
        if found:
            return found
    raise CompareError(f"{path} is not a run directory (no {SETTINGS}) nor a directory of runs")


def load_contestant(path: Path, label: str) -> Contestant:
    """Read an entrant's runs; a run without samples or two runs of one suite are refused."""
    outcomes: dict[Key, Outcome] = {}
    settings, dirs, skipped = [], [], 0
    records: list[SampleRecord] = []
    suites: dict[str, Path] = {}
    for d in run_dirs(path):
        try:
            pinned = json.loads((d / SETTINGS).read_text(encoding="utf-8"))
            s = {**dataclasses.asdict(RunSettings(suite="")), **pinned}
        except (OSError, ValueError, TypeError) as exc:
            raise CompareError(f"{d / SETTINGS} is not a run's settings: {exc}") from None
        suite = data.suite_name(str(s["suite"]))
        if suite in suites:
            raise CompareError(f"{label}: {suites[suite]} and {d} are both runs of {suite}")
        suites[suite] = d
        rs = read_samples(d, repair=False)  # the run may still be going: never rewrite it
        if not rs:
            raise CompareError(f"{d} holds no finished sample (samples.jsonl is empty)")
        per_task: dict[str, list[bool]] = defaultdict(list)
        language: dict[str, str] = {}
        for r in rs:
            if not isinstance(r, dict) or "task_id" not in r or "passed" not in r:
                raise CompareError(f"{d}: a line of samples.jsonl is not a sample record: {r!r}")
            if toolchains.is_missing(str(r.get("reason", ""))):
                skipped += 1
                continue
            per_task[r["task_id"]].append(bool(r["passed"]))
            language[r["task_id"]] = str(r.get("language") or "python")
        for task_id, passes in per_task.items():
            outcomes[(suite, task_id)] = Outcome(
                suite, task_id, language[task_id], len(passes), sum(passes)
            )
        records += [_tagged(r, suite) for r in rs]
        settings.append(s)
        dirs.append(str(d))
    return Contestant(label, tuple(dirs), tuple(settings), outcomes, tuple(records), skipped)


def _tagged(record: SampleRecord, suite: str) -> SampleRecord:
    """A record read back, with its suite and the keys an old run may lack."""
    tagged = record.copy()
    tagged["suite"] = suite
    tagged["timings_ms"] = record.get("timings_ms") or {}
    tagged["reason"] = str(record.get("reason", ""))
    return tagged


def paired_keys(contestants: Sequence[Contestant], intersect: bool) -> tuple[list[Key], str]:
    """The tasks every entrant scored, and a note when some were left out (`intersect`).

    Without `intersect`, entrants whose task sets differ are refused with what differs.
    """
    sets = [set(c.outcomes) for c in contestants]
    common = set.intersection(*sets)
    note = ""
    if any(s != common for s in sets):
        suites = [sorted({suite for suite, _ in s}) for s in sets]
        parts = []
        if any(x != suites[0] for x in suites):
            per = "; ".join(
                f"{c.label}: {', '.join(x)}" for c, x in zip(contestants, suites, strict=True)
            )
            parts.append(f"the suites differ ({per})")
        for c, s in zip(contestants, sets, strict=True):
            extra = sorted(s - common)
            if extra:
                shown = ", ".join(t for _, t in extra[:5]) + (" ..." if len(extra) > 5 else "")
                parts.append(
                    f"{c.label} ({len(s)} tasks) has {len(extra)} not in every run: {shown}"
                )
        differ = _settings_differ(contestants)
        if differ:
            per = "; ".join(
                f"{k} ({', '.join(f'{lbl} {v}' for lbl, v in vs.items())})"
                for k, vs in differ.items()
            )
            parts.append(f"settings that differ: {per}")
        skipped = [f"{c.label} {c.skipped}" for c in contestants if c.skipped]
        if skipped:
            parts.append(f"samples skipped for a missing toolchain: {', '.join(skipped)}")
        why = "; ".join(parts)
        if not common:
            raise CompareError(f"the runs share no task: {why}")
        if not intersect:
            raise CompareError(
                f"the runs hold different tasks: {why}. Compare runs of the same --suite, "
                f"--limit and --seed, or pass --intersect to pair on the {len(common)} tasks "
                "they share."
            )
        note = f"PAIRED ON THE INTERSECTION: {len(common)} shared tasks only; {why}."
    return sorted(common, key=_natural), note


def _natural(key: Key) -> tuple[str | int, ...]:
    """Task order with numbers as numbers: HumanEval/5 before HumanEval/37 before /105."""
    parts = re.split(r"(\d+)", "\0".join(key))
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


# -- the comparison ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareOptions:
    """How pairs are tested and what happens when task sets differ."""

    intersect: bool = False  # pair on the shared tasks (with a note) instead of refusing
    seed: int = 0  # of the bootstrap
    resamples: int = 10_000


def compare(
    paths: Sequence[Path],
    out: Path,
    options: CompareOptions = CompareOptions(),
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compare entrants, the first the baseline; writes compare.json, compare.md and plots.

    `paths` are run directories or directories of runs (one per suite).
    """
    if len(paths) < 2:
        raise CompareError(f"need at least two runs to compare, got {len(paths)}")
    labels = list(labels) if labels else unique_labels([Path(p).resolve().name for p in paths])
    contestants = [load_contestant(Path(p), label) for p, label in zip(paths, labels, strict=True)]
    keys, note = paired_keys(contestants, options.intersect)
    groups: dict[str, list[Key]] = {"all": keys}
    base = contestants[0]
    for key in keys:
        o = base.outcomes[key]
        groups.setdefault(f"suite {o.suite}", []).append(key)
    for key in keys:
        groups.setdefault(f"language {base.outcomes[key].language}", []).append(key)
    table = {}
    for name, ks in groups.items():
        row: dict[str, Any] = {"tasks": len(ks), "entrants": {}, "vs_baseline": {}}
        for c in contestants:
            scores = [c.outcomes[k].score for k in ks]
            lo, hi = bootstrap_ci(scores, options.seed, options.resamples)
            row["entrants"][c.label] = {"pass@1": sum(scores) / len(scores), "ci95": [lo, hi]}
        for c in contestants[1:]:
            row["vs_baseline"][c.label] = paired_test(
                [base.outcomes[k].score for k in ks],
                [c.outcomes[k].score for k in ks],
                options.seed,
                options.resamples,
            )
        table[name] = row
    paired = set(keys)
    result: dict[str, Any] = {
        "baseline": base.label,
        "note": note,
        "tasks": len(keys),
        "bootstrap": {"seed": options.seed, "resamples": options.resamples, "level": 0.95},
        "entrants": [_entrant_summary(c, paired) for c in contestants],
        "settings_differ": _settings_differ(contestants),
        "groups": table,
        "disagreements": _disagreements(contestants, keys),
    }
    out.mkdir(parents=True, exist_ok=True)
    result["plots"] = _plots(out, result, contestants, paired)
    (out / COMPARE_JSON).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / COMPARE_MD).write_text(render(result), encoding="utf-8")
    return result


def _entrant_summary(c: Contestant, paired: set[Key]) -> dict[str, Any]:
    """Speed of one entrant over its warm requests on the paired tasks."""
    rs = c.warm(paired)
    first = [float(r["timings_ms"]["first_token"]) for r in rs if "first_token" in r["timings_ms"]]
    decode_s = sum(float(r["timings_ms"].get("decode", 0.0)) for r in rs) / 1000
    decoded = sum(max(0, int(r.get("tokens_out", 0)) - 1) for r in rs)  # the 1st: prompt pass
    models = sorted({str(s.get("model", "")) for s in c.settings})
    return {
        "label": c.label,
        "model": ", ".join(models),
        "dirs": list(c.dirs),
        "skipped_samples": c.skipped,
        "latency_ms": metrics.latency_stats([float(r["latency_ms"]) for r in rs]),
        "first_token_ms": metrics.latency_stats(first),
        "decode_tokens_per_s": decoded / decode_s if decode_s > 0 else 0.0,
        "tokens_out_mean": sum(int(r.get("tokens_out", 0)) for r in rs) / len(rs) if rs else 0.0,
        "by_language": by_language(c.on(paired)),  # compile errors, as in a run's summary
        "shown": gating.as_run_showed(c.on(paired)).as_dict(),  # what its gate let through
    }


def _settings_differ(contestants: Sequence[Contestant]) -> dict[str, dict[str, Any]]:
    """The run settings that are not the same for every entrant, per entrant."""
    merged = [
        {k: sorted({str(s.get(k)) for s in c.settings}) for k in c.settings[0]} for c in contestants
    ]
    keys = sorted({k for m in merged for k in m})
    return {
        k: {c.label: ", ".join(m.get(k, [])) for c, m in zip(contestants, merged, strict=True)}
        for k in keys
        if k != "suite" and len({tuple(m.get(k, [])) for m in merged}) > 1
    }


def _disagreements(contestants: Sequence[Contestant], keys: list[Key]) -> list[dict[str, Any]]:
    """The tasks on which the entrants do not all score the same, with each one's pass@1."""
    out = []
    for key in keys:
        scores = {c.label: c.outcomes[key].score for c in contestants}
        if len(set(scores.values())) > 1:
            o = contestants[0].outcomes[key]
            out.append(
                {"suite": o.suite, "task_id": o.task_id, "language": o.language, "pass@1": scores}
            )
    return out


# -- the report --------------------------------------------------------------------------------


def verdicts(result: dict[str, Any], group: str = "all") -> list[str]:
    """One line per entrant against the baseline: pass@1 both ways, the difference, CI and p."""
    row = result["groups"][group]
    base = result["baseline"]
    lines = []
    for label, t in row["vs_baseline"].items():
        lo, hi = t["ci95"]
        a, b = row["entrants"][base]["pass@1"], row["entrants"][label]["pass@1"]
        verdict = (
            "no significant difference"
            if t["p"] >= 0.05 or lo <= 0 <= hi
            else "better"
            if t["diff"] > 0
            else "worse"
        )
        lines.append(
            f"{label} vs {base}, {group} ({t['tasks']} tasks): pass@1 {a:.3f} -> {b:.3f}, "
            f"diff {t['diff']:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], McNemar p={t['p']:.3g} "
            f"({t['better']} tasks better, {t['worse']} worse): {verdict}"
        )
    return lines


def render(result: dict[str, Any], max_disagreements: int = 200) -> str:
    """compare.md: verdicts, pass@1 by suite and language, speed, disagreeing tasks."""
    labels = [e["label"] for e in result["entrants"]]
    lines = ["# Comparison: " + " vs ".join(labels), ""]
    if result["note"]:
        lines += [f"**{result['note']}**", ""]
    for e in result["entrants"]:
        lines.append(f"- `{e['label']}`: model `{e['model']}`, {', '.join(e['dirs'])}")
    b = result["bootstrap"]
    lines += [
        "",
        f"{result['tasks']} tasks paired; baseline `{result['baseline']}`. CI: paired "
        f"bootstrap over tasks ({b['resamples']} resamples, seed {b['seed']}); p: McNemar's "
        "exact test on the tasks where the two differ.",
        "",
        "## Verdict",
        "",
    ]
    lines += [f"- {v}" for v in verdicts(result)]
    if result["settings_differ"]:
        lines += ["", "## Settings that differ", ""]
        lines += ["| setting | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        for k, per in result["settings_differ"].items():
            lines.append(f"| {k} | " + " | ".join(f"`{per[x]}`" for x in labels) + " |")
    base = result["baseline"]
    for kind in ("suite", "language"):
        lines += ["", f"## pass@1 by {kind} (95% CI; difference to {base}, CI, p)", ""]
        heads = labels + [f"{x} - {base}" for x in labels[1:]]
        lines += [f"| {kind} | tasks | " + " | ".join(heads) + " |"]
        lines += ["|---" * (2 + len(heads)) + "|"]
        for name, row in result["groups"].items():
            if not name.startswith(kind + " "):
                continue
            cells = [
                f"{e['pass@1']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"
                for e in (row["entrants"][x] for x in labels)
            ]
            cells += [
                f"{t['diff']:+.3f} [{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}] p={t['p']:.3g}"
                for t in (row["vs_baseline"][x] for x in labels[1:])
            ]
            lines.append(
                f"| {name.split(' ', 1)[1]} | {row['tasks']} | " + " | ".join(cells) + " |"
            )
    lines += _compile_errors(result)
    lines += _shown(result)
    lines += ["", "## Speed (warm requests, ms)", ""]
    lines += [
        "| entrant | n | latency p50 | p90 | p99 | first token p50 | p90 | p99 "
        "| decode tokens/s | tokens out |",
        "|---" * 10 + "|",
    ]
    for e in result["entrants"]:
        lat, ft = e["latency_ms"], e["first_token_ms"]
        q = [f"{d.get(p, math.nan):.0f}" for d in (lat, ft) for p in ("p50", "p90", "p99")]
        lines.append(
            f"| {e['label']} | {lat.get('n', 0)} | "
            + " | ".join(q)
            + f" | {e['decode_tokens_per_s']:.1f} | {e['tokens_out_mean']:.1f} |"
        )
    dis = result["disagreements"]
    lines += ["", f"## Tasks where they disagree ({len(dis)})", ""]
    if dis:
        lines += ["| suite | task | language | " + " | ".join(labels) + " |"]
        lines += ["|---" * (3 + len(labels)) + "|"]
        for d in dis[:max_disagreements]:
            marks = [_mark(d["pass@1"][x]) for x in labels]
            lines.append(
                f"| {d['suite']} | {d['task_id']} | {d['language']} | " + " | ".join(marks) + " |"
            )
        if len(dis) > max_disagreements:
            lines.append(f"\n... and {len(dis) - max_disagreements} more in {COMPARE_JSON}")
    else:
        lines.append("None: every task scored the same for every entrant.")
    if result["plots"]:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in result["plots"]]
    return "\n".join(lines) + "\n"


def _shown(result: dict[str, Any]) -> list[str]:
    """What each entrant's gate showed of its answers on the paired tasks (gate on vs off)."""
    lines = [
        "",
        "## What the editor shows (the gate, completion/gate.py)",
        "",
        "| entrant | answers | right | shown | shown but wrong | precision of shown "
        "| right answers hidden |",
        "|---" * 7 + "|",
    ]
    for e in result["entrants"]:
        v = e["shown"]
        lines.append(
            f"| {e['label']} | {v['answers']} | {v['right']} | {v['shown']} | "
            f"{v['shown_wrong']} | {v['precision']:.3f} | "
            f"{v['hidden_right']} ({v['hidden_right_share']:.1%}) |"
        )
    return lines


def _compile_errors(result: dict[str, Any]) -> list[str]:
    """Per language but Python and entrant: the answers that did not compile (of all, of shown).

    A shown answer is a non-empty one, what the editor would have displayed
    (`records.by_language`, as in a run's own report).
    """
    entrants = result["entrants"]
    languages = sorted({x for e in entrants for x in e["by_language"]} - {"python"})
    if not languages:
        return []
    lines = ["", "## Compile errors by language (of all answers; of the shown ones)", ""]
    lines += ["| language | " + " | ".join(e["label"] for e in entrants) + " |"]
    lines += ["|---" * (1 + len(entrants)) + "|"]
    for language in languages:
        cells = []
        for e in entrants:
            v = e["by_language"].get(language)
            cells.append(
                f"{v['compile_errors']} ({v['compile_error_share']:.1%}); "
                f"{v['shown_not_compiling']:.1%} of {v['shown']}"
                if v
                else "-"
            )
        lines.append(f"| {language} | " + " | ".join(cells) + " |")
    return lines


def _mark(score: float) -> str:
    return "pass" if score == 1 else "fail" if score == 0 else f"{score:.2f}"


def _plots(
    out: Path, result: dict[str, Any], contestants: Sequence[Contestant], paired: set[Key]
) -> list[str]:
    from eval.report import pyplot

    plt = pyplot()
    if plt is None:
        return []
    labels = [c.label for c in contestants]
    groups = list(result["groups"])
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.9 + 0.3 * len(groups) * len(labels))))
    height = 0.8 / len(labels)
    for j, label in enumerate(labels):
        ys = [i + j * height for i in range(len(groups))]
        vals = [result["groups"][g]["entrants"][label] for g in groups]
        xs = [v["pass@1"] for v in vals]
        err = [
            [x - v["ci95"][0] for x, v in zip(xs, vals, strict=True)],
            [v["ci95"][1] - x for x, v in zip(xs, vals, strict=True)],
        ]
        ax.barh(ys, xs, height=height, xerr=err, capsize=3, label=label)
        for y, x in zip(ys, xs, strict=True):
            ax.text(0.01, y, f"{x:.3f}", va="center", fontsize=7)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(groups))])
    ax.set_yticklabels([f"{g} (n={result['groups'][g]['tasks']})" for g in groups])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass@1 (bars: 95% bootstrap CI)")
    ax.set_title("pass@1 by entrant")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.savefig(out / PASS_PNG, dpi=100, bbox_inches="tight")
    plt.close(fig)
    rows = [(g, x) for g in groups for x in labels[1:]]
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.8 + 0.35 * len(rows))))
    for i, (g, x) in enumerate(rows):
        t = result["groups"][g]["vs_baseline"][x]
        ax.errorbar(
            t["diff"],
            i,
            xerr=[[t["diff"] - t["ci95"][0]], [t["ci95"][1] - t["diff"]]],
            fmt="o",
            capsize=3,
            color=f"C{labels.index(x)}",  # the entrant's colour in the pass@1 plot
        )
        ax.text(t["ci95"][1], i, f"  p={t['p']:.3g}", va="center", fontsize=7)
    ax.axvline(0, color="grey", linestyle=":")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{x} - {labels[0]}, {g}" for g, x in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("difference of pass@1 (95% paired bootstrap CI); p: McNemar exact")
    ax.set_title(f"Against the baseline {labels[0]}")
    fig.savefig(out / DIFF_PNG, dpi=100, bbox_inches="tight")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in contestants:
        rs = c.warm(paired)
        series = {
            "end-to-end latency (ms)": [float(r["latency_ms"]) for r in rs],
            "first token (ms)": [float(r["timings_ms"].get("first_token", 0.0)) for r in rs],
        }
        for ax, (name, vals) in zip(axes, series.items(), strict=True):
            vals = sorted(vals)
            if vals:
                ax.step(
                    vals,
                    [(i + 1) / len(vals) for i in range(len(vals))],
                    where="post",
                    label=c.label,
                )
            ax.set_xlabel(name)
    for ax in axes:
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Latency CDF, warm requests on the paired tasks")
    fig.savefig(out / LATENCY_PNG, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [PASS_PNG, DIFF_PNG, LATENCY_PNG]


def log_note(result: dict[str, Any], stream: TextIO = sys.stderr) -> None:
    """Say loudly on stderr when the pairing left tasks out."""
    if result["note"]:
        print(f"offpilot eval compare: {result['note']}", file=stream)
