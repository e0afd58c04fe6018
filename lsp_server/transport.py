"""`offpilot serve --tcp`: a loopback listener that serves one client holding a token.

pygls' own `start_tcp` listens on any address, accepts anyone, hands every new connection
the protocol's writer (the editor's replies) and ends the server when any connection
closes. Here the address must be a loopback one, and a connection must open with an
`initialize` request whose `initializationOptions.token` is the server's token; anything
else (no token, a wrong one, another message first, a second client) is closed without a
reply, and the server keeps serving its client. The token comes from `$OFFPILOT_TCP_TOKEN`,
else it is random and written to a file only this user can read. When the client leaves,
however it leaves (`exit`, a close, a reset from an editor killed mid-reply), the server
ends, as it does over stdio: it never lingers with its model loaded and its slot taken.

Before a connection has shown the token it costs little: its first message is at most
FIRST_MESSAGE_MAX_BYTES and must come within FIRST_MESSAGE_TIMEOUT_S, and at most
MAX_PENDING connections wait for theirs; one more is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pygls.io_ import run_async
from pygls.lsp.server import LanguageServer

from lsp_server.framing import GuardedAsyncReader
from lsp_server.stats import state_dir

log = logging.getLogger("offpilot.transport")

TOKEN_ENV = "OFFPILOT_TCP_TOKEN"
MIN_TOKEN_CHARS = 16
FIRST_MESSAGE_MAX_BYTES = 256 << 10  # an initialize request is a few KB (VS Code's: ~12 KB)
FIRST_MESSAGE_TIMEOUT_S = 10.0
MAX_PENDING = 8  # connections reading their first message at once
SETTLE_S = 2.0  # at the end, for requests still running
MAX_HEADER_LINES = 16


@dataclass(frozen=True)
class Endpoint:
    """Where to listen: a loopback host and a port (0: any free port)."""

    host: str
    port: int


def parse_endpoint(spec: str) -> Endpoint:
    """`HOST:PORT` (HOST defaults to 127.0.0.1) -> Endpoint; ValueError unless HOST is loopback."""
    host, _, port_text = spec.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"--tcp {spec}: {host} is not a loopback address; the server listens on this "
            "machine only (127.0.0.1, ::1 or localhost)"
        )
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--tcp {spec}: the port must be a number from 0 to 65535")
    return Endpoint(host, int(port_text))


def token_from_env() -> str | None:
    """The token given in `$OFFPILOT_TCP_TOKEN`, if any; ValueError if it is too short."""
    token = os.environ.get(TOKEN_ENV)
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"${TOKEN_ENV} must have at least {MIN_TOKEN_CHARS} characters")
    return token


def write_token_file(token: str, port: int) -> Path:
    """Write the token to `<state dir>/tcp-<port>.token`, readable by this user only."""
    directory = state_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"tcp-{port}.token"
    fd, tmp = tempfile.mkstemp(prefix=".tcp-token.", dir=directory)  # mode 0600
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return path


def authorise(message: Any, token: str) -> bool:
    """Whether `message` is an `initialize` carrying `token`; the token is removed from it."""
    if not (isinstance(message, dict) and message.get("method") == "initialize"):
        return False
    params = message.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    given = options.pop("token", None) if isinstance(options, dict) else None
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


async def read_first_message(reader: asyncio.StreamReader) -> Any:
    """One LSP frame, small and parsed; ValueError for anything else."""
    length = None
    for _ in range(MAX_HEADER_LINES):
        line = await reader.readline()  # ValueError past the reader's 64 KiB line limit
        if not line.endswith(b"\r\n"):
            raise ValueError("connection closed in the headers")
        if line == b"\r\n":
            break
        name, _, value = line.decode("ascii", "replace").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip()) if value.strip().isdigit() else -1
    else:
        raise ValueError("too many header lines")
    if length is None or not 0 < length <= FIRST_MESSAGE_MAX_BYTES:
        raise ValueError(f"bad Content-Length for a first message: {length}")
    return json.loads(await reader.readexactly(length))


class LoopWriter:
    """The connection's writer, used from the event loop thread only.

    pygls writes a notification in the calling thread; the model-load and generation
    threads' messages are handed to the loop rather than written into asyncio's transport
    from outside it.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def write(self, data: bytes) -> None:
        """Write now on the loop thread, else hand the bytes to the loop."""
        if threading.get_ident() == self._thread:
            self._writer.write(data)
        else:
            self._loop.call_soon_threadsafe(self._writer.write, data)

    def close(self) -> None:
        """Close the connection (pygls' `exit`)."""
        self._writer.close()


class TokenGate:
    """Serves the first connection that proves it holds the token; closes every other."""

    def __init__(self, server: LanguageServer, token: str, stop: threading.Event) -> None:
        self.server = server
        self.token = token
        self.stop = stop
        self.taken = False
        self.pending = 0  # connections still reading their first message

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve this connection if it opens with the token, else close it unanswered."""
        peer = writer.get_extra_info("peername")
        if self.pending >= MAX_PENDING:  # each may buffer a first message: bound them all
            log.warning("tcp: refused a connection from %s: too many connections waiting", peer)
            writer.close()
            return
        self.pending += 1
        try:
            first = await asyncio.wait_for(read_first_message(reader), FIRST_MESSAGE_TIMEOUT_S)
            refusal = self._refusal(first)
        except (TimeoutError, ValueError, RecursionError, OSError, EOFError) as exc:
            refusal = f"bad first message ({type(exc).__name__}: {exc})"
        finally:
            self.pending -= 1
        if refusal is not None:
            log.warning("tcp: refused a connection from %s: %s", peer, refusal)
            writer.close()
            return
        self.taken = True
        log.info("tcp: client %s connected", peer)
        protocol = self.server.protocol
        protocol.set_writer(LoopWriter(writer))
        protocol.handle_message(
            json.loads(json.dumps(first), object_hook=protocol.structure_message)
        )
        how = "left"
        try:
            await run_async(
                stop_event=self.stop,
                reader=GuardedAsyncReader(reader),
                protocol=protocol,
                logger=log,
                error_handler=self.server.report_server_error,
            )
        except (OSError, EOFError) as exc:  # a reset; EOF inside a frame (IncompleteReadError)
            how = f"was lost ({type(exc).__name__}: {exc})"
        finally:  # whatever the ending, the server ends: no zombie holding the model and slot
            log.info("tcp: client %s %s", peer, how)
            self.server.shutdown()  # type: ignore[no-untyped-call]  # pygls: unannotated

    def _refusal(self, first: Any) -> str | None:
        """Why this connection is refused, or None to serve it."""
        if self.taken:
            return "a client is already connected"
        if not authorise(first, self.token):
            return "no valid token in initialize's initializationOptions"
        return None


def serve_tcp(server: LanguageServer, endpoint: Endpoint, token: str | None) -> None:
    """Listen on `endpoint` until the authorised client leaves (`token` None: a random one)."""
    stop = threading.Event()
    server._stop_event = stop  # what pygls' `shutdown` (the `exit` notification) sets
    gate = TokenGate(server, token or secrets.token_urlsafe(32), stop)

    async def listen() -> None:
        listener = await asyncio.start_server(gate.connection, endpoint.host, endpoint.port)
        server._server = listener  # closed by pygls' `shutdown`
        host, port = listener.sockets[0].getsockname()[:2]
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        with _token_file(gate.token, port, given=token is not None) as where:
            _announce(f"listening on {address}; the client must send {where}")
            with contextlib.suppress(asyncio.CancelledError):
                async with listener:
                    await listener.serve_forever()
        await _settle(SETTLE_S)

    asyncio.run(listen())


async def _settle(timeout_s: float) -> None:
    """Give requests still running a moment to end on their own.

    `asyncio.run` cancels what is left, and pygls then logs each cancelled request as an
    error with its traceback: a client that vanished mid-request is not a server error.
    """
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=timeout_s)


@contextlib.contextmanager
def _token_file(token: str, port: int, given: bool) -> Iterator[str]:
    """Where the client finds the token, as a phrase; a written token file is removed after."""
    if given:
        yield f"${TOKEN_ENV} as initializationOptions.token"
        return
    path = write_token_file(token, port)
    try:
        yield f"initializationOptions.token, the content of {path} (mode 0600)"
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _announce(message: str) -> None:
    """On stderr even when the log goes to a file: the user needs it to connect."""
    print(f"offpilot: {message}", file=sys.stderr, flush=True)  # noqa: T201
