"""The real llama.cpp server (llama-cpp-python[server], built by tests/backend/setup.sh).

Missing (not built, or no GGUF), the tests that need it skip loudly, or fail under
`OFFPILOT_REQUIRE_REAL_MODEL=1` (`make test`), as the real-model tests do.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from completion.models.specs import DEFAULT_MODEL
from completion.models.store import gguf_path

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
HINT = "run `make backend-setup` (tests/backend/setup.sh and `offpilot model gguf`)"


def _missing(what: str) -> None:
    if os.environ.get("OFFPILOT_REQUIRE_REAL_MODEL") == "1":
        pytest.fail(f"the llama.cpp backend is required: {what}; {HINT}")
    pytest.skip(f"LLAMA.CPP BACKEND NOT BUILT, test skipped: {what}; {HINT}")


def llama_python() -> Path:
    """The Python of the cached llama-cpp-python venv (the `llama` extra's version)."""
    pinned = re.search(r'"llama-cpp-python==([0-9.]+)"', PYPROJECT.read_text())
    assert pinned, "pyproject.toml pins no llama-cpp-python version"
    cache = os.environ.get("OFFPILOT_E2E_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offpilot-e2e"
    )
    return Path(cache) / f"llama-server-{pinned.group(1)}" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """llama.cpp's OpenAI-compatible server on a loopback port, to start, kill and restart."""

    def __init__(self, python: Path, gguf: Path, log: Path, port: int | None = None) -> None:
        self.python, self.gguf, self.log = python, gguf, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        cmd = [
            str(self.python), "-m", "llama_cpp.server", "--model", str(self.gguf),
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
            "--n_threads", "2", "--n_threads_batch", "2",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(
            f"llama server not ready in {timeout_s} s: {self.log.read_text()[-2000:]}"
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def llama_at(tmp: Path) -> LlamaServer:
    """A server (not started) on the real GGUF, its log in `tmp`; skips or fails when missing."""
    python, gguf = llama_python(), gguf_path(DEFAULT_MODEL)
    if not python.is_file():
        _missing(f"no llama-cpp-python server at {python}")
    if not gguf.is_file():
        _missing(f"no GGUF at {gguf}")
    return LlamaServer(python, gguf, tmp / "llama-server.log")
