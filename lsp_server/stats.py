"""Local acceptance statistics from the client's show/accept/reject notifications.

Kept in a JSON file on this machine (nothing is ever sent anywhere):
`$OFFPILOT_STATE_DIR/stats.json`, default `~/.local/state/offpilot/stats.json`.

Several servers (one per editor window) share the file, so each event is a read-modify-write
under an exclusive lock on `stats.json.lock` beside it, written to a temp file of its own,
fsynced and renamed into place: no window's counts overwrite another's, and a crash mid-write
leaves the old file whole. A file this code cannot read is set aside as
`stats.json.bad-<time>` with a warning, and counting starts again from zero.

Language ids come from clients, and every event rewrites the whole file: an id is kept only
in its normal form (trimmed, lower case, at most MAX_LANGUAGE_CHARS of `[a-z0-9._+#-]`), at
most MAX_LANGUAGES of them are stored, and any other id is counted under OTHER_LANGUAGE. One
event adds at most MAX_EVENT_CHARS characters. The file stays a few KB.

The server counts through `StatsWriter`: the lock and fsync can wait on another window's
server or on a slow disk, so they run on one worker thread of their own, in the order the
events came, never on the event loop; closing it (at shutdown) waits for every event queued.
It also keeps each language's accepts and rejects in memory (`verdicts`), for the gate's
per-user threshold (completion/gate.py `user_shift`): the worker swaps in a new snapshot
after each event it writes, so a request reads counts without touching the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVENTS = ("shown", "accepted", "rejected")
MAX_LANGUAGE_CHARS = 40  # the longest id in VS Code's list has 23
MAX_LANGUAGES = 50  # distinct ids stored, OTHER_LANGUAGE included
OTHER_LANGUAGE = "other"  # where an id that is malformed, too long or one too many is counted
UNKNOWN_LANGUAGE = "unknown"  # an event without a language
MAX_EVENT_CHARS = 1 << 20  # characters one event may add to a count
_LANGUAGE_ID = re.compile(rf"[a-z0-9][a-z0-9._+#-]{{0,{MAX_LANGUAGE_CHARS - 1}}}")


def state_dir() -> Path:
    """Where offpilot keeps local state."""
    if env := os.environ.get("OFFPILOT_STATE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "offpilot"


@dataclass
class LanguageStats:
    """Counters for one language."""

    shown: int = 0
    accepted: int = 0
    rejected: int = 0
    accepted_chars: int = 0
    shown_chars: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Accepted suggestions per shown suggestion."""
        return self.accepted / self.shown if self.shown else 0.0


COUNTERS = tuple(f.name for f in fields(LanguageStats))


def parse_stats(data: Any) -> dict[str, LanguageStats]:
    """The file's JSON -> counters; ValueError unless every counter is a non-negative int."""
    languages = data.get("languages") if isinstance(data, dict) else None
    if not isinstance(languages, dict):
        raise ValueError('expected {"languages": {...}}')
    out: dict[str, LanguageStats] = {}
    for lang, counts in languages.items():
        if not isinstance(counts, dict) or set(counts) - set(COUNTERS):
            raise ValueError(f"bad entry for {lang!r}")
        for name, value in counts.items():
            if type(value) is not int or value < 0:
                raise ValueError(f"{lang}.{name} is {value!r}, not a count")
        # a file written before the caps is folded into them, and shrinks at the next write
        s = out.setdefault(language_key(lang, out), LanguageStats())
        for name, value in counts.items():
            setattr(s, name, getattr(s, name) + value)
    return out


def language_key(language: Any, languages: Collection[str]) -> str:
    """The id under which `language` is counted, given the ids already stored.

    Its normal form (UNKNOWN_LANGUAGE when empty or missing) if well formed and stored
    already or there is room for it, else OTHER_LANGUAGE.
    """
    key = language.strip().lower() if isinstance(language, str) else OTHER_LANGUAGE
    if language is None or key == "":
        key = UNKNOWN_LANGUAGE
    elif not _LANGUAGE_ID.fullmatch(key):
        key = OTHER_LANGUAGE
    room = len(languages) < MAX_LANGUAGES - (OTHER_LANGUAGE not in languages)
    return key if key == OTHER_LANGUAGE or key in languages or room else OTHER_LANGUAGE


class Stats:
    """Per-language counters in a file shared by every server on this machine."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "stats.json"
        self.languages: dict[str, LanguageStats] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the file's counters (setting a bad file aside); keep the last ones on OSError."""
        try:
            with self._locked():
                self.languages = self._read()
        except OSError as exc:
            log.warning("cannot read stats from %s: %s", self.path, exc)

    def record(self, event: str, language: str, length: int = 0) -> None:
        """Count a `shown`, `accepted` (with accepted length) or `rejected` event."""
        check_event(event)
        try:
            with self._locked():
                self.languages = self._read()
                _count(self.languages, event, language, length)
                self._write()
        except OSError as exc:  # keep counting in memory; the next event tries again
            log.warning("cannot save stats to %s: %s", self.path, exc)
            _count(self.languages, event, language, length)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counters with acceptance rates, per language and in total (every window)."""
        self.refresh()
        total = LanguageStats()
        out: dict[str, Any] = {"languages": {}, "path": str(self.path)}
        for lang, s in sorted(self.languages.items()):
            out["languages"][lang] = {**asdict(s), "acceptance_rate": round(s.acceptance_rate, 4)}
            for f in COUNTERS:
                setattr(total, f, getattr(total, f) + getattr(s, f))
        out["total"] = {**asdict(total), "acceptance_rate": round(total.acceptance_rate, 4)}
        return out

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive lock that every server takes around the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, LanguageStats]:
        """The counters on disk (under the lock); a bad file is set aside, not fatal."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            return parse_stats(json.loads(raw))
        except (ValueError, RecursionError) as exc:  # ValueError: also bad JSON, bad UTF-8
            aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
            while aside.exists():
                aside = aside.with_name(aside.name + "-1")
            os.replace(self.path, aside)
            log.warning("unreadable stats file %s (%s): moved to %s", self.path, exc, aside)
            return {}

    def _write(self) -> None:
        """Replace the file in one step (under the lock), from a temp file of this process."""
        data = json.dumps({"languages": {k: asdict(v) for k, v in self.languages.items()}})
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class StatsWriter:
    """`Stats` whose file I/O runs on one worker thread, in order, off the event loop."""

    def __init__(self, stats: Stats | None = None) -> None:
        self.stats = stats or Stats()  # reads the file once, before any event is queued
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offpilot-stats")
        self._closed = False
        self._lock = threading.Lock()  # `close` against a `record` from another thread
        # language -> (accepted, rejected) of every window; replaced whole, never changed
        self._verdicts: Mapping[str, tuple[int, int]] = {}
        self._publish()

    def record(self, event: str, language: str, length: int = 0) -> None:
        """Queue an event (a bad event name raises here, in the caller).

        After `close` the event is written at once, in the caller: it is never lost.
        """
        check_event(event)
        self._submit(self._record, event, language, length)

    def summary(self) -> Future[dict[str, Any]]:
        """The counters of every window, once the events queued before are written."""
        return self._submit(self._summary)

    def verdicts(self, language: str) -> tuple[int, int]:
        """(accepted, rejected) in `language` as of the last event written; no file I/O.

        Safe from any thread: it reads one snapshot that the worker replaces whole. The
        language is looked up as `record` would count it (`language_key`).
        """
        snapshot = self._verdicts
        return snapshot.get(language_key(language, snapshot), (0, 0))

    def _record(self, event: str, language: str, length: int) -> None:
        try:
            self.stats.record(event, language, length)
        finally:
            self._publish()

    def _summary(self) -> dict[str, Any]:
        try:
            return self.stats.summary()  # re-reads the file: other windows' events too
        finally:
            self._publish()

    def _publish(self) -> None:
        """Swap in the counts the worker just read or wrote (on the worker thread)."""
        self._verdicts = {
            lang: (s.accepted, s.rejected) for lang, s in self.stats.languages.items()
        }

    def close(self) -> None:
        """Write every queued event, then stop the thread (idempotent)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if not self._closed:
                future = self._pool.submit(fn, *args)
                future.add_done_callback(_log_failure)
                return future
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as exc:
            done.set_exception(exc)
            _log_failure(done)
        return done


def _log_failure(future: Future[Any]) -> None:
    """A failed write is logged: nobody waits on a queued event's future."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("stats: %s", exc, exc_info=exc)


def check_event(event: str) -> None:
    """ValueError unless `event` is one of EVENTS."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")


def _count(languages: dict[str, LanguageStats], event: str, language: str, length: int) -> None:
    s = languages.setdefault(language_key(language, languages), LanguageStats())
    length = min(max(0, length), MAX_EVENT_CHARS)
    if event == "shown":
        s.shown += 1
        s.shown_chars += length
    elif event == "accepted":
        s.accepted += 1
        s.accepted_chars += length
    else:
        s.rejected += 1


def format_summary(summary: dict[str, Any]) -> str:
    """A small table for `offpilot stats`."""
    rows = [f"{'language':12} {'shown':>7} {'accepted':>9} {'rate':>6} {'chars accepted':>15}"]
    for lang, s in [*summary["languages"].items(), ("TOTAL", summary["total"])]:
        rate = s["acceptance_rate"]
        rows.append(
            f"{lang:12} {s['shown']:7} {s['accepted']:9} {rate:6.1%} {s['accepted_chars']:15}"
        )
    rows.append(f"(stored locally in {summary['path']})")
    return "\n".join(rows)
