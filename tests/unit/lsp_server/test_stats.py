"""The stats file: shared by several servers, never torn, a bad one set aside; the summary."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsp_server.stats import (
    MAX_EVENT_CHARS,
    MAX_LANGUAGE_CHARS,
    MAX_LANGUAGES,
    OTHER_LANGUAGE,
    Stats,
    StatsWriter,
    format_summary,
)

WRITER = """
import sys
from pathlib import Path
from lsp_server.stats import Stats
stats = Stats(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    stats.record("shown", "python", 3)
"""


def test_two_instances_keep_each_others_counts(tmp_path: Path) -> None:
    """Two windows' servers: 5 events in one and 3 in the other leave 8."""
    one, two = Stats(tmp_path / "stats.json"), Stats(tmp_path / "stats.json")
    for i in range(5):
        one.record("shown", "python", 2)
        if i < 3:
            two.record("accepted", "python", 1)
    total = Stats(tmp_path / "stats.json").summary()["total"]
    assert (total["shown"], total["accepted"], total["shown_chars"]) == (5, 3, 10)
    assert one.summary()["total"] == two.summary()["total"] == total


def test_concurrent_processes_lose_no_event(tmp_path: Path) -> None:
    """Processes writing at once: every event counted, the file never torn."""
    path, n, each = tmp_path / "stats.json", 4, 40
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(each)], text=True)
        for _ in range(n)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * n
    python = json.loads(path.read_text())["languages"]["python"]
    assert (python["shown"], python["shown_chars"]) == (n * each, 3 * n * each)
    assert not list(tmp_path.glob("stats.json.bad-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json", "stats.json.lock"]


def test_write_does_not_touch_another_writers_temp_file(tmp_path: Path) -> None:
    """The temp file is this process's own: a fixed `stats.tmp` is another writer's."""
    other = tmp_path / "stats.tmp"
    other.write_text("half of another server's write")
    Stats(tmp_path / "stats.json").record("shown", "python")
    assert other.read_text() == "half of another server's write"


@pytest.mark.parametrize(
    "content",
    [
        b'{"languages": null}',
        b'{"languages": {"python": {"shown": "5"}}}',
        b'{"languages": {"python": {"shown": -1}}}',
        b'{"languages": {"python": {"shown": true}}}',
        b'{"languages": {"python": {"shown": 1.5}}}',
        b'{"languages": {"python": {"colour": 1}}}',
        b'{"languages": {"python": null}}',
        b'{"languages": []}',
        b"[1, 2]",
        b"null",
        b"garbage",
        b'{"languages": {"py',
        b"\xff\xfe\x00",
        b"[" * 100_000,
    ],
)
def test_bad_file_is_set_aside_and_counting_restarts(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "stats.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="lsp_server.stats"):
        stats = Stats(path)
    assert stats.summary()["total"]["shown"] == 0
    stats.record("shown", "python", 4)
    stats.record("accepted", "python", 2)
    python = Stats(path).summary()["languages"]["python"]
    assert (python["shown"], python["accepted"], python["accepted_chars"]) == (1, 1, 2)
    (aside,) = tmp_path.glob("stats.json.bad-*")
    assert aside.read_bytes() == content
    assert "unreadable stats file" in caplog.text
    assert aside.name in caplog.text


def test_two_bad_files_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    for content in ("first", "second"):
        path.write_text(content)
        Stats(path)
    kept = sorted(p.read_text() for p in tmp_path.glob("stats.json.bad-*"))
    assert kept == ["first", "second"]


def test_unwritable_state_dir_warns_and_counts_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    stats = Stats(blocker / "stats.json")
    stats.record("shown", "python")
    assert stats.languages["python"].shown == 1
    assert "cannot save stats" in caplog.text


def test_stats_persist(tmp_path: Path) -> None:
    stats = Stats(tmp_path / "s.json")
    stats.record("shown", "python", 10)
    stats.record("accepted", "python", 4)
    stats.record("shown", "rust", 3)
    stats.record("rejected", "rust")
    again = Stats(tmp_path / "s.json").summary()
    assert again["languages"]["python"]["acceptance_rate"] == 1.0
    assert again["total"]["shown"] == 2
    assert again["total"]["accepted_chars"] == 4
    assert "python" in format_summary(again)
    (tmp_path / "s.json").write_text("garbage")
    assert Stats(tmp_path / "s.json").summary()["total"]["shown"] == 0


def test_writer_does_not_wait_for_the_lock_and_loses_nothing(tmp_path: Path) -> None:
    """Another window holds the lock: `record` returns at once; `close` writes every event."""
    path = tmp_path / "stats.json"
    writer = StatsWriter(Stats(path))
    fd = os.open(tmp_path / "stats.json.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        for i in range(20):
            writer.record("shown", "python", i)
        writer.record("accepted", "python", 3)
        assert time.monotonic() - started < 0.5  # nothing waited on the lock
        time.sleep(0.1)
        assert not path.exists()
    finally:
        os.close(fd)  # the other window is done
    writer.close()
    python = json.loads(path.read_text())["languages"]["python"]
    assert (python["shown"], python["shown_chars"], python["accepted"]) == (20, 190, 1)


def test_writer_summary_comes_after_the_events_queued_before(tmp_path: Path) -> None:
    writer = StatsWriter(Stats(tmp_path / "stats.json"))
    for _ in range(5):
        writer.record("shown", "rust", 2)
    assert writer.summary().result(timeout=10)["languages"]["rust"]["shown"] == 5
    writer.close()
    writer.close()  # closing twice is fine (shutdown, then exit)
    writer.record("rejected", "rust")  # after close: written at once, not lost
    assert Stats(tmp_path / "stats.json").summary()["languages"]["rust"]["rejected"] == 1
    assert writer.summary().result(timeout=10)["total"]["shown"] == 5


def test_writer_rejects_an_unknown_event_in_the_caller(tmp_path: Path) -> None:
    writer = StatsWriter(Stats(tmp_path / "stats.json"))
    with pytest.raises(ValueError, match="unknown event"):
        writer.record("clicked", "python")
    writer.close()
    assert not (tmp_path / "stats.json").exists()


def test_language_ids_are_normalised_and_capped(tmp_path: Path) -> None:
    """Ids in their normal form; malformed, overlong or one too many: counted under `other`."""
    stats = Stats(tmp_path / "stats.json")
    stats.record("shown", " Python ", 3)
    stats.record("shown", "", 1)
    for bad in ("x" * (MAX_LANGUAGE_CHARS + 1), "a b", '"}', "-lead"):
        stats.record("rejected", bad)
    for i in range(2 * MAX_LANGUAGES):
        stats.record("rejected", f"lang{i}")
    stats.record("accepted", "python", 10**30)
    languages = json.loads((tmp_path / "stats.json").read_text())["languages"]
    assert len(languages) == MAX_LANGUAGES
    assert languages["python"]["shown"] == 1
    assert languages["unknown"]["shown"] == 1
    assert languages["python"]["accepted_chars"] == MAX_EVENT_CHARS
    assert languages[OTHER_LANGUAGE]["rejected"] == 4 + 2 * MAX_LANGUAGES - (MAX_LANGUAGES - 3)
    assert sum(s["rejected"] for s in languages.values()) == 4 + 2 * MAX_LANGUAGES


def test_a_file_from_before_the_caps_is_folded_into_them(tmp_path: Path) -> None:
    """A bloated file is read whole into the caps, and the next write shrinks it."""
    path = tmp_path / "stats.json"
    bloated = {f"{'y' * 100_000}{i}": {"shown": 1} for i in range(20)}
    path.write_text(json.dumps({"languages": {**bloated, "Python": {"shown": 2}}}))
    stats = Stats(path)
    assert stats.languages[OTHER_LANGUAGE].shown == 20
    assert stats.languages["python"].shown == 2
    stats.record("shown", "python")
    assert path.stat().st_size < 1000


def test_writer_keeps_each_languages_verdicts_in_memory(tmp_path: Path) -> None:
    """Read at start, refreshed by the worker after each event (every window's), never waited on."""
    path = tmp_path / "stats.json"
    Stats(path).record("rejected", "rust")  # another window, before this one started
    writer = StatsWriter(Stats(path))
    assert (writer.verdicts("rust"), writer.verdicts("go")) == ((0, 1), (0, 0))
    fd = os.open(tmp_path / "stats.json.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another window holds the file
    try:
        for _ in range(3):
            writer.record("rejected", "python")
        writer.record("accepted", " Python ", 5)
        started = time.monotonic()
        assert writer.verdicts("python") == (0, 0)  # the last snapshot, at once
        assert time.monotonic() - started < 0.1
    finally:
        os.close(fd)
    writer.summary().result(timeout=10)  # the events queued before are written
    assert writer.verdicts("python") == writer.verdicts("PYTHON") == (1, 3)  # language_key's form
    Stats(path).record("accepted", "python")  # another window
    writer.record("shown", "python")
    writer.close()
    assert writer.verdicts("python") == (2, 3)
    assert writer.verdicts("x" * 500) == (0, 0)  # counted as `other`, where nothing is
