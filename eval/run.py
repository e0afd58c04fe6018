"""The benchmark loop: generate through the editor's pipeline, execute, score, report.

Generation runs in this process, one request at a time, through `completion.pipeline`
(`complete` for one greedy sample, `complete_samples` for n samples sharing one prompt pass).
Execution runs in parallel sandboxes (`eval.sandbox.execution`). Every finished sample is appended
to `DIR/samples.jsonl` at once, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from completion import crossfile, gate
from completion.cpu_load import usable_cores
from completion.document import Document
from completion.engines.interface import Engine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, CompletionResult, complete, complete_samples
from eval import data, toolchains
from eval.progress import Progress
from eval.records import (
    SAMPLES,
    SUMMARY,
    Judgement,
    RunSettings,
    SampleRecord,
    append_session,
    check_settings,
    read_samples,
    summarize,
    with_judgement,
)
from eval.sandbox import execution
from eval.suites import tracing


def request_for(task: data.Task) -> CompletionRequest:
    """The editor request for a task: the whole file, cursor at the hole (`data.document`).

    A project task is a file of a workspace: its absolute path, the project as the workspace
    root and the project's other modules as the editor's other open documents
    (`project_documents`). A HumanEval task is a lone file named after its function; a task
    of another language (HumanEval-X) is that language's usual main file (`main.go`, ...).
    """
    text, offset = data.document(task)
    language = data.language(task)
    if language != "python":
        tc = toolchains.TOOLCHAINS.get(language)
        name = tc.document if tc else task.task_id.replace("/", "_")
        return CompletionRequest(text, offset, language, name)
    if task.project and task.path:
        path = str(Path(task.project, task.path).resolve())
        tests = [str(t) for t in task.extra.get("tests", ())]
        documents = project_documents(Path(task.project), path, text, tests)
        return CompletionRequest(text, offset, "python", path, documents, task.project)
    name = f"{task.entry_point}.py" if task.entry_point else task.task_id.replace("/", "_")
    return CompletionRequest(text, offset, "python", name)


def project_documents(
    project: Path, current: str, text: str, tests: list[str] | None = None
) -> tuple[Document, ...]:
    """What an editor working on `current` plausibly has open, at most `MAX_DOCUMENTS`.

    First the test file of the function's first test (`tests`, pytest node ids: a user
    writing code keeps its test open beside it), then the project's source modules that
    `current` imports, then the others of its directory, then the rest, nearest first; no
    other test files.
    """
    test_docs: list[Document] = []
    for rel in [t.split("::")[0] for t in (tests or [])[:1]]:
        try:
            test = data.project_file(project, rel)
            test_docs.append(Document(str(test), test.read_text(encoding="utf-8"), "python"))
        except (OSError, UnicodeDecodeError, data.TaskPathError):
            continue
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
        p.resolve() for p in tracing.source_files(project) if p.resolve() != here.resolve()
    ]

    def rank(p: Path) -> tuple[int, int, str]:
        same_dir = p.parent == here.parent
        depth = len(p.relative_to(project.resolve()).parts)
        return (0 if p in imported else 1 if same_dir else 2, depth, str(p))

    docs = test_docs
    for p in sorted(candidates, key=rank)[: crossfile.MAX_DOCUMENTS - len(docs)]:
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


def judge(task: data.Task, completion: str, timeout_s: float) -> Judgement:
    """Run the task's test on the filled-in program: the outcome fields of a sample record.

    A project task whose `path` would leave the sandbox is an error record, not a crash. A
    task of another language is compiled and run by its toolchain, `timeout_s` bounding the
    test run (the compile has the toolchain's own limit).
    """
    language = data.language(task)
    if language != "python":
        if language not in toolchains.TOOLCHAINS:
            reason = f"{toolchains.MISSING}no toolchain for {language!r}"
            return {"passed": False, "result": execution.ERROR, "reason": reason, "exec_ms": 0.0}
        outcome = toolchains.run_task(task, completion, run_s=timeout_s)
        return {
            "passed": outcome.result == execution.PASSED,
            "result": outcome.result,
            "reason": outcome.reason,
            "exec_ms": round(outcome.ms, 1),
        }
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


@dataclass(frozen=True)
class Plan:
    """What is left of a run: the tasks, the samples each still needs, what is done."""

    tasks: list[data.Task]
    todo: list[tuple[data.Task, tuple[int, ...]]]  # (task, the sample numbers it lacks)
    done: frozenset[tuple[str, int]]  # (task_id, sample) already in samples.jsonl
    total: int  # samples of the whole run


def plan(settings: RunSettings, out: Path) -> Plan:
    """Pin the settings to `out` and work out the samples still missing (a resumed run).

    By number, not by count: samples are judged in parallel and written as they finish, so
    a kill may leave 0 and 2 of a task; the resume must make 1 (2 again would be dropped as
    a duplicate and the task would be left out of pass@k).
    """
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings)
    tasks = data.load_suite(settings.suite, settings.projects or None)
    tasks = data.select(tasks, settings.limit, settings.seed)
    done = frozenset((str(r["task_id"]), int(r["sample"])) for r in read_samples(out))
    todo = [
        (t, missing)
        for t in tasks
        if (missing := tuple(i for i in range(settings.samples) if (t.task_id, i) not in done))
    ]
    return Plan(tasks, todo, done, len(tasks) * settings.samples)


def sample_records(
    engine: Engine,
    task: data.Task,
    samples: Sequence[int],
    options: CompletionOptions,
    cold: bool,
) -> list[SampleRecord]:
    """Generate the samples of a task numbered `samples`: their records before judging.

    The one home of what a sample record holds; the local loop and the Ray workers
    (eval/ray_run.py) both build records here and add the outcome with `judged`.
    """
    results = generate_for(engine, task, len(samples), options)
    t_tok = time.monotonic()
    engine.encode(task.prompt[-4000:] + task.suffix[:2000])
    tokenize_ms = (time.monotonic() - t_tok) * 1000
    return [
        {
            "task_id": task.task_id,
            "sample": number,
            "kind": task.kind,
            "language": data.language(task),
            "completion": res.answer,
            "raw": res.raw,
            "shown": res.text,
            "gate_score": score_of(res.verdict),
            "line": res.first_line,
            "line_gate_score": score_of(res.line_verdict),
            "features": features_of(res.verdict),
            "line_features": features_of(res.line_verdict),
            "log_probs": [round(p, 4) for p in res.log_probs],
            "mode": res.mode,
            "stop_reason": res.stop_reason,
            "latency_ms": round(res.timings_ms.get("total", 0.0), 2),
            "timings_ms": {k: round(v, 2) for k, v in _stage_times(res, tokenize_ms).items()},
            "tokens_in": res.prompt_tokens,
            "tokens_out": res.generated_tokens,
            "crossfile": list(res.crossfile),
            "shared_prompt_pass": len(results) > 1,
            "cold": cold and i == 0,
        }
        for i, (number, res) in enumerate(zip(samples, results, strict=True))
    ]


def score_of(verdict: gate.Verdict | None) -> float | None:
    """A verdict's score as a sample record keeps it (None: no answer, or unscored)."""
    return None if verdict is None or verdict.score is None else round(verdict.score, 4)


def features_of(verdict: gate.Verdict | None) -> dict[str, float] | None:
    """The features a verdict read, as a sample record keeps them."""
    if verdict is None or verdict.features is None:
        return None
    return {k: round(v, 4) for k, v in verdict.features.items()}


def judged(record: SampleRecord, task: data.Task, timeout_s: float) -> SampleRecord:
    """The record with its test outcome (`judge` on its completion).

    A block's first line alone (`line`, what the gate may show instead of the block) is
    judged too when it differs from the completion, and so is what was shown when it is
    neither: the precision of what is shown, and of the block-or-line choice, is measured.
    """
    done = with_judgement(record, judge(task, record["completion"], timeout_s))
    verdicts = {record["completion"]: done["passed"], "": False}
    for key in ("line", "shown"):
        text = str(record.get(key, ""))
        if text.strip() and text not in verdicts:
            verdicts[text] = judge(task, text, timeout_s)["passed"]
    if record.get("line"):
        done["line_passed"] = verdicts[record.get("line", "")]
    done["shown_passed"] = verdicts.get(record.get("shown", record["completion"]), False)
    return done


class SampleSink:
    """DIR/samples.jsonl, appended to: one line per finished sample, once.

    The file is opened and closed for each line, so each is flushed. A sample already
    written (by an earlier session, or by a retried task that did finish) is dropped, so
    the file never holds a (task_id, sample) twice.
    """

    def __init__(self, out: Path, done: frozenset[tuple[str, int]], progress: Progress) -> None:
        self.session = uuid.uuid4().hex[:8]
        self.started = time.monotonic()
        self.written = 0
        self._done = set(done)
        self._progress = progress
        self._lock = threading.Lock()
        self._path = out / SAMPLES
        # created at the first sample: a run refused before any (no sandbox, no model, no Ray)
        # leaves no samples.jsonl behind

    def write(self, record: SampleRecord) -> bool:
        """Append one judged record, stamped with the session; False if it was a duplicate."""
        key = (str(record["task_id"]), int(record["sample"]))
        with self._lock:
            if key in self._done:
                return False
            self._done.add(key)
            stamped = record.copy()
            stamped["session"] = self.session
            stamped["elapsed_s"] = round(time.monotonic() - self.started, 3)
            with open(self._path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(stamped) + "\n")
            self.written += 1
            self._progress.update(bool(record["passed"]))
            return True


def finish(
    settings: RunSettings, out: Path, session: str, wall: float, load: dict[str, float]
) -> dict[str, Any]:
    """Record the session, then write summary.json and the report from all samples."""
    append_session(out, session, wall, load)
    summary = summarize(settings, read_samples(out), out)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from eval.report import write_report

    write_report(out, summary, read_samples(out))
    return summary


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
    left = plan(settings, out)
    progress = Progress(left.total, len(left.done), progress_stream)
    sink = SampleSink(out, left.done, progress)
    produced = 0
    load = {}
    if left.todo:
        execution.sandbox()  # probe first: stop before loading a model if nothing can run
        t0 = time.monotonic()
        engine = engine_factory()
        load = {
            "load_s": getattr(engine, "load_seconds", time.monotonic() - t0),
            "warmup_s": getattr(engine, "warmup_seconds", 0.0),
        }
        options = settings.options()
        workers = workers or usable_cores()

        def execute(record: SampleRecord, task: data.Task) -> bool:
            return sink.write(judged(record, task, settings.timeout_s))

        with ThreadPoolExecutor(workers, thread_name_prefix="eval-exec") as pool:
            pending: set[Future[bool]] = set()
            cold = True
            for task, samples in left.todo:
                if stop_after is not None and produced >= stop_after:
                    break
                if stop_after is not None:
                    samples = samples[: stop_after - produced]
                for record in sample_records(engine, task, samples, options, cold):
                    pending.add(pool.submit(execute, record, task))
                    produced += 1
                cold = False
                while len(pending) > 2 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        f.result()  # a harness error stops the run
            for f in pending:
                f.result()
    return finish(settings, out, sink.session, time.monotonic() - sink.started, load)
