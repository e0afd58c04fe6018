"""The offpilot language server: LSP 3.18 `textDocument/inlineCompletion` over a local model.

Handlers only translate between LSP and plain Python: they convert positions once, call the
`Completer` (cache, reuse, debounce, one generation at a time, cancellation) and convert back.
The model loads in a background thread after `initialized`, reported with `$/progress` and
`offpilot/status` notifications. What is not a handler lives beside: the hardened protocol
(protocol.py), documents (documents.py), the model load (model_loader.py), `offpilot serve`
(serve.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pygls.lsp.server import LanguageServer

from completion.cpu_load import ThreadTuner, auto_threads
from completion.document import Document
from completion.engines.interface import Engine
from completion.models.store import ModelError
from completion.pipeline import CompletionRequest, CompletionResult
from completion.positions import offset_at
from lsp_server.completer import Completer, Outcome, Snapshot, Source, format_stages
from lsp_server.config import ServerConfig, parse_config
from lsp_server.documents import LspDocument, RecentDocuments, root_of
from lsp_server.framing import GuardedReader
from lsp_server.model_loader import ModelLoader, Wanted, load_wanted
from lsp_server.protocol import OffpilotProtocol, plain
from lsp_server.stats import StatsWriter
from lsp_server.trace import TRACE, TraceRecord, block_record, request_record

log = logging.getLogger("offpilot.server")
_P = TypeVar("_P")

STATUS = "offpilot/status"
CUSTOM_INLINE = "offpilot/inlineCompletion"
DID_SHOW = "offpilot/didShowCompletion"
DID_ACCEPT = "offpilot/didAcceptCompletion"
DID_REJECT = "offpilot/didRejectCompletion"
# the client's cursor came to rest: {textDocument: {uri}, position} (Completer.warm)
CURSOR_RESTED = "offpilot/cursorRested"
CMD_STATS = "offpilot.stats"
CMD_TOGGLE = "offpilot.toggle"
RETUNE_EVERY_S = 30.0  # auto threads: how often the load is checked, in idle time
IDLE_S = 10.0  # ... and how long no generation must have run


@dataclass
class ServerSettings:
    """Start-up settings of the server (from the command line)."""

    model: str | None = None
    cache_dir: str | None = None
    backend: str | None = None  # `--backend URL`: an OpenAI-compatible server generates
    config: ServerConfig = field(default_factory=ServerConfig)


class OffpilotServer(LanguageServer):
    """A pygls server that owns the engine, the completer and local statistics."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        super().__init__("offpilot", "0.1.0", protocol_cls=OffpilotProtocol)
        self.settings = settings
        self.config = settings.config
        self.loader = ModelLoader(
            self._load_engine, self._load_started, self._load_finished, engine
        )
        self.stats = StatsWriter()  # its file I/O runs off the event loop
        self.completer = Completer(
            self.config,
            on_busy=self._on_busy,
            on_block=self._block_ready,
            verdicts=self.stats.verdicts,  # the user's own record moves the gate's threshold
        )
        self.request_ids = itertools.count(1)
        self.state = "loading"
        self.initialize_seen = False  # `initialized` before `initialize` starts nothing
        self._loop: asyncio.AbstractEventLoop | None = None  # set by the first send_status
        self.recent = RecentDocuments()
        self.generating = False  # a generation runs (`_on_busy`)
        self.idle_since = time.monotonic()  # when the last one ended
        self.retuning: asyncio.Future[None] | None = None  # follow_load, once `initialized`
        self.exit_code = 0  # LSP: 1 when `exit` came without `shutdown` before it

    @property
    def lsp(self) -> OffpilotProtocol:
        """The protocol, typed as the hardened one it is."""
        return cast(OffpilotProtocol, self.protocol)

    # -- model -----------------------------------------------------------------------------
    @property
    def engine_future(self) -> Future[Engine]:
        """The engine for the newest model setting (lsp_server/model_loader.py)."""
        return self.loader.engine

    def start_loading(self) -> None:
        """Load the model the settings name, in the background (the newest setting wins)."""
        with contextlib.suppress(RuntimeError):  # the load thread reports through this loop
            self._loop = asyncio.get_running_loop()
        config = self.config
        self.loader.request(
            Wanted(
                config.model or self.settings.model,
                config.threads,
                config.backend or self.settings.backend,
                config.backend_api_key_env,
                config.backend_model,
                config.engine,
            )
        )

    def _load_engine(self, wanted: Wanted) -> Engine:
        return load_wanted(wanted, self.settings.cache_dir)

    async def follow_load(self, every_s: float = RETUNE_EVERY_S) -> None:
        """`threads: 0` (auto): reload with another thread count when the load has changed.

        Checked in idle time only, and acted on when two checks in a row agree
        (completion/cpu_load.py), so a suggestion never waits for a reload it caused.
        """
        tuner = ThreadTuner()
        while True:
            await asyncio.sleep(every_s)
            future = self.engine_future
            idle = not self.generating and time.monotonic() - self.idle_since >= IDLE_S
            if self.config.threads or not idle or not future.done() or future.exception():
                continue
            running = getattr(future.result(), "threads", 0)
            best = await asyncio.to_thread(auto_threads)
            if running and tuner.observe(running, best) and self.loader.reload(self._release):
                log.info("threads: %d -> %d (the machine's load changed)", running, best)

    def _release(self, engine: Engine) -> None:
        """Free an engine no request uses: wait for the generation running on it."""
        with self.completer.generation_lock:
            if hasattr(engine, "close"):
                engine.close()

    def _load_started(self) -> str | None:
        """As a load starts: `loading`, and the progress token if the client shows one."""
        self.send_status("loading")
        try:
            caps = self.client_capabilities.window
        except AttributeError:  # no `initialize` yet: no capabilities, no progress
            return None
        if not (caps and caps.work_done_progress):
            return None
        token = f"offpilot-load-{uuid.uuid4().hex[:8]}"
        self._on_loop(self._progress_begin, token)
        return token

    def _load_finished(self, token: str | None, error: ModelError | None) -> None:
        """In the load thread: progress, status and message go out in this order."""
        if error is None:
            self._on_loop(self._progress_end, token, "model ready")
            self.send_status("ready" if self.config.enable else "disabled")
            return
        self._on_loop(self._progress_end, token, "model unavailable")
        self.send_status("error", str(error))
        message = types.ShowMessageParams(
            type=types.MessageType.Error, message=f"offpilot: {error}"
        )
        self._on_loop(self.window_show_message, message)

    def _progress_begin(self, token: str) -> None:
        try:
            self.work_done_progress.create(token)
            self.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="offpilot", message="loading the model")
            )
        except Exception:  # progress is a courtesy: the load goes on regardless
            log.exception("cannot report the model load's progress")

    def _progress_end(self, token: str | None, message: str) -> None:
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))

    @property
    def load_started(self) -> bool:
        """Whether a model load was ever asked for."""
        return self.loader.requested

    def quiesce(self, timeout_s: float = 60.0) -> None:
        """Before exit: stop generations and let a model load finish.

        Native CTranslate2 threads must not be running while the interpreter shuts down.
        """
        self.completer.close()
        if self.retuning is not None:
            self.retuning.cancel()
        self.stats.close()  # every event queued is written
        self.loader.close(timeout_s)
        if self.completer.generation_lock.acquire(timeout=timeout_s):
            self.completer.generation_lock.release()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """One log line; a failed send is never answered with another send.

        pygls shows other errors to the user with `window/showMessage`; after a failed write
        (a closed stdout) that message fails too, and reports itself again, without end.
        """
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)
        if source is JsonRpcInternalError or self.lsp.closing:
            return
        super().report_server_error(error, source)

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve over stdio, with bounded frames (lsp_server/framing.py)."""
        super().start_io(GuardedReader(stdin or sys.stdin.buffer), stdout)  # type: ignore[arg-type]

    # -- status ----------------------------------------------------------------------------
    def send_status(self, state: str, message: str = "") -> None:
        """Tell the client what the server is doing: loading, ready, busy, error, disabled.

        Written from the event loop thread only: a worker thread's status (model load,
        generation) is handed to the loop, the transport's one writer.
        """
        self.state = state
        self._on_loop(self.protocol.notify, STATUS, {"state": state, "message": message})

    def _on_loop(self, write: Callable[..., object], *args: Any) -> None:
        """Run `write` on the event loop, the transport's one writer.

        At once on the loop's thread, else handed to the loop (in order); nothing once the
        loop has closed.
        """
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                    self._loop.call_soon_threadsafe(write, *args)
                return
        write(*args)

    def trace(self, record: TraceRecord) -> None:
        """Send a request's trace record, to a client that asked for them (on the loop)."""
        if self.config.completion_trace:
            self.protocol.notify(TRACE, record.to_json())

    def _block_ready(
        self,
        msg_id: int | str | None,
        uri: str,
        result: CompletionResult,
        ms: float,
        gate_threshold: float | None,
    ) -> None:
        """The rest of a block whose first line was shown is in the cache: trace it."""
        self.trace(block_record(msg_id, uri, result, ms, gate_threshold, self.config.gate))

    def _on_busy(self, busy: bool) -> None:
        """Called from the generation thread (send_status hands it to the loop)."""
        self.generating = busy
        if not busy:
            self.idle_since = time.monotonic()
        if self.state in ("ready", "busy"):
            self.send_status("busy" if busy else "ready", "" if busy else self._engine_problem())

    def _engine_problem(self) -> str:
        """A backend's latest failure, for the status bar: answers are empty until it works."""
        future = self.engine_future
        if not future.done() or future.exception() is not None:
            return ""
        error = getattr(future.result(), "last_error", None)
        return f"backend failing: {error}" if error else ""

    # -- documents -------------------------------------------------------------------------
    def touch(self, uri: str) -> None:
        """Note a document as the most recently used."""
        self.recent.touch(uri)

    def other_documents(self, uri: str) -> tuple[Document, ...]:
        """The other open documents, most recently used first (for cross-file context)."""
        return self.recent.others(self.workspace, uri) if self.config.crossfile else ()

    def root_of(self, path: str | None) -> str | None:
        """The workspace folder that holds `path` (lsp_server/documents.py)."""
        return root_of(self.workspace, path)

    # -- configuration ---------------------------------------------------------------------
    def apply_config(self, raw: Any) -> None:
        """Take new settings; bad values warn and keep their defaults."""
        config, warnings = parse_config(raw, self.config)
        for warning in warnings:
            log.warning(warning)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=warning)
            )
        if config != self.config:
            self.completer.cache.clear()
        self.config = self.completer.config = config
        if self.engine_future.done() and not self.engine_future.exception():
            self.send_status("ready" if config.enable else "disabled")


def create_server(
    settings: ServerSettings | None = None, engine: Engine | None = None
) -> OffpilotServer:
    """Build the server and register its handlers."""
    server = OffpilotServer(settings or ServerSettings(), engine)

    @server.feature(types.INITIALIZE)
    def on_initialize(ls: OffpilotServer, params: types.InitializeParams) -> None:
        ls.initialize_seen = True
        ls.apply_config(params.initialization_options)

    @server.feature(types.SHUTDOWN)
    def on_shutdown(ls: OffpilotServer, _params: None) -> None:
        ls.lsp.closing = True  # from now on the server only answers
        ls.quiesce()

    @server.feature(types.EXIT)
    def on_exit(ls: OffpilotServer, _params: None) -> None:
        ls.exit_code = 0 if ls.lsp.closing else 1

    @server.feature(types.INITIALIZED)
    def on_initialized(ls: OffpilotServer, _params: types.InitializedParams) -> None:
        if not ls.initialize_seen:  # the first completion after `initialize` starts the load
            log.warning("`initialized` came before `initialize`; ignored")
            return
        ls.start_loading()
        if ls.retuning is None:
            ls.retuning = asyncio.ensure_future(ls.follow_load())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def on_configuration(ls: OffpilotServer, params: types.DidChangeConfigurationParams) -> None:
        ls.apply_config(params.settings)
        if ls.load_started:
            ls.start_loading()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_open(ls: OffpilotServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_change(ls: OffpilotServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_close(ls: OffpilotServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.recent.forget(params.text_document.uri)
        ls.completer.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: OffpilotServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        return await handle_inline_completion(ls, params)

    @server.feature(CUSTOM_INLINE)
    async def custom_inline_completion(
        ls: OffpilotServer, params: Any
    ) -> types.InlineCompletionList:
        parsed = _structured(ls, CUSTOM_INLINE, params, types.InlineCompletionParams)
        if parsed is None:  # malformed params: an empty answer
            return types.InlineCompletionList(items=[])
        return await handle_inline_completion(ls, parsed)

    def on_event(event: str) -> Any:
        def handler(ls: OffpilotServer, params: Any) -> None:
            p = plain(params) if params is not None else {}
            p = p if isinstance(p, dict) else {}
            language = p.get("languageId") or _language_of(ls, p.get("uri")) or "unknown"
            text = p.get("text")
            chars = len(text) if isinstance(text, str) else 0  # "text" may be any JSON value
            length = p.get("acceptedLength", p.get("length", chars))
            ls.stats.record(event, str(language), length if isinstance(length, int) else 0)

        return handler

    @server.feature(CURSOR_RESTED)
    async def on_cursor_rested(ls: OffpilotServer, params: Any) -> None:
        parsed = _structured(ls, CURSOR_RESTED, params, types.TextDocumentPositionParams)
        if parsed is not None:  # malformed params: nothing computed
            await handle_cursor_rested(ls, parsed)

    server.feature(DID_SHOW)(on_event("shown"))
    server.feature(DID_ACCEPT)(on_event("accepted"))
    server.feature(DID_REJECT)(on_event("rejected"))

    @server.command(CMD_STATS)
    async def stats_command(ls: OffpilotServer, *_args: Any) -> dict[str, Any]:
        cache = ls.completer.cache
        counts: dict[str, Any] = await asyncio.wrap_future(ls.stats.summary())
        return {
            **counts,
            "cache": {"hits": cache.hits, "misses": cache.misses},
            "requests": dict(ls.completer.sources),
            "warms": dict(ls.completer.warms),
        }

    @server.command(CMD_TOGGLE)
    def toggle_command(ls: OffpilotServer, *_args: Any) -> dict[str, bool]:
        ls.apply_config({"enable": not ls.config.enable})
        return {"enabled": ls.config.enable}

    return server


def _structured(ls: OffpilotServer, method: str, params: Any, kind: type[_P]) -> _P | None:
    """A custom method's params as `kind`; None (and one log line) when they are malformed."""
    try:
        return ls.protocol._converter.structure(plain(params), kind)
    except Exception as exc:
        log.warning("%s: bad params (%s)", method, exc)
        return None


def _language_of(ls: OffpilotServer, uri: Any) -> str | None:
    doc = ls.workspace.text_documents.get(uri) if isinstance(uri, str) else None
    return doc.language_id if doc is not None else None


def _request_at(ls: OffpilotServer, uri: str, position: types.Position) -> CompletionRequest | None:
    """The pipeline's request at an LSP position (converted here, once); None: not open."""
    doc = ls.workspace.text_documents.get(uri)
    if doc is None:
        return None
    if not ls.load_started:  # `initialized` never came (or came before `initialize`)
        ls.start_loading()
    text = doc.source
    if isinstance(doc, LspDocument):
        offset = doc.offset_of(position)
    else:  # not opened through this protocol's workspace (no such path today)
        offset = offset_at(text, position.line, position.character)
    ls.touch(uri)
    return CompletionRequest(
        text,
        offset,
        doc.language_id or "plaintext",
        doc.path,
        ls.other_documents(uri),
        ls.root_of(doc.path),
    )


async def handle_cursor_rested(
    ls: OffpilotServer, params: types.TextDocumentPositionParams
) -> None:
    """Compute the prompt where the cursor rests (`Completer.warm`); nothing is sent back."""
    uri = params.text_document.uri
    request = _request_at(ls, uri, params.position)
    if request is None:
        return
    try:
        warmed = await ls.completer.warm(Snapshot(uri, request), ls.engine_future)
    except Exception:  # a warm is an optimisation: its failure is logged, never raised
        log.exception("warm at %s failed", uri)
        return
    if warmed is not None:
        log.info(
            "warm: %s:%d:%d prompt_tokens=%d reused_tokens=%d %.0fms%s",
            uri, params.position.line, params.position.character, warmed.prompt_tokens,
            warmed.reused_tokens, warmed.ms, " cancelled" if warmed.cancelled else "",
        )  # fmt: skip


async def handle_inline_completion(
    ls: OffpilotServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    """Document + position -> completer -> one inline item (or none)."""
    rid = next(ls.request_ids)
    empty = types.InlineCompletionList(items=[])
    uri = params.text_document.uri
    msg_id, pos = ls.protocol.msg_id, params.position

    def trace(outcome: Outcome, convert_ms: float = 0.0) -> None:
        ls.trace(
            request_record(
                msg_id, uri, pos.line, pos.character, outcome, convert_ms, ls.config.gate
            )
        )

    t0 = time.monotonic()
    request = _request_at(ls, uri, params.position)
    if request is None:
        log.info("req %d: %s is not open", rid, uri)
        trace(Outcome(Source.NOT_OPEN))
        return empty
    convert_ms = (time.monotonic() - t0) * 1000
    try:
        outcome = await ls.completer.complete(Snapshot(uri, request), ls.engine_future, msg_id)
    except asyncio.CancelledError:
        log.info("req %d: cancelled", rid)
        trace(Outcome(Source.CANCELLED), convert_ms)
        raise
    except ModelError:
        trace(Outcome(Source.NO_MODEL), convert_ms)
        return empty
    except Exception:
        log.exception("req %d: completion failed", rid)
        trace(Outcome(Source.ERROR), convert_ms)
        return empty
    result = outcome.result
    stages = format_stages(result.timings_ms)
    if outcome.source is Source.MODEL:
        stages += f" prompt_tokens={result.prompt_tokens} reused_tokens={result.reused_tokens}"
    if result.verdict is not None and result.verdict.score is not None:
        hidden = " hid " + repr(result.answer) if result.gated else ""
        stages += f" gate={result.verdict.score:.2f}{hidden}"
    log.info(
        "req %d: %s:%d:%d source=%s stop=%s convert=%.1fms %s%s -> %r",
        rid, uri, params.position.line, params.position.character, outcome.source,
        result.stop_reason, convert_ms, stages,
        f" crossfile=[{', '.join(result.crossfile)}]" if result.crossfile else "",
        result.text,
    )  # fmt: skip
    trace(outcome, convert_ms)
    if not result.text:
        return empty
    at = types.Range(start=params.position, end=params.position)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=result.text, range=at)]
    )
