"""Fixtures of the backend tests: the real llama.cpp server (tests/backend/llama_helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))  # lsp_helpers: the real LSP client

from llama_helpers import LlamaServer, llama_at


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One llama.cpp server with the real 0.5B GGUF for the session."""
    server = llama_at(tmp_path_factory.mktemp("llama"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def own_llama(tmp_path: Path) -> Iterator[LlamaServer]:
    """A llama.cpp server of the test's own, not started: the test kills and restarts it."""
    server = llama_at(tmp_path)
    yield server
    server.kill()
