"""The offpilot language server: `textDocument/inlineCompletion` over a local model.

Handlers only translate between LSP and plain Python and call `completion.pipeline.complete`.
The model loads in a background thread after `initialized`; generation runs in a worker thread
so the event loop never blocks, one generation at a time; cancellation sets a flag the engine
checks between tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from completion.engine import Engine, EngineOptions, load_engine
from completion.model_store import ModelError, locate
from completion.pipeline import CompletionOptions, CompletionRequest, CompletionResult, complete
from completion.positions import offset_at

log = logging.getLogger("offpilot.server")

STATUS_METHOD = "offpilot/status"
LANGUAGES = {"python"}


@dataclass
class ServerSettings:
    """Start-up settings of the server (from the command line)."""

    model: str | None = None
    cache_dir: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    completion: CompletionOptions = field(default_factory=CompletionOptions)


class OffpilotServer(LanguageServer):
    """A pygls server that owns the engine and the in-flight generations."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        super().__init__("offpilot", "0.1.0")
        self.settings = settings
        self.engine_future: Future[Engine] = Future()
        if engine is not None:
            self.engine_future.set_result(engine)
        self.generation_lock = threading.Lock()
        self.in_flight: dict[str, threading.Event] = {}
        self.request_ids = itertools.count(1)

    def start_loading(self) -> None:
        """Load the model in a background thread (once)."""
        if self.engine_future.done() or self.engine_future.running():
            return
        self.engine_future.set_running_or_notify_cancel()
        self.send_status("loading")
        threading.Thread(target=self._load, name="offpilot-model-load", daemon=True).start()

    def _load(self) -> None:
        started = time.monotonic()
        try:
            model = locate(self.settings.model, self.settings.cache_dir)
            engine = load_engine(model, self.settings.engine)
        except ModelError as exc:
            log.error("model unavailable: %s", exc)
            self.engine_future.set_exception(exc)
            self.send_status("error", str(exc))
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=f"offpilot: {exc}")
            )
            return
        log.info("model %s ready in %.2f s", engine.name, time.monotonic() - started)
        self.engine_future.set_result(engine)
        self.send_status("ready")

    def send_status(self, state: str, message: str = "") -> None:
        """Tell the client what the server is doing (loading, ready, busy, error)."""
        self.protocol.notify(STATUS_METHOD, {"state": state, "message": message})

    def run_completion(
        self, request: CompletionRequest, engine: Engine, cancel: threading.Event
    ) -> CompletionResult:
        """Run the pipeline in a worker thread, one generation at a time."""
        with self.generation_lock:
            if cancel.is_set():
                return CompletionResult("", "cancelled")
            return complete(engine, request, self.settings.completion, cancel)


def create_server(
    settings: ServerSettings | None = None, engine: Engine | None = None
) -> OffpilotServer:
    """Build the server and register its handlers."""
    server = OffpilotServer(settings or ServerSettings(), engine)

    @server.feature(types.INITIALIZED)
    def on_initialized(ls: OffpilotServer, _params: types.InitializedParams) -> None:
        ls.start_loading()

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: OffpilotServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        return await handle_inline_completion(ls, params)

    return server


async def handle_inline_completion(
    ls: OffpilotServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    """Document + position -> pipeline -> one inline item (or none)."""
    rid = next(ls.request_ids)
    empty = types.InlineCompletionList(items=[])
    uri = params.text_document.uri
    doc = ls.workspace.text_documents.get(uri)
    if doc is None:
        log.info("req %d: %s is not open", rid, uri)
        return empty
    if doc.language_id and doc.language_id not in LANGUAGES:
        return empty
    encoding = str(getattr(ls.workspace.position_encoding, "value", "utf-16"))
    text = doc.source
    offset = offset_at(text, params.position.line, params.position.character, encoding)
    try:
        engine = await asyncio.wrap_future(ls.engine_future)
    except ModelError:
        return empty
    if previous := ls.in_flight.get(uri):
        previous.set()  # a newer request for this document supersedes the one in flight
    cancel = threading.Event()
    ls.in_flight[uri] = cancel
    request = CompletionRequest(text, offset, doc.language_id or "python", doc.path)
    try:
        result = await asyncio.to_thread(ls.run_completion, request, engine, cancel)
    except asyncio.CancelledError:
        cancel.set()
        log.info("req %d: cancelled", rid)
        raise
    except Exception:
        log.exception("req %d: completion failed", rid)
        return empty
    finally:
        if ls.in_flight.get(uri) is cancel:
            del ls.in_flight[uri]
    stages = " ".join(f"{k}={v:.0f}ms" for k, v in result.timings_ms.items())
    log.info(
        "req %d: %s:%d:%d %d prompt tokens, %d new, stop=%s %s -> %r",
        rid, uri, params.position.line, params.position.character,
        result.prompt_tokens, result.generated_tokens, result.stop_reason, stages, result.text,
    )  # fmt: skip
    if not result.text or cancel.is_set():
        return empty
    at = types.Range(start=params.position, end=params.position)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=result.text, range=at)]
    )


def configure_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Log to stderr (or a file): stdout carries the protocol."""
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("pygls").setLevel(logging.WARNING)


def run_server(args: argparse.Namespace) -> int:
    """`offpilot serve`: stdio by default, or `--tcp HOST:PORT`."""
    configure_logging(args.log_level, args.log_file)
    server = create_server(ServerSettings(model=args.model, cache_dir=args.cache_dir))
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0
