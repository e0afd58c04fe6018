"""`threads: 0` (auto): the server reloads with the threads the machine's load leaves free.

The load itself is faked (what `auto_threads` reports); the server, its model loader and the
tiny CTranslate2 model are real.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from completion.cpu_load import ThreadTuner
from completion.engines.interface import GenerationParams
from completion.models.store import InstalledModel
from lsp_server import model_loader, server
from lsp_server.config import ServerConfig
from lsp_server.server import ServerSettings, create_server


def test_the_tuner_acts_on_two_agreeing_checks_only() -> None:
    tuner = ThreadTuner()
    assert not tuner.observe(running=2, best=1)  # one check: perhaps a build's last second
    assert not tuner.observe(running=2, best=2)  # the load went away: start over
    assert not tuner.observe(running=2, best=1)
    assert tuner.observe(running=2, best=1)  # it stayed
    assert not tuner.observe(running=1, best=1)


@pytest.fixture
def free_cores(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """What `auto_threads` reports, for the model loads and the idle-time checks alike."""
    state = {"free": 2}
    monkeypatch.setattr(model_loader, "auto_threads", lambda: state["free"])
    monkeypatch.setattr(server, "auto_threads", lambda: state["free"])
    monkeypatch.setattr(server, "IDLE_S", 0.0)
    return state


def _server(tiny_model: InstalledModel, tiny_cache: Path, threads: int = 0) -> Any:
    settings = ServerSettings(
        model=tiny_model.manifest.name,
        cache_dir=str(tiny_cache),
        config=ServerConfig(threads=threads),
    )
    ls = create_server(settings)
    statuses: list[str] = []
    ls.send_status = lambda state, message="": statuses.append(state)  # no client here
    ls.statuses = statuses
    return ls


async def _follow(ls: Any, seconds: float) -> None:
    task = asyncio.ensure_future(ls.follow_load(every_s=0.02))
    await asyncio.sleep(seconds)
    task.cancel()


def test_a_lasting_load_reloads_with_fewer_threads_and_frees_the_old_engine(
    tiny_model: InstalledModel, tiny_cache: Path, free_cores: dict[str, int]
) -> None:
    ls = _server(tiny_model, tiny_cache)
    ls.start_loading()
    first = ls.engine_future.result(timeout=60)
    assert first.threads == 2

    free_cores["free"] = 1  # another process now keeps one core busy
    asyncio.run(_follow(ls, 0.5))
    second = ls.engine_future.result(timeout=60)
    assert second is not first
    assert second.threads == 1
    assert first._generator is None  # freed before the new one loaded: never two models
    assert ls.statuses.count("loading") == 2
    assert ls.statuses[-1] == "ready"

    stream = second.stream(second.encode("def add(a, b):\n    return"), GenerationParams(4))
    assert list(stream)  # the new engine answers


def test_no_reload_with_a_thread_setting_or_while_generating(
    tiny_model: InstalledModel, tiny_cache: Path, free_cores: dict[str, int]
) -> None:
    fixed = _server(tiny_model, tiny_cache, threads=2)
    fixed.start_loading()
    engine = fixed.engine_future.result(timeout=60)
    free_cores["free"] = 1
    asyncio.run(_follow(fixed, 0.3))
    assert fixed.engine_future.result() is engine  # the user's setting stands

    free_cores["free"] = 2
    busy = _server(tiny_model, tiny_cache)
    busy.start_loading()
    engine = busy.engine_future.result(timeout=60)
    free_cores["free"] = 1
    busy._on_busy(True)  # a generation runs the whole time
    asyncio.run(_follow(busy, 0.3))
    assert busy.engine_future.result() is engine


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity mask here")
def test_an_engine_with_no_thread_setting_runs_on_the_cores_it_may_use(
    tiny_model: InstalledModel,
) -> None:
    """A process limited to one core (taskset, a container's cpuset) runs one thread.

    os.cpu_count() counts every core of the host: two threads there would share one core.
    """
    program = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from completion.cpu_load import usable_cores\n"
        "from completion.engines.ct2 import CT2Engine\n"
        "from completion.models.store import verify\n"
        "engine = CT2Engine(verify(Path(sys.argv[1])))\n"
        "print(usable_cores(), engine.threads)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", program, str(tiny_model.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).parents[4],
    )
    assert run.stdout.split() == ["1", "1"]
