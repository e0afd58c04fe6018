"""`offpilot serve`: logging kept off stdout, then the server over stdio or loopback TCP."""

from __future__ import annotations

import argparse
import atexit
import logging
import sys

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
        server.start_io()
    return server.exit_code
