"""`RemoteEngine`: generation by any OpenAI-compatible completions server (llama.cpp, vLLM, Ollama).

The pipeline stays local: context, prompt, stop rules, post-processing and caches are the
same as with `CT2Engine`. Only the generation moves: the prompt the pipeline built is sent
as text in the family's own format (special tokens written out, which llama.cpp and vLLM
parse back), streamed back as SSE, and each text delta is turned into ids with the model
family's local tokenizer, so `Stream` and the stop rules work unchanged.

The HTTP request is read in its own thread and handed over through a queue that the caller
polls, so a cancel or the time budget ends a stream even while the server has sent nothing
yet; closing the stream shuts the socket down, and the server stops generating. Any failure
of the server (down, slow, an HTTP error, a body that is not the expected SSE, a stream cut
short) ends the stream with `StopReason.BACKEND_ERROR`, one log line and `last_error`: the
completion is empty, never an exception or a hang. A request that the time budget ends
before the server sent anything is recorded the same way (a server that accepts and never
answers), though its stop reason stays `time_budget`. The API key is checked when it is
read, and no error text (log line or `last_error`) ever shows it. Only the standard library
is used.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import queue
import socket
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from completion.engines.interface import (
    UNKNOWN_LOG_PROB,
    GenerationParams,
    HypothesisTracker,
    Samples,
    Stream,
    TokenStep,
    repeat_greedy,
)
from completion.models.store import InstalledModel, ModelError
from completion.models.tokenizer import ModelTokenizer, TokenizedEngine
from completion.stops import StopReason, StopRule

log = logging.getLogger(__name__)

COMPLETIONS_PATH = "/v1/completions"
# how a request can end that ends every hypothesis it was feeding, finished or not
_ENDS_EVERY_SLOT = (StopReason.BACKEND_ERROR, StopReason.CANCELLED, StopReason.TIME_BUDGET)


@dataclass(frozen=True)
class RemoteOptions:
    """Where the server is and how long to wait for it."""

    url: str
    # the NAME of the environment variable holding the API key (never the key itself)
    api_key_env: str | None = None
    # the `model` field of the request: vLLM and Ollama route by it; llama.cpp ignores it
    model: str | None = None
    connect_timeout_s: float = 3.0
    # with no time budget (an eval run), this long without a byte from the server is an error
    idle_timeout_s: float = 60.0
    poll_s: float = 0.02  # how often a waiting stream looks at cancel and the clock


@dataclass(frozen=True)
class Endpoint:
    """A parsed backend URL: scheme, host, port and the completions path."""

    scheme: str
    host: str
    port: int | None
    path: str

    def connection(self, timeout_s: float) -> http.client.HTTPConnection:
        """A new, unopened connection to the server."""
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout_s)


def parse_backend_url(url: str) -> Endpoint:
    """`http(s)://host[:port][/prefix]` -> its endpoint; ValueError names what is wrong.

    The completions path is `{prefix}/v1/completions`; a prefix already ending in `/v1` is
    not doubled.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"backend {url!r} is not an http(s)://HOST[:PORT] URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"backend {url!r} has a bad port ({exc})") from None
    prefix = parts.path.rstrip("/")
    path = prefix + ("/completions" if prefix.endswith("/v1") else COMPLETIONS_PATH)
    return Endpoint(parts.scheme, parts.hostname, port, path)


class BackendError(Exception):
    """The server failed or answered something that is not a completion stream."""


# What the reader thread hands over: ("text", choice index, (text, log-prob)),
# ("end", reason, None), ("error", message, None).
_Event = tuple[str, Any, Any]


class Completion:
    """One streaming `POST /v1/completions`, read in a thread; `events()` yields the texts.

    `reason` says why it ended (END_TOKEN, MAX_TOKENS, CANCELLED, TIME_BUDGET or
    BACKEND_ERROR) and `error` what went wrong. `close()` shuts the socket down: the server
    sees the connection go and stops generating.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        headers: dict[str, str],
        options: RemoteOptions,
        cancel: threading.Event | None,
        deadline: float | None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.reason: str | None = None
        self.error: str | None = None
        self._options = options
        self._secrets = tuple(secret for secret in secrets if secret)
        # set by the reader thread: how far the request got (for a budget that ran out)
        self._connected = threading.Event()
        self._heard = threading.Event()  # the status line and headers came
        self._cancel = cancel
        self._deadline = deadline
        self._events: queue.Queue[_Event] = queue.Queue()
        self._closed = threading.Event()
        self._conn = endpoint.connection(options.connect_timeout_s)
        self._payload = json.dumps(body).encode("utf-8")
        self._headers = headers
        self._endpoint = endpoint
        self._thread = threading.Thread(target=self._read, name="offpilot-backend", daemon=True)
        self._thread.start()

    # -- the reader thread -----------------------------------------------------------------
    def _read(self) -> None:
        conn = self._conn
        try:
            self._request(conn)
        except Exception as exc:
            if self._closed.is_set():
                pass  # closed by the caller: what the interrupted read raised is no failure
            elif isinstance(exc, BackendError):
                self._events.put(("error", str(exc), None))
            elif isinstance(exc, OSError | http.client.HTTPException):
                self._events.put(("error", _describe(exc), None))
            else:  # a bug here must end the stream, not hang it; its text may quote a header
                trace = "".join(traceback.format_exception(exc))
                log.error("reading the backend's answer failed\n%s", self.redact(trace.rstrip()))
                self._events.put(("error", f"{type(exc).__name__}: {exc}", None))
        finally:  # only this thread closes the connection: http.client is not thread-safe
            with contextlib.suppress(Exception):
                conn.close()

    def _request(self, conn: http.client.HTTPConnection) -> None:
        conn.connect()
        self._connected.set()
        if self._closed.is_set():
            return
        if conn.sock is not None:  # from here on: bounded by close(), the budget or the idle cap
            conn.sock.settimeout(self._options.idle_timeout_s)
        conn.request("POST", self._endpoint.path, body=self._payload, headers=self._headers)
        response = conn.getresponse()
        self._heard.set()
        if response.status != 200:
            detail = response.read(300).decode("utf-8", "replace").strip()
            raise BackendError(f"HTTP {response.status} {response.reason}: {detail[:200]}")
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if kind == "application/json":  # a server that ignored `stream`: one JSON body
            self._whole(_json(response.read(1 << 24), "response"))
            return
        self._sse(response)

    def _sse(self, response: http.client.HTTPResponse) -> None:
        """Parse `data:` lines until `[DONE]`; a stream that stops short of it is an error."""
        finished: str | None = None
        while True:
            line = response.readline(1 << 20)
            if not line:
                if finished is None:
                    raise BackendError("the stream ended before [DONE] (connection cut?)")
                self._events.put(("end", finished, None))
                return
            text = line.decode("utf-8", "replace").strip()
            if not text or text.startswith(":") or not text.startswith("data:"):
                continue  # blank separators, comments, `event:`/`id:` fields
            data = text[5:].strip()
            if data == "[DONE]":
                self._events.put(("end", finished or StopReason.END_TOKEN, None))
                return
            reason = self._chunk(_json(data.encode("utf-8"), "SSE data"))
            finished = reason or finished

    def _whole(self, payload: Any) -> None:
        reason = self._chunk(payload)
        self._events.put(("end", reason or StopReason.END_TOKEN, None))

    def _chunk(self, payload: Any) -> str | None:
        """Hand over one chunk's texts; the stop reason when a choice finished."""
        if isinstance(payload, dict) and "error" in payload:
            raise BackendError(f"the server reports an error: {str(payload['error'])[:200]}")
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list):
            raise BackendError(f"not a completion chunk (no choices list): {str(payload)[:200]}")
        finished = None
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), str):
                raise BackendError(f"a choice without text: {str(choice)[:200]}")
            index = choice.get("index", position)
            if isinstance(choice.get("text"), str) and choice["text"]:
                where = index if isinstance(index, int) else position
                self._events.put(("text", where, (choice["text"], _log_prob(choice))))
            if choice.get("finish_reason") == "length":
                finished = StopReason.MAX_TOKENS
            elif choice.get("finish_reason"):
                finished = finished or StopReason.END_TOKEN
        return finished

    # -- the caller's side -----------------------------------------------------------------
    def events(self) -> Iterator[tuple[int, tuple[str, float]]]:
        """(choice index, (text, log-prob)) as they arrive; ends with `reason` set, never hangs."""
        while self.reason is None:
            try:
                kind, a, b = self._events.get(timeout=self._options.poll_s)
            except queue.Empty:
                kind, a, b = "wait", None, None
            # on every item, not only when the queue is empty: a server that keeps streaming
            # (a choice already finished) must not outlast the budget or a cancel
            if self._cancel is not None and self._cancel.is_set():
                self._end(StopReason.CANCELLED)
            elif self._deadline is not None and time.monotonic() > self._deadline:
                if not self._heard.is_set():  # a server that accepts and never answers
                    self.error = self._silence()
                self._end(StopReason.TIME_BUDGET)
            elif kind == "text":
                yield a, b
            elif kind == "end":
                self._end(a)
            elif kind == "error":
                self.error = self.redact(str(a))
                self._end(StopReason.BACKEND_ERROR)

    def _silence(self) -> str:
        """What a budget that ran out before the server's first byte says about the server."""
        if not self._connected.is_set():
            return "no connection within the time budget (is the server reachable?)"
        return "the server accepted the request but sent nothing within the time budget"

    def redact(self, text: str) -> str:
        """`text` with every secret (the API key) masked, also as `repr` writes it."""
        for secret in self._secrets:
            for form in {secret, repr(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1]}:
                text = text.replace(form, "***")
        return text

    def _end(self, reason: str) -> None:
        self.reason = reason
        self.close()

    def close(self) -> None:
        """Shut the socket down now: the server sees the client go, the reader thread ends."""
        self._closed.set()  # set before the socket is read: see `_request`
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _log_prob(choice: dict[str, Any]) -> float:
    """The log-probability of a chunk's text: the sum over its tokens, NaN when not sent.

    Two shapes answer `logprobs`: OpenAI's legacy `token_logprobs` list (llama-cpp-python,
    vLLM) and llama.cpp's server, whose `content` entries carry `logprob`. Ollama's
    OpenAI-compatible endpoint sends neither: its answers have no confidence, and the gate
    shows them unscored.
    """
    probs = choice.get("logprobs")
    values: Any = None
    if isinstance(probs, dict):
        if isinstance(probs.get("token_logprobs"), list):
            values = probs["token_logprobs"]
        elif isinstance(probs.get("content"), list):
            values = [p.get("logprob") for p in probs["content"] if isinstance(p, dict)]
    if not values or not all(isinstance(v, int | float) for v in values):
        return UNKNOWN_LOG_PROB
    return float(sum(values))


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise BackendError(f"the {what} is not JSON: {data[:120]!r}") from None


def read_api_key(env_name: str | None) -> str | None:
    """The API key in `$env_name`, without surrounding whitespace; None when unset or blank.

    A key read from a file often ends in a line end (CR LF from Windows), which no header
    may carry: http.client would refuse it on every request and quote it in the error. So
    the ends are trimmed here, and a key still holding anything but visible ASCII is a
    `ModelError` that names the variable, never the value.
    """
    raw = os.environ.get(env_name) if env_name else None
    key = raw.strip() if raw else None
    if not key:
        return None
    if not all("!" <= ch <= "~" for ch in key):
        raise ModelError(
            f"backend API key: ${env_name} holds a character an HTTP header cannot carry "
            "(a space, a control character or non-ASCII); fix the variable (value not shown)"
        )
    return key


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "the server did not answer in time"
    return f"{type(exc).__name__}: {exc}"


def _steps(ids: Sequence[int], log_prob: float) -> list[TokenStep]:
    """A chunk's local ids, its log-prob on the first (the server's tokens are not ours)."""
    return [(token, log_prob if i == 0 else 0.0) for i, token in enumerate(ids)]


class _RemoteTokens:
    """A `Completion`'s texts as token ids of the local tokenizer, for `Stream`.

    `end_reason` tells `Stream` why the server's stream ended when it ends on its own.
    """

    def __init__(self, engine: RemoteEngine, completion: Completion) -> None:
        self._engine = engine
        self._completion = completion
        self._events = completion.events()
        self._pending: list[TokenStep] = []

    @property
    def end_reason(self) -> str | None:
        return self._completion.reason

    def __iter__(self) -> Iterator[TokenStep]:
        return self

    def __next__(self) -> TokenStep:
        while not self._pending:
            try:
                _index, (text, log_prob) = next(self._events)
            except StopIteration:
                self._engine.note_end(self._completion)
                raise
            self._pending = _steps(self._engine.encode(text), log_prob)
        return self._pending.pop(0)

    def close(self) -> None:
        self._completion.close()
        self._engine.note_end(self._completion)


class RemoteEngine(TokenizedEngine):
    """The `Engine` protocol over an OpenAI-compatible `/v1/completions` server.

    The tokenizer, FIM markers and stop tokens are the installed model's (its family's);
    the server must serve the same weights (for llama.cpp: the GGUF, `offpilot model gguf`).
    """

    def __init__(self, model: InstalledModel, options: RemoteOptions) -> None:
        try:
            self.endpoint = parse_backend_url(options.url)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        self.options = options
        self.name = model.manifest.name
        self.runtime = "remote"
        self.family = model.family
        self.fim = self.family.fim
        self.backend = options.url
        self.last_error: str | None = None  # the latest request's failure; None once one works
        self._tokens = ModelTokenizer(model)
        self._stop_tokens = self._tokens.stop_tokens
        self._stop_ids = self._tokens.stop_ids
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        self._secrets: tuple[str, ...] = ()
        key = read_api_key(options.api_key_env)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
            self._secrets = (key,)
        elif options.api_key_env:
            log.warning("backend API key: $%s is not set; sending none", options.api_key_env)

    # -- tokens ----------------------------------------------------------------------------
    def prompt_text(self, prompt_ids: Sequence[int]) -> str:
        """The prompt as the server reads it: special tokens (FIM markers) written out."""
        return self._tokens.decode(prompt_ids, special=True)

    # -- generation ------------------------------------------------------------------------
    def _body(self, prompt_ids: Sequence[int], params: GenerationParams, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": self.prompt_text(prompt_ids),
            "max_tokens": params.max_new_tokens,
            "temperature": max(0.0, params.temperature),
            "stop": self._stop_tokens,
            "stream": True,
            "logprobs": 1,  # the chosen token's log-prob: the gate's evidence (`_log_prob`)
        }
        if self.options.model:
            body["model"] = self.options.model
        if params.temperature > 0:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        if n > 1:
            body["n"] = n
        return body

    def _start(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None,
        n: int = 1,
        started: float | None = None,
    ) -> Completion:
        begun = time.monotonic() if started is None else started
        budget = params.time_budget_s
        deadline = None if budget is None else begun + budget
        body = self._body(prompt_ids, params, n)
        return Completion(
            self.endpoint, body, self._headers, self.options, cancel, deadline, self._secrets
        )

    def note_end(self, completion: Completion) -> None:
        """Record how a request ended: a failure is logged once and kept in `last_error`.

        A failure is a `BACKEND_ERROR`, or a time budget that ran out before the server sent
        a byte (`Completion.error` is set then too).
        """
        if completion.error is not None and completion.reason != StopReason.CANCELLED:
            if completion.error != self.last_error:
                log.warning("backend %s failed: %s", self.backend, completion.error)
            self.last_error = completion.error
        elif completion.reason is not None and completion.reason != StopReason.CANCELLED:
            if self.last_error is not None:
                log.info("backend %s answers again", self.backend)
            self.last_error = None

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        static_len: int = 0,
    ) -> Stream:
        """Stream ids of the server's text; closing it closes the HTTP connection.

        `static_len` is not sent: llama.cpp keeps its context and reuses the longest
        common prefix of the next prompt by itself.
        """
        completion = self._start(prompt_ids, params, cancel)
        return Stream(_RemoteTokens(self, completion), params, self._stop_ids, cancel)

    def sample(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        n: int,
        stop_rule: StopRule | None = None,
        cancel: threading.Event | None = None,
    ) -> Samples:
        """`n` hypotheses: one request with the server's `n`, then one request per missing one.

        llama.cpp answers one choice whatever `n` says; vLLM answers `n`. Each hypothesis
        obeys the stop rules, the token cap, the time budget (over all requests) and cancel.
        """
        greedy = params.temperature <= 0
        count = 1 if greedy else n  # greedy hypotheses are all the same: ask for one
        tracker = HypothesisTracker(count, self.decode, params, self._stop_ids, stop_rule, cancel)
        seen: set[int] = set()
        first = self._start(prompt_ids, params, cancel, count, tracker.started)
        self._feed(first, tracker, range(count), seen)
        for i in range(count):
            if i in seen or first.reason == StopReason.BACKEND_ERROR:
                continue
            if (cancel is not None and cancel.is_set()) or tracker.reason[i] is not None:
                continue
            single = self._start(prompt_ids, params, cancel, 1, tracker.started)
            self._feed(single, tracker, [i], seen)
        return repeat_greedy(tracker.result(), n)

    def _feed(
        self,
        completion: Completion,
        tracker: HypothesisTracker,
        slots: Sequence[int],
        seen: set[int],
    ) -> None:
        """Feed a completion's choices into the tracker slots (choice k -> slots[k])."""
        try:
            for index, (text, log_prob) in completion.events():
                if not 0 <= index < len(slots):
                    continue
                slot = slots[index]
                seen.add(slot)
                finished = False
                for token, token_log_prob in _steps(self.encode(text), log_prob):
                    finished = tracker.feed(slot, token, token_log_prob)
                    if finished:
                        break
                if all(tracker.reason[s] is not None for s in slots):
                    break
        finally:
            completion.close()
            self.note_end(completion)
        if completion.reason in _ENDS_EVERY_SLOT:
            for slot in slots:
                if tracker.reason[slot] is None:
                    tracker.reason[slot] = completion.reason


def load_remote(model: InstalledModel, options: RemoteOptions) -> RemoteEngine:
    """A `RemoteEngine` for `model`'s family at `options.url`; a server that is down is logged."""
    engine = RemoteEngine(model, options)
    log.info("model %s generated by the backend %s", engine.name, options.url)
    return engine
