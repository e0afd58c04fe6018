"""`offpilot eval run --ray`: the same benchmark, its tasks spread over the actors of a Ray cluster.

Each actor (`EvalWorker`) loads the model once and, per task, generates and judges through
the same functions as a local run (`eval.run.sample_records`, `eval.run.judged`), so both
make the same decisions and records. The driver hands out tasks, takes results as each
finishes (`ray.wait`) and appends them to its `samples.jsonl` through the same deduping
sink, so a run stays resumable: a killed actor's task is handed to the restarted actor or
another one, a killed driver leaves every finished sample on disk, and the summary is the
local one. The driver writes only the records it asked for (that task, those sample
numbers), and with `RunSettings.model_sha256` set every actor refuses to start on any other
model. Ray itself is the optional extra `offpilot[scale]`, imported only here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from completion.engines.interface import Engine
from eval import data
from eval.progress import Progress
from eval.records import RunSettings, SampleRecord
from eval.run import SampleSink, finish, judged, plan, sample_records
from eval.sandbox import execution

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'offpilot[scale]'"


class RayUnavailableError(Exception):
    """Ray is not installed, or the cluster cannot be reached."""


class RayRunError(Exception):
    """The run cannot go on: a worker cannot start, or a task kept failing on its workers."""


class ModelMismatchError(Exception):
    """A worker found another model than the one the run's settings pin."""


@dataclass(frozen=True)
class RayOptions:
    """How the run uses the cluster."""

    address: str | None = None  # None or "": start a local cluster; else join this one
    workers: int | None = None  # actors; None: the cluster's CPUs / 2, at least 1
    in_flight: int = 2  # tasks queued per actor: one generates while another is judged
    max_attempts: int = 3  # tries of a task whose actor died, before the run gives up
    restart_timeout_s: float = 300.0  # how long a dead actor may take to come back


def import_ray() -> Any:
    """The `ray` module, or an error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"`offpilot eval run --ray` needs Ray, which is not installed: {INSTALL_HINT}"
        ) from exc
    return ray


def model_engine(
    model: str | None,
    cache_dir: str | None,
    backend: str | None,
    threads: int,
    sha256: str,
    engine: str = "auto",
) -> Engine:
    """Load the run's model on a worker from that node's own cache, with `threads` threads.

    The model is located on the worker, not the driver: on a cluster each node has its own
    cache (`offpilot model install` per node) or a shared one (`--cache-dir`), so a node may
    hold another model under the same name. `sha256` (the run's `model_sha256`, "" for
    none) must then match the files found, or the worker refuses to start. With a
    `backend`, the workers send their prompts to that server (`completion.engines.choose`).
    """
    from completion.engines.choose import open_engine
    from completion.models.store import locate
    from eval.records import model_sha256

    installed = locate(model, cache_dir)
    found = model_sha256(installed.manifest)
    if sha256 and found != sha256:
        raise ModelMismatchError(
            f"{socket.gethostname()}: model {installed.path} has model_sha256 {found}, "
            f"the run pins {sha256}: install the same model on every node"
        )
    return open_engine(installed, engine=engine, backend=backend, threads=threads)


def model_factory(
    model: str | None, cache_dir: str | None, backend: str | None = None, engine: str = "auto"
) -> Callable[[int, str], Engine]:
    """An engine factory for `run_on_ray` that loads the named model on each worker.

    It is called with the threads and the run's pinned `model_sha256` (see `model_engine`).
    """
    return partial(model_engine, model, cache_dir, backend, engine=engine)


class EvalWorker:
    """One Ray actor: the model loaded once, then generate and judge task after task.

    Generation holds a lock (one engine); judging does not, so with two tasks queued the
    next task generates while the last one's test runs in the sandbox.
    """

    def __init__(
        self, engine_factory: Callable[[int, str], Engine], threads: int, settings: RunSettings
    ) -> None:
        execution.sandbox()  # probe first: this node cannot judge without a sandbox
        t0 = time.monotonic()
        self._engine = engine_factory(threads, settings.model_sha256)
        self._load = {
            "load_s": float(getattr(self._engine, "load_seconds", time.monotonic() - t0)),
            "warmup_s": float(getattr(self._engine, "warmup_seconds", 0.0)),
        }
        self._options = settings.options()
        self._timeout_s = settings.timeout_s
        self._lock = threading.Lock()
        self._cold = True

    def info(self) -> dict[str, Any]:
        """The process id and model load times of this actor."""
        return {"pid": os.getpid(), **self._load}

    def run_task(self, task: data.Task, samples: tuple[int, ...]) -> list[SampleRecord]:
        """The judged records of the samples of `task` numbered `samples`."""
        with self._lock:
            cold, self._cold = self._cold, False
            records = sample_records(self._engine, task, samples, self._options, cold)
        return [judged(r, task, self._timeout_s) for r in records]


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at `address`, or start a local one; True if this call started Ray.

    Workers' stdout is not forwarded: the driver's stdout carries the run's JSON line.
    """
    if ray.is_initialized():
        return False
    if address:
        _reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise RayUnavailableError(f"cannot start or join {where}: {exc}") from exc
    return True


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a `HOST:PORT` that nothing listens on: Ray itself retries it for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # `auto` and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailableError(f"no Ray cluster answers at {address}: {exc}") from exc


def run_on_ray(
    settings: RunSettings,
    out: Path,
    engine_factory: Callable[[int, str], Engine],
    options: RayOptions | None = None,
    progress_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run (or resume) a benchmark into `out` on Ray actors; returns the summary."""
    options = options or RayOptions()
    ray = import_ray()
    left = plan(settings, out)
    progress = Progress(left.total, len(left.done), progress_stream)
    sink = SampleSink(out, left.done, progress)
    load: dict[str, float] = {}
    started_ray = False
    try:
        if left.todo:
            started_ray = connect(ray, options.address)
            load = _drive(ray, settings, engine_factory, options, left.todo, sink)
    finally:
        if started_ray:
            ray.shutdown()
    return finish(settings, out, sink.session, time.monotonic() - sink.started, load)


def _drive(
    ray: Any,
    settings: RunSettings,
    engine_factory: Callable[[int, str], Engine],
    options: RayOptions,
    todo: list[tuple[data.Task, tuple[int, ...]]],
    sink: SampleSink,
) -> dict[str, float]:
    """Start the actors, keep each fed, write results as they come; the session's load times."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    count = options.workers or max(1, int(cpus // 2))
    threads = max(1, int(cpus // count))
    actor_class = ray.remote(EvalWorker).options(
        num_cpus=cpus / count,
        max_restarts=-1,  # a dead actor comes back (a fresh model load), on any node
        max_task_retries=0,  # the driver retries, so it knows which tasks are outstanding
        max_concurrency=2,
    )
    actors = [actor_class.remote(engine_factory, threads, settings) for _ in range(count)]
    try:
        infos = ray.get([a.info.remote() for a in actors])
    except ray.exceptions.RayActorError as exc:
        for a in actors:
            ray.kill(a)
        raise RayRunError(f"a Ray worker could not start: {_last_line(exc)}") from exc
    log.info("%d Ray workers, %d threads each, pids %s", count, threads, [i["pid"] for i in infos])
    queue = deque(todo)
    attempts: Counter[str] = Counter()
    in_flight: dict[Any, tuple[int, tuple[data.Task, tuple[int, ...]]]] = {}
    # An actor that lost a task gets no more until an `info` call on it (its restart) returns,
    # so the lost tasks go to the others meanwhile; it is given up `restart_timeout_s` later.
    usable = [True] * count
    probes: dict[Any, int] = {}
    reprobe_at: dict[int, float] = {}
    lost_at: dict[int, float] = {}
    lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)

    def again(item: tuple[data.Task, tuple[int, ...]], failure: str) -> None:
        """Send a task out again at the front of the queue, or stop after too many tries."""
        task_id = item[0].task_id
        attempts[task_id] += 1
        if attempts[task_id] >= options.max_attempts:
            raise RayRunError(f"task {task_id}: {attempts[task_id]} tries, the last {failure}")
        queue.appendleft(item)  # to another actor, or the same one once it answers

    try:
        while queue or in_flight:
            now = time.monotonic()
            for i in [i for i, t in reprobe_at.items() if t <= now]:
                del reprobe_at[i]
                probes[actors[i].info.remote()] = i
            for i, actor in enumerate(actors):
                while usable[i] and queue and _load_of(in_flight, i) < options.in_flight:
                    item = queue.popleft()
                    in_flight[actor.run_task.remote(*item)] = (i, item)
            waiting = [*in_flight, *probes]
            if not waiting and not reprobe_at:
                raise RayRunError(f"every Ray worker is gone, {len(queue)} tasks left: rerun")
            timeout = 0.5 if reprobe_at else None
            ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
            for ref in ready:
                if ref in probes:
                    i = probes.pop(ref)
                    try:
                        ray.get(ref)
                        usable[i] = True
                    except lost as exc:
                        if time.monotonic() - lost_at[i] < options.restart_timeout_s:
                            reprobe_at[i] = time.monotonic() + 0.5
                        else:
                            log.warning("Ray worker %d did not come back, given up: %s", i, exc)
                    continue
                i, item = in_flight.pop(ref)
                try:
                    records = ray.get(ref)
                except lost as exc:
                    log.warning("Ray worker %d died during %s: %s", i, item[0].task_id, exc)
                    again(item, "lost with its worker")
                    if usable[i]:
                        usable[i] = False
                        lost_at[i] = time.monotonic()
                        probes[actors[i].info.remote()] = i
                    continue
                wrong = unexpected(records, *item)
                if wrong:
                    task_id = item[0].task_id
                    log.warning("Ray worker %d answered %s wrongly, refused: %s", i, task_id, wrong)
                    again(item, f"answer refused: {wrong}")
                    continue
                for record in records:
                    sink.write(record)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return {
        "load_s": max(i["load_s"] for i in infos),
        "warmup_s": max(i["warmup_s"] for i in infos),
        "ray_workers": count,
        "threads_per_worker": threads,
        "lost_tasks": sum(attempts.values()),
    }


def unexpected(records: Any, task: data.Task, samples: tuple[int, ...]) -> str:
    """Why a worker's answer is not the records of `samples` of `task` ("" if it is).

    A worker's answer is data from another process (another node): written unchecked, a
    record of another task or sample number would take the place of one never made, and
    the sink would then drop the real one as a duplicate.
    """
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return f"not a list of records but {type(records).__name__}"
    got = [(r.get("task_id"), r.get("sample")) for r in records]
    wanted = [(task.task_id, n) for n in samples]
    if sorted(got, key=repr) != sorted(wanted, key=repr):
        return f"records {got}, dispatched {wanted}"
    if not all(isinstance(r.get("passed"), bool) for r in records):
        return "a record without a `passed` outcome"
    return ""


def _load_of(in_flight: dict[Any, tuple[int, Any]], actor: int) -> int:
    return sum(1 for i, _ in in_flight.values() if i == actor)


def _last_line(exc: BaseException) -> str:
    """The cause of a Ray error, whose text ends with the remote traceback's last line."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[-1] if lines else type(exc).__name__
