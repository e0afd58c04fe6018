"""The server's engine, loaded in a background thread: one load at a time, the newest wins.

A model is about 700 MB and takes seconds to load; a remote backend (completion/engines/choose.py)
is chosen by the same settings, so a change of backend reloads like a change of model. A
settings change while a load runs starts no second load: the running load's thread loads
the newest setting next, skipping those in between, and frees an engine loaded for a setting
since changed. Any failure of a load (a missing or corrupt model, a malformed manifest, a
failed warm-up) ends in a `ModelError`: the server shows it and answers requests empty at
once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from completion.cpu_load import auto_threads
from completion.engines.choose import DEFAULT_ENGINE, open_engine
from completion.engines.interface import Engine
from completion.models.store import ModelError

log = logging.getLogger("offpilot.server")


@dataclass(frozen=True)
class Wanted:
    """The settings an engine is loaded for: a change of any of them loads anew."""

    model: str | None = None  # a model name or directory
    threads: int = 0  # 0: auto
    backend: str | None = None  # an OpenAI-compatible server's URL: it generates
    api_key_env: str | None = None  # the environment variable with the backend's API key
    backend_model: str | None = None  # the `model` field sent to the backend
    engine: str = DEFAULT_ENGINE  # what runs a local model (completion/engines/choose.py)

    def __str__(self) -> str:
        where = (
            f"backend={self.backend}" if self.backend else f"{self.engine}, threads={self.threads}"
        )
        return f"{self.model or 'default model'} ({where})"


def load_wanted(wanted: Wanted, cache_dir: str | None) -> Engine:
    """The engine of a model setting, its model found in `cache_dir` (or raises)."""
    started = time.monotonic()
    # 0: the cores other processes leave free (a backend's threads are the server's business)
    threads = 0 if wanted.backend else wanted.threads or auto_threads()
    engine = open_engine(
        wanted.model,
        cache_dir=cache_dir,
        engine=wanted.engine,
        backend=wanted.backend,
        threads=threads,
        api_key_env=wanted.api_key_env,
        backend_model=wanted.backend_model,
    )
    if wanted.backend:
        log.info("model %s via %s ready", engine.name, wanted.backend)
        return engine
    log.info(
        "model %s (%s, threads=%d%s) ready in %.2f s (load %.2f s, warm-up %.2f s)",
        engine.name, type(engine).__name__, threads, "" if wanted.threads else ", auto",
        time.monotonic() - started,
        getattr(engine, "load_seconds", 0.0), getattr(engine, "warmup_seconds", 0.0),
    )  # fmt: skip
    return engine


class ModelLoader:
    """`engine` is the future of the engine for the newest `request`.

    `load` turns a setting into an engine (or raises); `started` runs when a load thread
    starts (it returns a token for `finished`); `finished(token, error)` runs in that thread
    when the newest setting's load has ended, unless the server is closing.
    """

    def __init__(
        self,
        load: Callable[[Wanted], Engine],
        started: Callable[[], str | None],
        finished: Callable[[str | None, ModelError | None], None],
        engine: Engine | None = None,
    ) -> None:
        self.engine: Future[Engine] = Future()
        if engine is not None:
            self.engine.set_result(engine)
        self._load_engine = load
        self._started = started
        self._finished = finished
        self._lock = threading.Lock()
        self._wanted: Wanted | None = None  # the newest setting asked for
        self._loading = False  # a load thread runs; it loads `_wanted` until that holds still
        self._closing = False

    @property
    def requested(self) -> bool:
        """Whether a load was ever asked for."""
        return self._wanted is not None

    def request(self, wanted: Wanted) -> None:
        """Have the engine for `wanted`: start a load, or queue it behind the running one."""
        with self._lock:
            if wanted == self._wanted:
                return
            self._wanted = wanted
            if self.engine.done():
                self.engine = Future()
            if not self.engine.running():
                self.engine.set_running_or_notify_cancel()
            if self._loading:
                log.info("model %s will load after the load in progress", wanted)
                return
            self._loading = True
        self._start()

    def reload(self, release: Callable[[Engine], None]) -> bool:
        """Load the current setting again (the auto thread count changed), in the background.

        `release(old)` frees the old engine first, so that two models are never held at
        once; requests wait for the new one meanwhile. False when there is nothing to reload
        now: no engine yet, or a load already running.
        """
        with self._lock:
            if self._loading or not self.engine.done() or self.engine.exception() is not None:
                return False
            old = self.engine.result()
            self.engine = Future()
            self.engine.set_running_or_notify_cancel()
            self._loading = True
        self._start(lambda: release(old))
        return True

    def _start(self, first: Callable[[], None] | None = None) -> None:
        """Start the load thread (`first`, such as freeing the old engine, runs in it first)."""
        token = self._started()
        threading.Thread(
            target=self._load_latest, args=(token, first), name="offpilot-model-load", daemon=True
        ).start()

    def _load_latest(self, token: str | None, first: Callable[[], None] | None = None) -> None:
        """The load thread: load the newest setting, again while a newer one arrived meanwhile."""
        if first is not None:
            try:
                first()
            except Exception:  # the old engine is dropped regardless; the load must go on
                log.exception("releasing the old engine failed")
        while True:
            with self._lock:
                wanted = self._wanted
            assert wanted is not None
            engine, error = self._load(wanted)
            with self._lock:
                current = wanted == self._wanted
                if current or self._closing:
                    self._loading = False
                    if engine is not None and current:
                        self.engine.set_result(engine)
                    else:
                        error = error or ModelError("the server is shutting down")
                        self.engine.set_exception(error)
                    break
            log.info("model %s was loaded for a setting since changed", wanted)
            if engine is not None and hasattr(engine, "close"):
                engine.close()  # free it now: the next load needs the memory
        if not self._closing:
            self._finished(token, error)

    def _load(self, wanted: Wanted) -> tuple[Engine | None, ModelError | None]:
        """One load: the engine, or why there is none (any failure, as a ModelError)."""
        try:
            return self._load_engine(wanted), None
        except ModelError as exc:
            log.error("model unavailable: %s", exc)
            return None, exc
        except Exception as exc:  # a malformed manifest or vocabulary, a failed warm-up...
            log.exception("loading the model failed")
            return None, ModelError(f"cannot load the model ({type(exc).__name__}: {exc})")

    def close(self, timeout_s: float) -> None:
        """Start no queued load, and let a running one finish (up to `timeout_s`)."""
        self._closing = True
        if self.engine.running():  # a load is in progress (none may ever have started)
            with contextlib.suppress(Exception):
                self.engine.exception(timeout=timeout_s)
