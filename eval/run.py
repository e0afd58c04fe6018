"""The benchmark runner: generate through the editor's pipeline, execute, score, report.

Generation runs in this process, one request at a time, through `completion.pipeline`
(`complete` for one greedy sample, `complete_samples` for n samples sharing one prompt pass).
Execution runs in parallel sandboxes (`eval.execution`). Every finished sample is appended
to `DIR/samples.jsonl` at once, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from completion import crossfile
from completion.crossfile import Document
from completion.engine import Engine
from completion.pipeline import (
    CompletionOptions,
    CompletionRequest,
    CompletionResult,
    complete,
    complete_samples,
)
from eval import data, execution, make_tasks, metrics

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


class Progress:
    """A one-line progress bar with pass count and ETA, drawn on stderr."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = done
        self.start_done = done
        self.passed = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self._last_draw = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, passed: bool) -> None:
        """Count one finished sample and redraw (throttled)."""
        self.done += 1
        self.passed += int(passed)
        now = time.monotonic()
        if now - self._last_draw >= (0.2 if self._tty else 10.0) or self.done == self.total:
            self._last_draw = now
            self.draw()

    def line(self) -> str:
        """The current bar as text."""
        width = 30
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        elapsed = time.monotonic() - self.started
        fresh = self.done - self.start_done
        left = self.total - self.done
        eta = elapsed / fresh * left if fresh else float("nan")
        rate = f"{self.passed}/{fresh} passed" if fresh else "starting"
        return (
            f"[{bar}] {self.done}/{self.total} {frac:4.0%}  {rate}  "
            f"elapsed {_clock(elapsed)}  ETA {_clock(eta)}"
        )

    def draw(self) -> None:
        """Write the bar (in place on a terminal, one line per draw otherwise)."""
        end = "\r" if self._tty and self.done < self.total else "\n"
        self.stream.write(self.line() + end)
        self.stream.flush()


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def read_samples(out: Path) -> list[dict[str, Any]]:
    """Records already in DIR/samples.jsonl; a line cut short by a kill is dropped (and fixed)."""
    path = out / SAMPLES
    if not path.exists():
        return []
    records, broken = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            broken = True
    if broken or (path.stat().st_size and not path.read_bytes().endswith(b"\n")):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tmp.replace(path)
    return records


def _check_settings(out: Path, settings: RunSettings) -> None:
    path = out / SETTINGS
    mine = asdict(settings)
    if path.exists():
        defaults = {f.name: f.default for f in fields(RunSettings)}
        theirs = {**defaults, **json.loads(path.read_text(encoding="utf-8"))}
        if theirs != mine:
            diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            raise SettingsMismatchError(
                f"{out} holds a run with other settings {diff}; use another --out"
            )
    else:
        path.write_text(json.dumps(mine, indent=2) + "\n", encoding="utf-8")


def request_for(task: data.Task) -> CompletionRequest:
    """The editor request for a task: the whole file, cursor at the hole (`data.document`).

    A project task is a file of a workspace: its absolute path, the project as the workspace
    root and the project's other modules as the editor's other open documents
    (`project_documents`). A HumanEval task is a lone file named after its function.
    """
    text, offset = data.document(task)
    if task.project and task.path:
        path = str(Path(task.project, task.path).resolve())
        documents = project_documents(Path(task.project), path, text)
        return CompletionRequest(text, offset, "python", path, documents, task.project)
    name = f"{task.entry_point}.py" if task.entry_point else task.task_id.replace("/", "_")
    return CompletionRequest(text, offset, "python", name)


def project_documents(project: Path, current: str, text: str) -> tuple[Document, ...]:
    """What an editor working on `current` plausibly has open, at most `MAX_DOCUMENTS`.

    The project's source modules that `current` imports, then the others of its directory,
    then the rest, nearest first; tests left out.
    """
    here = Path(current)
    imported: set[Path] = set()
    for imp in crossfile.parse_imports(text):
        modules = [imp.module]
        if imp.name and imp.name != "*":  # `from pkg import mod` may name a module
            modules.append(f"{imp.module}.{imp.name}".strip("."))
        for module in modules:
            found = crossfile.resolve_module(module, imp.level, current, str(project))
            if found is not None:
                imported.add(found)
    candidates = [
        p.resolve() for p in make_tasks.source_files(project) if p.resolve() != here.resolve()
    ]

    def rank(p: Path) -> tuple[int, int, str]:
        same_dir = p.parent == here.parent
        depth = len(p.relative_to(project.resolve()).parts)
        return (0 if p in imported else 1 if same_dir else 2, depth, str(p))

    docs = []
    for p in sorted(candidates, key=rank)[: crossfile.MAX_DOCUMENTS]:
        try:
            docs.append(Document(str(p), p.read_text(encoding="utf-8"), "python"))
        except (OSError, UnicodeDecodeError):
            continue
    return tuple(docs)


def generate_for(
    engine: Engine, task: data.Task, n: int, options: CompletionOptions
) -> list[CompletionResult]:
    """The completions of one task via the editor pipeline (greedy n=1: `complete`)."""
    request = request_for(task)
    if n == 1:
        return [complete(engine, request, options)]
    return complete_samples(engine, request, options, n)


def judge(task: data.Task, completion: str, timeout_s: float) -> dict[str, Any]:
    """Run the task's test on the filled-in program: the outcome fields of a sample record.

    A project task whose `path` would leave the sandbox is an error record, not a crash.
    """
    try:
        outcome = execution.run_program(
            data.program(task, completion),
            execution.Limits(timeout_s=timeout_s),
            data.setup_for(task, completion),
        )
    except data.TaskPathError as exc:
        reason = f"task refused: {exc}"
        return {"passed": False, "result": execution.ERROR, "reason": reason, "exec_ms": 0.0}
    return {
        "passed": outcome.result == execution.PASSED,
        "result": outcome.result,
        "reason": outcome.reason,
        "exec_ms": round(outcome.ms, 1),
    }


def _stage_times(result: CompletionResult, tokenize_ms: float) -> dict[str, float]:
    t = result.timings_ms
    first = t.get("first_token", 0.0)
    return {
        "context": t.get("context", 0.0),
        "crossfile": t.get("crossfile", 0.0),
        "prompt": t.get("prompt", 0.0),
        "tokenize": tokenize_ms,
        "first_token": first,
        "decode": max(0.0, t.get("generate", 0.0) - first),
        "postprocess": t.get("postprocess", 0.0),
        "total": t.get("total", 0.0),
    }


def run(
    settings: RunSettings,
    out: Path,
    engine_factory: Callable[[], Engine],
    workers: int | None = None,
    progress_stream: TextIO | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a benchmark into `out`; returns the summary.

    `stop_after` ends the session after that many new samples (tests use it to mimic a kill).
    """
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    tasks = data.select(data.load_suite(settings.suite), settings.limit, settings.seed)
    records = read_samples(out)
    have = Counter(r["task_id"] for r in records)
    todo = [(t, settings.samples - have[t.task_id]) for t in tasks]
    todo = [(t, n) for t, n in todo if n > 0]
    total = len(tasks) * settings.samples
    progress = Progress(total, total - sum(n for _, n in todo), progress_stream)
    session = uuid.uuid4().hex[:8]
    started = time.monotonic()
    lock = threading.Lock()
    produced = 0
    load = {}
    if todo:
        execution.sandbox()  # probe first: stop before loading a model if nothing can run
        t0 = time.monotonic()
        engine = engine_factory()
        load = {
            "load_s": getattr(engine, "load_seconds", time.monotonic() - t0),
            "warmup_s": getattr(engine, "warmup_seconds", 0.0),
        }
        options = settings.options()
        workers = workers or os.cpu_count() or 1
        with (
            open(out / SAMPLES, "a", encoding="utf-8") as sink,
            ThreadPoolExecutor(workers, thread_name_prefix="eval-exec") as pool,
        ):
            pending: set[Future[None]] = set()

            def execute(record: dict[str, Any], task: data.Task) -> None:
                record.update(
                    judge(task, record["completion"], settings.timeout_s),
                    session=session,
                    elapsed_s=round(time.monotonic() - started, 3),
                )
                with lock:
                    sink.write(json.dumps(record) + "\n")
                    sink.flush()
                    progress.update(record["passed"])

            cold = True
            for task, n in todo:
                if stop_after is not None and produced >= stop_after:
                    break
                n = min(n, stop_after - produced) if stop_after is not None else n
                results = generate_for(engine, task, n, options)
                t_tok = time.monotonic()
                engine.encode(task.prompt[-4000:] + task.suffix[:2000])
                tokenize_ms = (time.monotonic() - t_tok) * 1000
                for i, res in enumerate(results):
                    record = {
                        "task_id": task.task_id,
                        "sample": have[task.task_id] + i,
                        "kind": task.kind,
                        "completion": res.text,
                        "raw": res.raw,
                        "mode": res.mode,
                        "stop_reason": res.stop_reason,
                        "latency_ms": round(res.timings_ms.get("total", 0.0), 2),
                        "timings_ms": {
                            k: round(v, 2) for k, v in _stage_times(res, tokenize_ms).items()
                        },
                        "tokens_in": res.prompt_tokens,
                        "tokens_out": res.generated_tokens,
                        "crossfile": list(res.crossfile),
                        "shared_prompt_pass": len(results) > 1,
                        "cold": cold and i == 0,
                    }
                    pending.add(pool.submit(execute, record, task))
                    produced += 1
                cold = False
                while len(pending) > 2 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        f.result()  # a harness error stops the run
            for f in pending:
                f.result()
    wall = time.monotonic() - started
    _append_session(out, session, wall, load)
    summary = summarize(settings, read_samples(out), out)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from eval.report import write_report

    write_report(out, summary, read_samples(out))
    return summary


def _append_session(out: Path, session: str, wall: float, load: dict[str, float]) -> None:
    path = out / "sessions.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"session": session, "wall_s": round(wall, 2), **load}) + "\n")


def _sessions(out: Path) -> list[dict[str, Any]]:
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


def summarize(settings: RunSettings, records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """summary.json: pass@k, result counts, latency percentiles per stage, cold request."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    kinds: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by_task[r["task_id"]].append(bool(r["passed"]))
        kinds[r.get("kind", "")].append(bool(r["passed"]))
    counts = [(len(v), sum(v)) for v in by_task.values()]
    n = settings.samples
    pass_k = {f"pass@{k}": metrics.mean_pass_at_k(counts, k) for k in range(1, n + 1)}
    warm = [r for r in records if not r.get("cold")]
    cold = [r for r in records if r.get("cold")]

    def stage(rs: list[dict[str, Any]], name: str) -> list[float]:
        return [float(r["timings_ms"][name]) for r in rs if name in r.get("timings_ms", {})]

    sessions = _sessions(out)
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
        "wall_s": round(sum(s.get("wall_s", 0.0) for s in sessions), 1),
        "sessions": sessions,
    }
    return summary


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
