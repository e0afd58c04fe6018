"""`offpilot eval run --ray` on a real local Ray cluster with the tiny model: same decisions
as a local run, and no sample lost or written twice when a worker or the driver is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from completion.engines.ct2 import EngineOptions, load_engine
from eval import data
from eval.ray_run import RayOptions, RayRunError, RayUnavailableError, model_factory, run_on_ray
from eval.records import RunSettings, model_sha256, read_samples, sessions
from eval.run import run

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]

# Each test sleeps, so a run lasts long enough to be killed in the middle.
SLOW = [
    {
        "task_id": f"slow/{i}",
        "prompt": f"def f{i}(a):\n    b = a\n",
        "suffix": "\n    return b\n",
        "canonical_solution": "    b = a + 1\n",
        "test": "import time\n\n\ndef check(c):\n    time.sleep(0.4)\n",
        "entry_point": f"f{i}",
    }
    for i in range(10)
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray cluster for the module; its address, for a driver in a subprocess."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def keys(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["task_id"], r["sample"]) for r in records]


def decisions(out: Path) -> dict[tuple[str, int], tuple[str, bool, str]]:
    return {
        (r["task_id"], r["sample"]): (r["completion"], r["passed"], r["result"])
        for r in read_samples(out)
    }


def actor_pids() -> list[int]:
    """The EvalWorker processes of this test process's cluster (its descendants)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::EvalWorker"):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != me:
                stat = Path(f"/proc/{pid}/stat").read_text()
                pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if pid == me:
            found.append(int(entry.name))
    return found


def wait_for_lines(path: Path, n: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines")


def test_ray_and_local_make_the_same_decisions(tmp_path: Path, cluster: str, tiny_model) -> None:  # type: ignore[no-untyped-def]
    settings = RunSettings(suite="humaneval-single-line", limit=6, seed=1, timeout_s=5.0)
    engine = load_engine(tiny_model, EngineOptions(threads=1))
    local = run(settings, tmp_path / "local", lambda: engine, workers=2)
    factory = model_factory(str(tiny_model.path), None)
    remote = run_on_ray(settings, tmp_path / "ray", factory, RayOptions(workers=2))
    assert len(decisions(tmp_path / "ray")) == 6
    assert decisions(tmp_path / "ray") == decisions(tmp_path / "local")
    # the summary is the local code over the same records
    assert remote["pass@1"] == local["pass@1"]
    assert remote["results"] == local["results"]
    assert remote["tasks"] == 6
    assert remote["sessions"][0]["ray_workers"] == 2
    assert remote["sessions"][0]["threads_per_worker"] == 1  # 2 CPUs over 2 actors
    assert "## Latency" in (tmp_path / "ray" / "report.md").read_text()


def test_ray_workers_generate_through_a_backend(tmp_path: Path, cluster: str, tiny_model) -> None:  # type: ignore[no-untyped-def]
    """`--ray` with `--backend URL`: each actor sends its prompts to the server."""
    from scripted_backend import ScriptedBackend

    backend = ScriptedBackend(pieces=("b = a + 1",))
    try:
        settings = RunSettings(suite="humaneval-single-line", limit=3, seed=1, timeout_s=5.0)
        factory = model_factory(str(tiny_model.path), None, backend.url)
        run_on_ray(settings, tmp_path / "ray", factory, RayOptions(workers=1))
    finally:
        backend.close()
    records = read_samples(tmp_path / "ray")
    assert len(records) == 3
    assert len(backend.requests) >= 3  # the actor generated through the server, not locally
    assert all(r["stop_reason"] != "backend_error" for r in records)
    assert any(r["raw"].startswith("b = a + 1") for r in records)


def test_a_killed_worker_loses_no_sample(tmp_path: Path, cluster: str, tiny_model) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "slow.jsonl"
    data.write_jsonl(suite, SLOW)
    out = tmp_path / "run"
    settings = RunSettings(suite=str(suite), timeout_s=5.0)
    factory = model_factory(str(tiny_model.path), None)
    result: dict[str, Any] = {}

    def drive() -> None:
        try:
            result["summary"] = run_on_ray(settings, out, factory, RayOptions(workers=2))
        except BaseException as exc:  # re-raised in the test thread
            result["error"] = exc

    # the actors of an earlier test are killed asynchronously (`ray.kill`): let them go first
    deadline = time.monotonic() + 60
    while actor_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    before = set(actor_pids())
    driver = threading.Thread(target=drive)
    driver.start()
    wait_for_lines(out / "samples.jsonl", 2)
    pids = [p for p in actor_pids() if p not in before]
    settle = time.monotonic() + 15  # an earlier test's actor, killed asynchronously, may
    while len(pids) > 2 and time.monotonic() < settle:  # show up late and then go
        time.sleep(0.2)
        pids = [p for p in actor_pids() if p not in before]
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    driver.join(timeout=180)
    assert not driver.is_alive()
    if "error" in result:
        raise result["error"]
    records = read_samples(out)
    assert sorted(keys(records)) == sorted((t["task_id"], 0) for t in SLOW)
    assert len(set(keys(records))) == len(records) == len(SLOW)
    assert result["summary"]["samples"] == len(SLOW)
    assert sessions(out)[-1]["lost_tasks"] >= 1  # the kill hit a task in flight: it was redone


def test_a_killed_driver_leaves_its_samples_and_a_rerun_completes(
    tmp_path: Path,
    cluster: str,
    tiny_model,  # type: ignore[no-untyped-def]
) -> None:
    suite = tmp_path / "slow.jsonl"
    data.write_jsonl(suite, SLOW)
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "offpilot.cli", "eval", "run", "--suite", str(suite),
           "--model", str(tiny_model.path), "--timeout", "5", "--out", str(out),
           "--ray", cluster, "--ray-workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cli, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_lines(out / "samples.jsonl", 2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = (out / "samples.jsonl").read_text().splitlines()
    before = [json.loads(x) for x in lines]  # every line written so far is whole
    assert 2 <= len(before) < len(SLOW)
    pin = model_sha256(tiny_model.manifest)  # the CLI pinned the model it found
    # and the engine it resolved (the tiny model has no GGUF: CTranslate2)
    settings = RunSettings(
        suite=str(suite), timeout_s=5.0, model="tiny", model_sha256=pin, engine="ctranslate2"
    )
    factory = model_factory(str(tiny_model.path), None)
    summary = run_on_ray(settings, out, factory, RayOptions(workers=2))
    records = read_samples(out)
    assert records[: len(before)] == before  # the first session's samples are untouched
    assert len(set(keys(records))) == len(records) == len(SLOW)
    assert summary["samples"] == len(SLOW)
    assert len(sessions(out)) == 1  # the killed one: none
    assert len({r["session"] for r in records}) == 2


def test_a_ray_resume_fills_the_missing_sample_numbers(
    tmp_path: Path,
    cluster: str,
    tiny_model,  # type: ignore[no-untyped-def]
) -> None:
    """Samples 0 and 2 of a task on disk: the Ray driver dispatches sample 1 (#24, 5)."""
    settings = RunSettings(suite="humaneval-single-line", limit=2, samples=3, temperature=0.8)
    out = tmp_path / "run"
    engine = load_engine(tiny_model, EngineOptions(threads=1))
    run(settings, out, lambda: engine, workers=2)
    gone = (read_samples(out)[0]["task_id"], 1)
    kept = [r for r in read_samples(out) if (r["task_id"], r["sample"]) != gone]
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    summary = run_on_ray(settings, out, model_factory(str(tiny_model.path), None))
    records = read_samples(out)
    assert gone in keys(records)
    assert len(set(keys(records))) == len(records) == 6
    assert summary["samples"] == 6
    assert summary["tasks"] == 2


def test_a_worker_with_another_model_refuses_to_start(
    tmp_path: Path,
    cluster: str,
    tiny_model,  # type: ignore[no-untyped-def]
) -> None:
    """The run pins the model's files: a node whose model differs does not generate."""
    pin = "0" * 64
    settings = RunSettings(suite="humaneval-single-line", limit=1, model_sha256=pin)
    factory = model_factory(str(tiny_model.path), None)
    with pytest.raises(RayRunError, match=f"could not start: .*the run pins {pin}"):
        run_on_ray(settings, tmp_path / "run", factory, RayOptions(workers=1))
    assert read_samples(tmp_path / "run") == []
    right = replace(settings, model_sha256=model_sha256(tiny_model.manifest))
    summary = run_on_ray(right, tmp_path / "right", factory, RayOptions(workers=1))
    assert summary["samples"] == 1


def test_missing_ray_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    settings = RunSettings(suite="humaneval-single-line", limit=1)
    with pytest.raises(RayUnavailableError, match=r"offpilot\[scale\]"):
        run_on_ray(settings, tmp_path / "run", model_factory(str(tiny_model.path), None))
    assert not (tmp_path / "run").exists()


def test_a_worker_without_the_model_is_a_clear_error(tmp_path: Path, cluster: str) -> None:
    settings = RunSettings(suite="humaneval-single-line", limit=2)
    factory = model_factory(str(tmp_path / "no-such-model"), None)
    started = time.monotonic()
    with pytest.raises(RayRunError, match=r"could not start: .*ModelMissingError.*no-such-model"):
        run_on_ray(settings, tmp_path / "run", factory, RayOptions(workers=1))
    assert time.monotonic() - started < 60  # an error, not a restart loop
    assert read_samples(tmp_path / "run") == []


def test_an_address_nobody_answers_is_a_clear_error(tmp_path: Path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    """Ray alone retries a dead address for minutes; the CLI says so at once."""
    cli = [sys.executable, "-m", "offpilot.cli", "eval", "run", "--suite",
           "humaneval-single-line", "--limit", "1", "--model", str(tiny_model.path),
           "--out", str(tmp_path / "run"), "--ray", "127.0.0.1:1"]  # fmt: skip
    proc = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no Ray cluster answers at 127.0.0.1:1" in proc.stderr
