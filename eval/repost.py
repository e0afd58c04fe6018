"""`offpilot eval repost`: post-process a finished run's raw model output again, test again.

Every sample of `offpilot eval run` keeps the model's output as the streaming stop rule left
it (`raw`) and the trigger's decision (`mode`). Post-processing is a pure function of that
output and the document, so switching a post-processing stage (`POST_STAGES`) needs no new
generation: this re-applies `postprocess` with the changed switches and re-runs the tests
of the completions that changed (an unchanged completion keeps its outcome). An ablation of
one stage then costs seconds of tests instead of a model run, and differs from the base run
in that stage only (same model output, no run-to-run noise from the time budget).

`first_line=1` treats every completion as a single line (the first line of the raw
output): with every stage off it is the bare-model baseline, the same prompt with a
first-line cut and no post-processing.

The streaming block stop can be switched on too, from a run made with `block_stop=0`: its
raw output is uncut, and greedy decoding with the stop rule would have produced a prefix of
it, so cutting it where the rule fires gives what the run with the rule would have shown.
"""

from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from completion import gate
from completion.context import Context, extract_context
from completion.options import POST_STAGES, CompletionOptions
from completion.postprocess import postprocess
from completion.stops import cut_offline
from completion.trigger import Mode
from eval import data
from eval.progress import Progress
from eval.records import (
    SAMPLES,
    SETTINGS,
    SUMMARY,
    RunSettings,
    SampleRecord,
    check_settings,
    read_samples,
    summarize,
    with_judgement,
)
from eval.report import write_report
from eval.run import features_of, judge, request_for, score_of

FIRST_LINE = "first_line"  # repost only: every completion cut to its first line


class RepostError(Exception):
    """The source run or the switches cannot be reposted."""


def parse_spec(spec: str) -> dict[str, str]:
    """`dedupe=0,balance=0` -> names and values; only post-processing switches are allowed."""
    items = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in (*POST_STAGES, "block_stop", FIRST_LINE):
            raise RepostError(
                f"cannot repost {item.strip()!r}: only post-processing switches can change "
                f"without generating again ({', '.join(POST_STAGES)}, as name=0 or name=1; "
                f"block_stop=1 from a run made with block_stop=0, {FIRST_LINE}=1)"
            )
        items[name] = value.strip()
    if not items:
        raise RepostError("nothing to switch: give --set NAME=0|1[,...]")
    return items


def _regate(record: SampleRecord, raw: str, context: Context, options: CompletionOptions) -> None:
    """The gate again on a changed completion: all or nothing (its first line is not redone).

    The recorded log-probs are the generated tokens'; a cut made here leaves them whole.
    """
    text = record["completion"]
    log_probs = tuple(record.get("log_probs", ()))
    mode, reason = record["mode"], record["stop_reason"]
    verdict = gate.assess(text, raw, log_probs, reason, mode, context, options.gate)
    record["shown"] = text if verdict is None or verdict.shown else ""
    record["gate_score"], record["features"] = score_of(verdict), features_of(verdict)
    record["line"], record["line_gate_score"], record["line_features"] = "", None, None
    record.pop("line_passed", None)


def load_settings(source: Path) -> RunSettings:
    """The settings of a finished run (unknown keys of other versions ignored)."""
    path = source / SETTINGS
    if not path.exists():
        raise RepostError(f"{source} holds no run ({SETTINGS} is missing)")
    raw = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(RunSettings)}
    return RunSettings(**{k: v for k, v in raw.items() if k in known})


def repost(
    source: Path,
    out: Path,
    spec: str,
    workers: int = 1,
    progress_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Re-post-process every sample of the run in `source` with `spec` applied.

    Writes a new run to `out` (samples, summary, report, as `eval run` does); returns its
    summary, with `changed`: how many completions differ from the source run's.
    """
    switches = parse_spec(spec)
    first_line = switches.pop(FIRST_LINE, "0") == "1"
    base = load_settings(source)
    records = read_samples(source)
    if not records:
        raise RepostError(f"{source} has no samples")
    if any("raw" not in r or "mode" not in r for r in records):
        raise RepostError(
            f"{source} was made before samples kept their raw output: run it again to repost"
        )
    pipeline = ",".join(p for p in (base.pipeline, spec.strip()) if p)
    settings = dataclasses.replace(base, pipeline=pipeline, reposted_from=str(source))
    made_with = CompletionOptions(
        max_new_tokens=base.max_new_tokens, time_budget_s=base.time_budget_s
    ).with_spec(base.pipeline)
    options = made_with.with_spec(",".join(f"{k}={v}" for k, v in switches.items()))
    restop = options.block_stop and not made_with.block_stop
    if "block_stop" in switches and made_with.block_stop:
        raise RepostError(
            "block_stop can be reposted only from a run made with block_stop=0 (uncut output)"
        )
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings)
    tasks = {t.task_id: t for t in data.load_suite(base.suite, base.projects or None)}
    started = time.monotonic()
    progress = Progress(len(records), 0, progress_stream)

    def redo(record: SampleRecord) -> SampleRecord:
        task = tasks.get(record["task_id"])
        if task is None:
            raise RepostError(f"task {record['task_id']} is not in {base.suite}")
        new = record.copy()
        if record["mode"] in ("single", "multi"):
            request = request_for(task)
            context = extract_context(request.text, request.offset, request.language, request.path)
            raw, reason = record["raw"], record["stop_reason"]
            if restop and record["mode"] == "multi":
                rule = options.stop_rule(context, Mode.MULTI)
                raw, reason = cut_offline(raw, rule, reason)
            if first_line:  # what the single-line stop rule would have left
                raw, reason = cut_offline(raw, options.stop_rule(context, Mode.SINGLE), reason)
            t0 = time.monotonic()
            post = options.post_for(record["mode"] == "multi" and not first_line)
            text = postprocess(raw, context, reason, post)
            post_ms = (time.monotonic() - t0) * 1000
            timings = dict(record.get("timings_ms", {}))
            shift = post_ms - float(timings.get("postprocess", 0.0))
            timings["postprocess"] = round(post_ms, 2)
            if "total" in timings:
                timings["total"] = round(float(timings["total"]) + shift, 2)
            new["completion"], new["stop_reason"], new["timings_ms"] = text, reason, timings
            new["latency_ms"] = round(float(record.get("latency_ms", 0.0)) + shift, 2)
            if text != record["completion"]:
                _regate(new, raw, context, options)
        if new["completion"] != record["completion"]:
            new = with_judgement(new, judge(task, new["completion"], base.timeout_s))
            new["shown_passed"] = bool(new["passed"]) and new["shown"] == new["completion"]
            new["retested"] = True
        else:
            new["retested"] = False
        progress.update(bool(new["passed"]))
        return new

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="repost") as pool:
        fresh = list(pool.map(redo, records))
    (out / SAMPLES).write_text("".join(json.dumps(r) + "\n" for r in fresh), encoding="utf-8")
    (out / "sessions.jsonl").write_text(
        json.dumps({"session": "repost", "wall_s": round(time.monotonic() - started, 2)}) + "\n",
        encoding="utf-8",
    )
    summary = summarize(settings, fresh, out)
    summary["changed"] = sum(1 for r in fresh if r["retested"])
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_report(out, summary, fresh)
    return summary
