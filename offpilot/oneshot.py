"""`offpilot complete FILE LINE COLUMN`: one completion, printed to stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from completion.engines.choose import open_engine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, complete
from completion.positions import offset_at

MAX_FILE_BYTES = 50 * 1024 * 1024


def complete_file(args: argparse.Namespace) -> int:
    """Print the completion at (line, UTF-16 column) of a file; exit 1 on unreadable input."""
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            print(f"offpilot: {path} is larger than {MAX_FILE_BYTES} bytes", file=sys.stderr)  # noqa: T201
            return 1
        data = path.read_bytes()
    except OSError as exc:
        print(f"offpilot: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)  # noqa: T201
        return 1
    if b"\x00" in data[:8192]:
        print(f"offpilot: {path} looks binary; nothing to complete", file=sys.stderr)  # noqa: T201
        return 1
    text = data.decode("utf-8", errors="replace")
    engine = open_engine(args.model, cache_dir=args.cache_dir, backend=args.backend)
    request = CompletionRequest(text, offset_at(text, args.line, args.column), path=str(path))
    options = CompletionOptions(time_budget_s=args.time_budget, gate=args.gate)
    result = complete(engine, request, options)
    if result.gated:
        score = (result.verdict.score if result.verdict else None) or 0.0
        note = f"the gate ({args.gate}) hid an unsure answer (score {score:.2f})"
        print(f"offpilot: {note}; --gate off prints it", file=sys.stderr)  # noqa: T201
    sys.stdout.write(result.text + "\n")
    return 0
