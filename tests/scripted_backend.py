"""A real HTTP server on loopback that answers `POST /v1/completions` as a test scripts it.

It stands in for a broken or slow OpenAI-compatible server (the real one, llama.cpp, is in
tests/backend/): garbage, HTTP 500, a stream cut short, silence, an endless stream. It
records each request's body and headers, and whether the client closed the connection
before the answer was done (`closed_early`), which is how a test sees cancellation reach
the server.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closed its connection (the point of most tests) is no error here."""


class ScriptedBackend:
    """`mode` is what each request gets; `pieces` the texts an SSE answer streams.

    Modes: sse (pieces, then [DONE]), json (one application/json body), endless (a piece
    every `delay_s` until the client goes), silent (headers never come), garbage (SSE data
    that is not JSON), shape (JSON without choices), http500, cut (pieces, then the socket
    closes without [DONE]), choices (`n` choices per chunk, for `sample`), unauthorized (HTTP
    401 whose body quotes the request's Authorization header, as some proxies do).
    `logprobs` adds each piece's log-prob, -0.25 a piece, in OpenAI's legacy shape
    (`legacy`: `token_logprobs`) or llama.cpp's (`content`); "" sends none (Ollama).
    """

    def __init__(
        self,
        mode: str = "sse",
        pieces: tuple[str, ...] = ("a", " +", " b"),
        delay_s: float = 0.0,
        finish_reason: str = "stop",
        logprobs: str = "",
    ) -> None:
        self.mode = mode
        self.logprobs = logprobs
        self.pieces = pieces
        self.delay_s = delay_s
        self.finish_reason = finish_reason
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.closed_early = threading.Event()  # the client left before the answer was done
        self.closed_at: float | None = None
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet: the tests read the records
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                backend.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                backend.headers.append(dict(self.headers.items()))
                try:
                    backend.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    backend.client_left()

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def client_left(self) -> None:
        if not self.closed_early.is_set():
            self.closed_at = time.monotonic()
            self.closed_early.set()

    # -- answers ---------------------------------------------------------------------------
    def answer(self, h: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "http500":
            body = b'{"error": "boom"}'
            h.send_response(500)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        if mode == "unauthorized":
            auth = h.headers.get("Authorization", "")
            refusal = json.dumps({"error": f"invalid credentials: {auth!r}"}).encode()
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(refusal)))
            h.end_headers()
            h.wfile.write(refusal)
            return
        if mode == "silent":  # read until the client closes; answer nothing
            h.connection.settimeout(30)
            try:
                while h.connection.recv(1024):
                    pass
            except (TimeoutError, OSError):
                pass
            self.client_left()
            return
        if mode == "json":
            text = "".join(self.pieces)
            body = json.dumps({"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body.encode())
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if mode == "garbage":
            self._chunk(h, "data: <html>not json</html>\n\n")
        elif mode == "shape":
            self._chunk(h, 'data: {"object": "text_completion"}\n\n')
        elif mode == "endless":
            while True:
                self._event(h, self.pieces[0])
                time.sleep(self.delay_s or 0.01)
        else:
            n = int(self.requests[-1].get("n", 1)) if mode == "choices" else 1
            for i, piece in enumerate(self.pieces):
                time.sleep(self.delay_s)
                last = i == len(self.pieces) - 1
                finish = self.finish_reason if last and mode != "cut" else None
                self._event(h, piece, n, finish)
            if mode == "cut":
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
                return
        self._chunk(h, "data: [DONE]\n\n")
        h.wfile.write(b"0\r\n\r\n")

    def _event(self, h: BaseHTTPRequestHandler, text: str, n: int = 1, finish: Any = None) -> None:
        choices: list[dict[str, Any]] = [
            {"index": i, "text": text, "finish_reason": finish} for i in range(n)
        ]
        for choice in choices:
            if self.logprobs == "legacy":
                choice["logprobs"] = {"tokens": [text], "token_logprobs": [-0.25]}
            elif self.logprobs == "content":
                choice["logprobs"] = {"content": [{"token": text, "logprob": -0.25}]}
        self._chunk(h, f"data: {json.dumps({'choices': choices})}\n\n")

    @staticmethod
    def _chunk(h: BaseHTTPRequestHandler, data: str) -> None:
        raw = data.encode()
        h.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
        h.wfile.flush()

    def close(self) -> None:
        """Stop serving (connections in progress end with their handler threads)."""
        self._server.shutdown()
        self._server.server_close()
