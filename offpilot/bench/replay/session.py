"""The typing session: characters typed into the real server as an editor sends them.

Characters are typed one at a time with human-like pauses (longer at line ends), each edit is
sent as an incremental `didChange`, the request in flight is cancelled on every keystroke
(`$/cancelRequest`), and a request is sent once the editor-side debounce has passed. At a
pause the user waits for the suggestion: that wait, from the request to the answer, is the
latency reported. The server's RSS is sampled throughout, and its `offpilot/completionTrace`
records (lsp_server/trace.py) say how each request was served and what it cost.

With `switch_lines`, the user works in two files at once (a module and its test, say):
a few lines in one, then a few in the other, each file open throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from lsp_server.protocol import plain
from lsp_server.trace import TRACE, TraceRecord
from offpilot.lsp_client import (
    ServerClient,
    completion_params,
    item_texts,
    open_document,
    start_client,
    stop_client,
)

log = logging.getLogger("offpilot.bench.replay")


@dataclass(frozen=True)
class ReplayOptions:
    """How the simulated user types."""

    debounce_ms: float = 75.0  # editor-side, before a request is sent
    # A fluent typist: 40 ms between keys, 1.5 s at a line's end and after a new line's
    # indent, as the users' replay of issue 27 types (docs/latency.md)
    key_ms: float = 40.0  # median gap between keystrokes
    line_pause_ms: float = 1500.0  # median pause at a line's end and after a new line's indent
    start_lines: int = 12  # lines already present when typing starts (`at="end"`)
    # Where the user types: "middle" (a definition in the middle of the file is typed anew,
    # with the rest of the file below the cursor, as users work) or "end" (after the first
    # `start_lines` lines, nothing below).
    at: str = "middle"
    max_keystrokes: int = 400  # per file
    # 0: one file at a time. N: the files in pairs, both open, N lines typed in one and then
    # N in the other, until both are typed.
    switch_lines: int = 0
    # The user reads for about this long where the cursor lands (a file's first visit, each
    # return) before the first key, and the editor says where the cursor rests
    # (`offpilot/cursorRested`, the server's `warm`). 0: typing starts at once.
    land_ms: float = 0.0
    duration_s: float | None = None  # stop after this long (all files looped)
    seed: int = 0
    server_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplayReport:
    """What the user waited for, and what the server spent."""

    keystrokes: int = 0
    requests: int = 0
    pause_latencies_ms: list[float] = field(default_factory=list)
    typing_latencies_ms: list[float] = field(default_factory=list)
    superseded: int = 0
    typing_requests_at_pause: int = 0  # pauses answered by a request already in flight
    shown: int = 0
    empty: int = 0
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    server_requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    pause_ids: list[int] = field(default_factory=list)  # the requests timed as pauses
    # where each pause was, by request id: "line_end" or "new_line" (after Enter and indent)
    pause_at: dict[int, str] = field(default_factory=dict)
    traces: list[TraceRecord] = field(default_factory=list)  # one per request, from the server
    # each pause that showed a suggestion: whether its first line is the one the user typed
    # next (`first_line_as_typed`)
    as_typed: list[bool] = field(default_factory=list)
    bad_traces: int = 0  # notifications that were not trace records
    # the first pause's request after each switch to the other file (`switch_lines`)
    after_switch: list[int] = field(default_factory=list)
    # the first pause's request in each file typed (its first visit)
    first_in_file: list[int] = field(default_factory=list)


def default_corpus() -> list[tuple[str, str]]:
    """(name, text) of the bundled replay files."""
    folder = resources.files("offpilot").joinpath("data/replay")
    return [
        (f.name.removesuffix(".txt"), f.read_text(encoding="utf-8"))
        for f in sorted(folder.iterdir(), key=lambda p: p.name)
        if f.name.endswith(".py.txt")
    ]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class _Typist:
    """One document being typed; owns the request in flight."""

    def __init__(
        self,
        client: LanguageClient,
        uri: str,
        text: str,
        report: ReplayReport,
        ids: Iterator[int],
    ) -> None:
        self.client = client
        self.uri = uri
        self.text = text
        self.version = 1
        self.report = report
        self.ids = ids  # request ids, unique in the session: trace records are matched by them
        # (message id, answer, sent at, document version, where its latency goes)
        self.pending: tuple[int, asyncio.Future[Any], float, int, list[list[float]]] | None = None
        self.switched = False  # the user just came to this file from the other one
        self.new = True  # no pause in this file yet

    def position(self) -> types.Position:
        line = self.text.count("\n")
        col = len(self.text) - (self.text.rfind("\n") + 1)
        return types.Position(line, col)  # the corpus is ASCII: UTF-16 units == characters

    def type_char(self, ch: str) -> None:
        pos = self.position()
        self.cancel_pending()
        self.version += 1
        self.text += ch
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=ch)
                ],
            )
        )
        self.report.keystrokes += 1

    def rest(self) -> None:
        """The cursor rests where it landed: the editor tells the server."""
        pos = self.position()
        self.client.protocol.notify(
            "offpilot/cursorRested",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": pos.line, "character": pos.character},
            },
        )

    def retarget(self, latencies: list[float]) -> None:
        """Count the pending request's latency in `latencies` instead."""
        if self.pending is not None:
            self.pending[4][0] = latencies

    def cancel_pending(self) -> None:
        if self.pending is None:
            return
        msg_id, future, *_ = self.pending
        if not future.done():
            self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
            self.report.superseded += 1
        self.pending = None

    def request(self, latencies: list[float], pause_at: str = "") -> asyncio.Future[Any]:
        """Send a request at the cursor; a pause's says where the pause is (`pause_at`)."""
        pos = self.position()
        params = completion_params(
            self.uri, pos.line, pos.character, types.InlineCompletionTriggerKind.Automatic
        )
        msg_id = next(self.ids)
        if pause_at:
            self.report.pause_at[msg_id] = pause_at
        future = asyncio.wrap_future(
            self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
            )
        )
        started = time.monotonic()
        target = [latencies]
        self.pending = (msg_id, future, started, self.version, target)
        self.report.requests += 1

        def done(f: asyncio.Future[Any], started: float = started) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            ms = (time.monotonic() - started) * 1000
            result = f.result()
            items = getattr(result, "items", None) or []
            self.report.shown += bool(items)
            self.report.empty += not items
            target[0].append(ms)
            if target[0] is self.report.pause_latencies_ms:
                self.report.pause_ids.append(msg_id)

        future.add_done_callback(done)
        return future


async def _type_text(
    typist: _Typist,
    rest: str,
    opts: ReplayOptions,
    rng: random.Random,
    deadline: float,
    budget: int,
) -> int:
    """Type `rest` after the document's current text, at most `budget` keys; the keys typed."""
    i = 0
    typed = 0
    while i < len(rest) and typed < budget and time.monotonic() < deadline:
        ch = rest[i]
        if ch == "\n":  # the user pauses at the end of a line and waits for a suggestion
            await _pause_for_suggestion(typist, opts, rng, "line_end", rest[i:])
            # newline plus the editor's auto-indent arrive together
            j = i + 1
            while j < len(rest) and rest[j] == " ":
                j += 1
            for c in rest[i:j]:
                typist.type_char(c)
            typed += 1
            i = j
            await _pause_for_suggestion(typist, opts, rng, "new_line", rest[i:])
            continue
        typist.type_char(ch)
        typed += 1
        i += 1
        gap = rng.lognormvariate(0, 0.45) * opts.key_ms / 1000
        await asyncio.sleep(min(gap, opts.debounce_ms / 1000))
        if gap > opts.debounce_ms / 1000:  # the debounce expired before the next key
            typist.request(typist.report.typing_latencies_ms)
            await asyncio.sleep(gap - opts.debounce_ms / 1000)
    return typed


async def _pause_for_suggestion(
    typist: _Typist, opts: ReplayOptions, rng: random.Random, at: str, upcoming: str
) -> None:
    """The user stops typing and waits for the suggestion at the cursor.

    A request already sent for this very cursor (the debounce expired after the last key) is
    what the editor waits on; otherwise the editor sends one after its debounce. A suggestion
    shown is checked against `upcoming`, what the user types next.
    """
    if typist.pending is not None and typist.pending[3] == typist.version:
        future = typist.pending[1]
        typist.report.typing_requests_at_pause += 1
        typist.retarget(typist.report.pause_latencies_ms)
        typist.report.pause_at[typist.pending[0]] = at
    else:
        await asyncio.sleep(opts.debounce_ms / 1000)
        typist.cancel_pending()
        future = typist.request(typist.report.pause_latencies_ms, at)
    if typist.switched and typist.pending is not None:
        typist.report.after_switch.append(typist.pending[0])
        typist.switched = False
    if typist.new and typist.pending is not None:
        typist.report.first_in_file.append(typist.pending[0])
        typist.new = False
    with contextlib.suppress(Exception):
        if shown := item_texts(await future):
            typist.report.as_typed.append(first_line_as_typed(shown[0], upcoming))
    typist.pending = None
    await asyncio.sleep(rng.lognormvariate(0, 0.3) * opts.line_pause_ms / 1000)


def first_line_as_typed(suggestion: str, upcoming: str) -> bool:
    """Whether a suggestion's first line is the line the user went on to type.

    Compared without the surrounding blanks and indent: at a line's end the suggestion
    starts with the newline the user has yet to type. An exact match of the first line,
    the grey text a user would accept with Tab and keep.
    """

    def first(text: str) -> str:
        return next((ln.strip() for ln in text.split("\n") if ln.strip()), "")

    line = first(suggestion)
    return bool(line) and line == first(upcoming)


def _keep_trace(report: ReplayReport, params: Any) -> None:
    """Keep a trace record; count (and log once) a notification that is not one."""
    data = plain(params)
    try:
        report.traces.append(TraceRecord.from_json(data))
    except ValueError as exc:
        if not report.bad_traces:
            log.warning("not a trace record (%s): %.200r", exc, data)
        report.bad_traces += 1


class _Session:
    """One server and its client for a replay: the report, the RSS sampler, the request ids."""

    def __init__(self, client: ServerClient, report: ReplayReport, started: float) -> None:
        self.client = client
        self.report = report
        self.started = started
        server = getattr(client, "_server", None)
        self.pid: int | None = server.pid if server is not None else None
        self.ids = itertools.count(10_000_000)  # pygls names its own requests with uuid strings
        self.sampler = asyncio.ensure_future(self._sample_rss())

    @classmethod
    async def start(cls, opts: ReplayOptions, server_args: list[str]) -> _Session:
        report = ReplayReport()
        client = await start_client(
            *server_args,
            name="offpilot-replay",
            init_options={**opts.server_config, "completionTrace": True},
            on_notification={TRACE: lambda params: _keep_trace(report, params)},
        )
        return cls(client, report, time.monotonic())

    async def _sample_rss(self) -> None:
        while self.pid is not None:
            self.report.rss_mb.append((time.monotonic() - self.started, _rss_mb(self.pid)))
            await asyncio.sleep(5)

    async def type_files(
        self, files: list[tuple[str, str]], round_no: int, opts: ReplayOptions,
        rng: random.Random, deadline: float,
    ) -> None:  # fmt: skip
        """Open the files without the parts to type (`split_for_typing`), type, close them.

        One file is typed whole; several take turns, `switch_lines` lines each.
        """
        turns: list[tuple[_Typist, list[str]]] = []
        for name, text in files:
            head, typed, below = split_for_typing(text, opts)
            path = Path(f"/tmp/offpilot-replay/r{round_no}/{name}")
            # the user opened an empty line above the code below (else that code would sit on
            # the cursor's line, and nothing is completed before a word)
            open_document(self.client, path, head + ("\n" + below if below else ""))
            typist = _Typist(self.client, path.as_uri(), head, self.report, self.ids)
            lines = opts.switch_lines if len(files) > 1 else 0
            turns.append((typist, chunks_of_lines(typed, lines)))
        budgets = {id(t): opts.max_keystrokes for t, _ in turns}
        last: _Typist | None = None
        visited: set[int] = set()
        while any(chunks for _, chunks in turns) and time.monotonic() < deadline:
            for typist, chunks in turns:
                if not chunks or budgets[id(typist)] <= 0:
                    chunks.clear()
                    continue
                if last is not None and last is not typist:
                    last.cancel_pending()
                    typist.switched = id(typist) in visited  # back to a file typed before
                if opts.land_ms and (id(typist) not in visited or typist.switched):
                    typist.rest()
                    await asyncio.sleep(rng.lognormvariate(0, 0.3) * opts.land_ms / 1000)
                last = typist
                visited.add(id(typist))
                budgets[id(typist)] -= await _type_text(
                    typist, chunks.pop(0), opts, rng, deadline, budgets[id(typist)]
                )
        for typist, _ in turns:
            typist.cancel_pending()
            self.client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=typist.uri)
                )
            )

    async def finish(self) -> ReplayReport:
        """The server's request counts and last RSS; the server stopped."""
        report = self.report
        try:
            await asyncio.sleep(0.5)
            stats = await self.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="offpilot.stats")
            )
            requests = stats.get("requests", {}) if isinstance(stats, dict) else {}
            report.server_requests = dict(requests)
            if self.pid is not None:
                report.rss_mb.append((time.monotonic() - self.started, _rss_mb(self.pid)))
        finally:
            await self.stop()
        return report

    async def stop(self) -> None:
        self.sampler.cancel()
        self.report.seconds = time.monotonic() - self.started
        await stop_client(self.client)


_TOP_DEF = re.compile(r"^(?:async def|def|class) ", re.MULTILINE)


def split_for_typing(text: str, opts: ReplayOptions) -> tuple[str, str, str]:
    """(above, to type, below) of a file.

    "middle": the top-level definition starting nearest the middle of the file is typed
    from its first line to the next top-level definition, everything else stays in place
    (the document opens with an empty line between above and below, the cursor on it).
    "end" (or a file with no top-level definition past its first lines): the first
    `start_lines` lines are there and the rest is typed.
    """
    lines = text.splitlines(keepends=True)
    head = "".join(lines[: opts.start_lines])
    if opts.at == "middle":
        starts = [m.start() for m in _TOP_DEF.finditer(text) if m.start() > len(head)]
        if starts:
            mid = min(starts, key=lambda s: abs(s - len(text) // 2))
            later = [s for s in starts if s > mid]
            end = later[0] if later else len(text)
            return text[:mid], text[mid:end], text[end:]
    return head, text[len(head) :], ""


def chunks_of_lines(text: str, lines: int) -> list[str]:
    """`text` in pieces of `lines` lines (0: whole), each cut after a line's indent.

    A piece ends where the next line's code begins, so each turn starts on a typed line,
    as a user who comes back to a file goes on where the cursor was.
    """
    if lines <= 0 or not text:
        return [text] if text else []
    cuts = [m.end() for m in re.finditer(r"\n[ \t]*", text)][lines - 1 :: lines]
    bounds = [0, *(c for c in cuts if c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _rounds(
    files: list[tuple[str, str]], opts: ReplayOptions
) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """(round, the files typed together): each file, or pair with `switch_lines`.

    Once each, or looped until the duration is over.
    """
    deadline = time.monotonic() + opts.duration_s if opts.duration_s else float("inf")
    size = 2 if opts.switch_lines > 0 else 1
    for round_no in itertools.count():
        for i in range(0, len(files), size):
            yield round_no, files[i : i + size]
            if time.monotonic() >= deadline:
                return
        if opts.duration_s is None:
            return


async def replay(
    files: list[tuple[str, str]], opts: ReplayOptions, server_args: list[str]
) -> ReplayReport:
    """Type each file (looping when a duration is set) and collect the figures."""
    reports = await replay_interleaved(files, opts, {"replay": server_args}, same_typing=False)
    return reports["replay"]


async def replay_interleaved(
    files: list[tuple[str, str]],
    opts: ReplayOptions,
    arms: dict[str, list[str]],
    same_typing: bool = True,
) -> dict[str, ReplayReport]:
    """Type each file into every arm's server in turn, with the same typing: one report each.

    The servers run side by side but take turns, file by file (the order of the arms
    alternating), so a noisy machine weighs on every arm alike. With `same_typing`, each
    file's keystroke timing comes from its own seed, the same in every arm; otherwise one
    generator runs through the whole session (a single arm, as `replay` has always typed).
    """
    sessions: dict[str, _Session] = {}
    try:
        for name, args in arms.items():
            sessions[name] = await _Session.start(opts, args)
        deadline = time.monotonic() + opts.duration_s if opts.duration_s else float("inf")
        shared = random.Random(opts.seed)
        order = list(sessions)
        for turn, (round_no, group) in enumerate(_rounds(files, opts)):
            names = "+".join(name for name, _ in group)
            for arm in order if turn % 2 == 0 else order[::-1]:
                rng = random.Random(f"{opts.seed}:{round_no}:{names}") if same_typing else shared
                await sessions[arm].type_files(group, round_no, opts, rng, deadline)
        return {arm: await session.finish() for arm, session in sessions.items()}
    except BaseException:
        for session in sessions.values():
            with contextlib.suppress(Exception):
                await session.stop()
        raise
