"""A run's directory: its settings, its samples (appended as they finish), its summary.

`DIR/settings.json` pins what a run does, so a resumed run cannot mix settings;
`DIR/samples.jsonl` holds one record per finished sample; `DIR/sessions.jsonl` one line per
process that worked on the run; `summary.json` is computed from these.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from completion.models.store import Manifest
from completion.options import CompletionOptions
from eval import gating, metrics, toolchains
from eval.sandbox import execution

SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
SETTINGS = "settings.json"
REPORT = "report.md"
STAGES = (
    "context",
    "crossfile",
    "prompt",
    "tokenize",
    "first_token",
    "decode",
    "postprocess",
    "total",
)


class Judgement(TypedDict):
    """A sample's test outcome (`eval.run.judge`)."""

    passed: bool
    result: str  # execution.PASSED, FAILED, ERROR or TIMEOUT
    reason: str
    exec_ms: float


class SampleRecord(TypedDict):
    """One line of DIR/samples.jsonl: a generated sample, then its test outcome.

    Built in one place (`eval.run.sample_records`), judged by `eval.run.judged`; the keys
    every reader may rely on are these.
    """

    task_id: str
    sample: int
    kind: str
    language: str
    completion: str  # the answer, post-processed, before the gate: what pass@k scores
    raw: str  # the model's output before post-processing (`eval repost` redoes that)
    shown: NotRequired[str]  # what the gate lets the editor show (completion, its first line, "")
    gate_score: NotRequired[float | None]  # the gate's P(right) of completion (None: unscored)
    line: NotRequired[str]  # a block's first line alone, as the gate may show it
    line_gate_score: NotRequired[float | None]  # of `line`
    features: NotRequired[dict[str, float] | None]  # what the gate read (completion/gate.py)
    line_features: NotRequired[dict[str, float] | None]
    log_probs: NotRequired[list[float]]  # of each generated token
    mode: str  # the trigger's decision: none | single | multi
    stop_reason: str
    latency_ms: float
    timings_ms: dict[str, float]  # per stage (STAGES)
    tokens_in: int
    tokens_out: int
    crossfile: list[str]
    shared_prompt_pass: bool  # pass@k: one prompt pass shared by the task's samples
    cold: bool  # the first sample after the model loaded
    passed: NotRequired[bool]  # the Judgement's fields, once judged
    result: NotRequired[str]
    reason: NotRequired[str]
    exec_ms: NotRequired[float]
    shown_passed: NotRequired[bool]  # `shown` passes the test (judged apart when it differs)
    line_passed: NotRequired[bool]  # `line` passes the test
    session: NotRequired[str]  # the process that wrote it (SampleSink)
    elapsed_s: NotRequired[float]  # when, since that process started
    retested: NotRequired[bool]  # `eval repost`: the completion changed and was tested again
    suite: NotRequired[str]  # `eval compare`: the suite of the run it was read from


def with_judgement(record: SampleRecord, outcome: Judgement) -> SampleRecord:
    """A copy of `record` carrying its test outcome."""
    done = record.copy()
    done["passed"], done["result"] = outcome["passed"], outcome["result"]
    done["reason"], done["exec_ms"] = outcome["reason"], outcome["exec_ms"]
    return done


@dataclass(frozen=True)
class RunSettings:
    """What a run does; a resumed run must have the same ones."""

    suite: str
    limit: int | None = None
    seed: int = 0
    samples: int = 1
    temperature: float = 0.0
    timeout_s: float = 10.0
    max_new_tokens: int = CompletionOptions.max_new_tokens
    time_budget_s: float = CompletionOptions.time_budget_s
    model: str = ""
    pipeline: str = ""  # `--set` of the run: pipeline options, `name=value,...` (docs/quality.md)
    reposted_from: str = ""  # `offpilot eval repost`: the run whose raw output was reused
    backend: str = ""  # `--backend URL`: the server that generated ("": the local engine)
    engine: str = ""  # the local engine that generated: llama.cpp or ctranslate2 (`--engine`)
    projects: str = ""  # `--projects DIR`: where project tasks may live ("": the tasks file's)
    # `model_sha256` of the model's files: every Ray worker checks it loaded exactly these
    model_sha256: str = ""

    def options(self) -> CompletionOptions:
        """The pipeline options (the editor's defaults unless overridden)."""
        return CompletionOptions(
            max_new_tokens=self.max_new_tokens,
            time_budget_s=self.time_budget_s,
            temperature=self.temperature,
            seed=self.seed if self.temperature > 0 else None,
        ).with_spec(self.pipeline)


class SettingsMismatchError(Exception):
    """The output directory holds a run made with other settings."""


# Settings a run directory written before they existed may lack; it is resumed unpinned.
LATER_PINS = ("model_sha256", "engine")


def model_sha256(manifest: Manifest) -> str:
    """One sha256 naming a model's files: of its manifest's file names and their sha256.

    `store.locate` checks the files against the manifest, so two loads with the same value
    loaded the same bytes, whatever the model's name or directory.
    """
    files = {name: info["sha256"] for name, info in sorted(manifest.files.items())}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def read_samples(out: Path, repair: bool = True) -> list[SampleRecord]:
    """Records already in DIR/samples.jsonl; a line cut short by a kill is dropped.

    `repair` rewrites the file without it, for the run that appends next; a reader of a run
    that may still be going (`eval compare`) must not, or the writer's appends are lost.
    """
    path = out / SAMPLES
    if not path.exists():
        return []
    records: list[SampleRecord] = []
    broken = False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            broken = True
    if repair and (broken or (path.stat().st_size and not path.read_bytes().endswith(b"\n"))):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tmp.replace(path)
    return records


def check_settings(out: Path, settings: RunSettings) -> None:
    """Pin `settings` to DIR, or refuse when DIR holds a run made with others."""
    path = out / SETTINGS
    mine = asdict(settings)
    if path.exists():
        defaults = {f.name: f.default for f in fields(RunSettings)}
        stored = json.loads(path.read_text(encoding="utf-8"))
        theirs = {**defaults, **{k: mine[k] for k in LATER_PINS}, **stored}
        if theirs != mine:
            diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            raise SettingsMismatchError(
                f"{out} holds a run with other settings {diff}; use another --out"
            )
    else:
        path.write_text(json.dumps(mine, indent=2) + "\n", encoding="utf-8")


def append_session(out: Path, session: str, wall: float, load: dict[str, float]) -> None:
    """Record one process's work on the run (its wall time and model load)."""
    path = out / "sessions.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"session": session, "wall_s": round(wall, 2), **load}) + "\n")


def sessions(out: Path) -> list[dict[str, Any]]:
    """The processes that worked on the run, oldest first."""
    path = out / "sessions.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def machine() -> dict[str, Any]:
    """The hardware and software that ran the benchmark."""
    cpu = platform.processor() or ""
    mem_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1e6, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sandbox": execution.sandbox().describe(),
    }


def summarize(settings: RunSettings, records: list[SampleRecord], out: Path) -> dict[str, Any]:
    """summary.json: pass@k, result counts, latency percentiles per stage, cold request.

    A sample whose toolchain was missing (`toolchains.is_missing`) is no answer of the
    model: pass@k and the pass rates leave it out, and `skipped` says how many and why.
    """
    skipped = [r for r in records if toolchains.is_missing(str(r.get("reason", "")))]
    scored = [r for r in records if not toolchains.is_missing(str(r.get("reason", "")))]
    by_task: dict[str, list[bool]] = defaultdict(list)
    kinds: dict[str, list[bool]] = defaultdict(list)
    for r in scored:
        by_task[r["task_id"]].append(bool(r["passed"]))
        kinds[r.get("kind", "")].append(bool(r["passed"]))
    counts = [(len(v), sum(v)) for v in by_task.values()]
    n = settings.samples
    pass_k = {f"pass@{k}": metrics.mean_pass_at_k(counts, k) for k in range(1, n + 1)}
    warm = [r for r in records if not r.get("cold")]
    cold = [r for r in records if r.get("cold")]

    def stage(rs: list[SampleRecord], name: str) -> list[float]:
        return [float(r["timings_ms"][name]) for r in rs if name in r.get("timings_ms", {})]

    past = sessions(out)
    summary: dict[str, Any] = {
        "suite": settings.suite,
        "model": settings.model,
        "settings": asdict(settings),
        "machine": machine(),
        "tasks": len(by_task),
        "samples_per_task": n,
        "samples": len(records),
        **pass_k,
        "results": dict(Counter(r["result"] for r in records)),
        "skipped": {
            "samples": len(skipped),
            "reasons": dict(Counter(str(r["reason"]) for r in skipped)),
        },
        "language": _language(records),
        "by_language": by_language(records),
        "gate": gating.summary(scored),
        "pass_rate_by_kind": {
            k: {"samples": len(v), "pass_rate": sum(v) / len(v)} for k, v in sorted(kinds.items())
        },
        "latency_ms": {
            **metrics.latency_stats([float(r["latency_ms"]) for r in warm]),
            "stages": {s: metrics.latency_stats(stage(warm, s)) for s in STAGES},
            "cold": [{"task_id": r["task_id"], **r["timings_ms"]} for r in cold],
        },
        "tokens": {
            "in_mean": _mean([r.get("tokens_in", 0) for r in records]),
            "out_mean": _mean([r.get("tokens_out", 0) for r in records]),
            "in_total": sum(r.get("tokens_in", 0) for r in records),
            "out_total": sum(r.get("tokens_out", 0) for r in records),
        },
        "wall_s": round(sum(s.get("wall_s", 0.0) for s in past), 1),
        "sessions": past,
    }
    return summary


def _language(records: list[SampleRecord]) -> str:
    """The run's language: the one of all its samples, or `mixed`."""
    found = {r.get("language", "python") for r in records}
    return found.pop() if len(found) == 1 else "mixed" if found else ""


def by_language(records: list[SampleRecord]) -> dict[str, dict[str, Any]]:
    """Per language: pass@1, how many answers did not compile, test time per sample.

    `compile_error_share` is over the scored samples; `shown_not_compiling` over those with
    a non-empty completion (what an editor would have shown). Skipped samples (a missing
    toolchain) count only in `skipped`.
    """
    groups: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        groups[r.get("language", "python")].append(r)
    out = {}
    for language, rs in sorted(groups.items()):
        scored = [r for r in rs if not toolchains.is_missing(str(r.get("reason", "")))]
        per_task: dict[str, list[bool]] = defaultdict(list)
        for r in scored:
            per_task[r["task_id"]].append(bool(r["passed"]))
        counts = [(len(v), sum(v)) for v in per_task.values()]
        compile_errors = [r for r in scored if toolchains.is_compile_error(str(r["reason"]))]
        shown = [r for r in scored if str(r.get("completion", "")).strip()]
        shown_bad = [r for r in compile_errors if str(r.get("completion", "")).strip()]
        out[language] = {
            "samples": len(scored),
            "skipped": len(rs) - len(scored),
            "pass@1": metrics.mean_pass_at_k(counts, 1),
            "compile_errors": len(compile_errors),
            "compile_error_share": len(compile_errors) / len(scored) if scored else 0.0,
            "shown": len(shown),
            "shown_not_compiling": len(shown_bad) / len(shown) if shown else 0.0,
            "exec_ms_mean": _mean([float(r.get("exec_ms", 0.0)) for r in scored]),
        }
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
