"""DIR/report.md and its plots (latency CDF, pass rate by task kind)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from eval.records import SampleRecord

log = logging.getLogger(__name__)

LATENCY_PNG = "latency_cdf.png"
KIND_PNG = "pass_by_kind.png"
GATE_PNG = "gate_precision_coverage.png"


def write_report(out: Path, summary: dict[str, Any], records: list[SampleRecord]) -> Path:
    """Write report.md (and the PNG plots when matplotlib is installed); returns its path."""
    plots = _plots(out, summary, records)
    path = out / "report.md"
    path.write_text(render(summary, records, plots), encoding="utf-8")
    return path


def render(summary: dict[str, Any], records: list[SampleRecord], plots: list[str]) -> str:
    """The report as Markdown."""
    s = summary
    lines = [f"# Benchmark: {s['suite']}", ""]
    lines += [
        f"- model: `{s['model']}`",
        f"- settings: `{_settings(s['settings'])}`",
        f"- machine: {_machine(s['machine'])}",
        f"- tasks: {s['tasks']}, samples per task: {s['samples_per_task']}, "
        f"samples: {s['samples']}, wall time: {s['wall_s']} s",
        "",
        "## pass@k",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:.3f} |" for k, v in s.items() if k.startswith("pass@")]
    lines += ["", "Results: " + ", ".join(f"{k} {v}" for k, v in sorted(s["results"].items()))]
    lines += _languages(s)
    lines += _gate(s)
    lines += ["", "## Latency (ms, warm requests)", ""]
    lines += ["| stage | n | p50 | p90 | p99 | max |", "| --- | --- | --- | --- | --- | --- |"]
    for name, st in s["latency_ms"]["stages"].items():
        if st.get("n"):
            lines.append(
                f"| {name} | {st['n']} | {st['p50']:.1f} | {st['p90']:.1f} | "
                f"{st['p99']:.1f} | {st['max']:.1f} |"
            )
    for cold in s["latency_ms"]["cold"]:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in cold.items() if k != "task_id")
        lines.append(f"\nCold (first) request, {cold['task_id']}: {parts}")
    for sess in s.get("sessions", []):
        if "load_s" in sess:
            lines.append(
                f"\nSession {sess['session']}: model load {sess['load_s']:.1f} s, "
                f"warm-up {sess['warmup_s']:.1f} s, wall {sess['wall_s']:.1f} s"
            )
    tok = s["tokens"]
    lines += [
        "",
        f"Tokens: {tok['in_mean']:.0f} in and {tok['out_mean']:.1f} out per request on average "
        f"({tok['in_total']} / {tok['out_total']} in all).",
        "",
        "## Pass rate by task kind",
        "",
        "| kind | samples | pass rate |",
        "| --- | --- | --- |",
    ]
    for kind, v in s["pass_rate_by_kind"].items():
        lines.append(f"| {kind or '-'} | {v['samples']} | {v['pass_rate']:.3f} |")
    lines += ["", "## Worst failures by kind", ""]
    lines += _failures(records)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _languages(s: dict[str, Any]) -> list[str]:
    """Skipped samples, and a per-language table once a language other than Python is in."""
    lines = []
    skipped = s.get("skipped", {})
    if skipped.get("samples"):
        why = "; ".join(f"{n} x {reason}" for reason, n in skipped["reasons"].items())
        lines += ["", f"Skipped (left out of pass@k): {skipped['samples']} samples: {why}"]
    langs = s.get("by_language", {})
    if set(langs) - {"python"}:
        lines += ["", "## By language", ""]
        lines += [
            "| language | samples | pass@1 | compile errors | shown, not compiling "
            "| skipped | test ms/sample |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, v in langs.items():
            lines.append(
                f"| {name} | {v['samples']} | {v['pass@1']:.3f} | {v['compile_errors']} "
                f"({v['compile_error_share']:.1%}) | {v['shown_not_compiling']:.1%} "
                f"of {v['shown']} | {v['skipped']} | {v['exec_ms_mean']:.0f} |"
            )
    return lines


def _failures(records: list[SampleRecord], top: int = 5) -> list[str]:
    """The most frequent reasons for each non-passing result, with an example task."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    example: dict[tuple[str, str], SampleRecord] = {}
    for r in records:
        if r["passed"]:
            continue
        reason = _short(r.get("reason", ""))
        if r["result"] != "timeout" and r.get("completion", "") == "":
            reason = "empty completion; " + reason
        groups[r["result"]][reason] += 1
        example.setdefault((r["result"], reason), r)
    if not groups:
        return ["None: every sample passed."]
    lines = []
    for result, reasons in sorted(groups.items(), key=lambda kv: -sum(kv[1].values())):
        lines.append(f"### {result} ({sum(reasons.values())})")
        lines.append("")
        for reason, count in reasons.most_common(top):
            ex = example[(result, reason)]
            shown = ex.get("completion", "").strip().replace("`", "'")[:80]
            lines.append(f"- {count} x {reason} (e.g. {ex['task_id']}: `{shown}`)")
        lines.append("")
    return lines


def _short(reason: str, width: int = 90) -> str:
    reason = reason.replace("|", "/").replace("\n", " ")
    return reason if len(reason) <= width else reason[: width - 3] + "..."


def _settings(settings: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items() if v not in (None, ""))


def _machine(m: dict[str, Any]) -> str:
    return f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB, {m.get('os')}"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files, no display), or None when not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: report without plots")
        return None
    return plt


def _gate(summary: dict[str, Any]) -> list[str]:
    """What was shown, with the run's gate and without it, and the gate's curve."""
    gate = summary.get("gate")
    if not gate or not gate["no_gate"]["answers"]:
        return []
    point = summary["settings"].get("pipeline", "") or "default"
    lines = [
        "",
        "## Shown or not (completion/gate.py)",
        "",
        "pass@k scores every answer; the gate decides which the editor shows.",
        "",
        "| | answers | right | shown | shown but wrong | precision of shown "
        "| right answers hidden |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, v in ((f"as run (`{point}`)", gate["as_run"]), ("no gate", gate["no_gate"])):
        lines.append(
            f"| {name} | {v['answers']} | {v['right']} | {v['shown']} | {v['shown_wrong']} | "
            f"{v['precision']:.3f} | {v['hidden_right']} ({v['hidden_right_share']:.1%}) |"
        )
    lines += [
        "",
        "Precision against coverage, by the threshold on the gate's score:",
        "",
        "| threshold | coverage | shown | shown but wrong | precision | right answers hidden |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for v in gate["curve"]:
        lines.append(
            f"| {v['threshold']:.2f} | {v['coverage']:.3f} | {v['shown']} | {v['shown_wrong']} "
            f"| {v['precision']:.3f} | {v['hidden_right_share']:.1%} |"
        )
    return lines


def _saved(plt: Any, fig: Any, out: Path, name: str) -> str:
    """Write a figure to OUT/name and free it; the name, for the report's links."""
    fig.savefig(out / name, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return name


def _plots(out: Path, summary: dict[str, Any], records: list[SampleRecord]) -> list[str]:
    plt = pyplot()
    if plt is None:
        return []
    made = []
    warm = sorted(float(r["latency_ms"]) for r in records if not r.get("cold"))
    if warm:
        fig, ax = plt.subplots(figsize=(6, 4))
        ys = [(i + 1) / len(warm) for i in range(len(warm))]
        ax.step(warm, ys, where="post")
        for q in (50, 90, 99):
            v = summary["latency_ms"].get(f"p{q}")
            if v is not None:
                ax.axvline(v, linestyle=":", color="grey")
                ax.text(v, 0.02 + q / 200, f"p{q} {v:.0f}", fontsize=8)
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"Latency CDF, {summary['suite']} (n={len(warm)})")
        ax.grid(alpha=0.3)
        made.append(_saved(plt, fig, out, LATENCY_PNG))
    kinds = summary["pass_rate_by_kind"]
    if kinds:
        fig, ax = plt.subplots(figsize=(6, max(2.5, 0.8 + 0.4 * len(kinds))))
        names = [k or "-" for k in kinds]
        ax.barh(names, [v["pass_rate"] for v in kinds.values()])
        for i, v in enumerate(kinds.values()):
            ax.text(v["pass_rate"], i, f" {v['pass_rate']:.2f} (n={v['samples']})", va="center")
        ax.set_xlim(0, 1.15)
        ax.set_xlabel("pass rate")
        ax.set_title(f"Pass rate by task kind, {summary['suite']}")
        made.append(_saved(plt, fig, out, KIND_PNG))
    curve = [v for v in summary.get("gate", {}).get("curve", []) if v["shown"]]
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([v["coverage"] for v in curve], [v["precision"] for v in curve], marker=".")
        for v in curve[::4]:
            ax.annotate(f"{v['threshold']:.2f}", (v["coverage"], v["precision"]), fontsize=7)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("coverage (answers shown)")
        ax.set_ylabel("precision (shown and right)")
        ax.set_title(f"Gate: precision against coverage, {summary['suite']}")
        ax.grid(alpha=0.3)
        made.append(_saved(plt, fig, out, GATE_PNG))
    return made
