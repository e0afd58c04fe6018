"""`offpilot serve`: logging kept off stdout, then the server over stdio or loopback TCP."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from typing import BinaryIO

from lsp_server.server import ServerSettings, create_server
from lsp_server.transport import parse_endpoint, serve_tcp, token_from_env


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


def protocol_stdout() -> BinaryIO:
    """The protocol's own copy of stdout; file descriptor 1 then points at stderr.

    Native code in this process may write to fd 1 or take it over: llama.cpp's Python
    binding points fds 1 and 2 at /dev/null while a model loads, and every LSP message the
    server wrote meanwhile was lost (a request sent during the load never got its answer).
    On a descriptor of its own the protocol is out of their reach; a stray write lands in
    the log.
    """
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = open(os.dup(2), "w", encoding="utf-8", errors="replace")  # noqa: SIM115
    return open(private, "wb")


def run_server(args: argparse.Namespace) -> int:
    """`offpilot serve`: stdio by default, or `--tcp HOST:PORT` (loopback, with a token)."""
    configure_logging(args.log_level, args.log_file)
    try:
        tcp = (parse_endpoint(args.tcp), token_from_env()) if args.tcp else None
    except ValueError as exc:
        print(f"offpilot serve: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.backend:
        from completion.engines.remote import parse_backend_url

        try:
            parse_backend_url(args.backend)
        except ValueError as exc:
            print(f"offpilot serve: {exc}", file=sys.stderr)  # noqa: T201
            return 2
    server = create_server(
        ServerSettings(model=args.model, cache_dir=args.cache_dir, backend=args.backend)
    )
    atexit.register(server.quiesce, 30.0)  # also when the client exits without shutdown
    if tcp:
        serve_tcp(server, *tcp)
    else:
        server.start_io(stdout=protocol_stdout())
    return server.exit_code
