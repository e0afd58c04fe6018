"""The real server over stdio picks its model from the cache only, and checks its sha256."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import start_server
from pytest_lsp import LanguageClient

from completion.models.specs import DEFAULT_MODEL
from completion.models.store import STAMP_NAME, InstalledModel


def _copy(model: InstalledModel, dst: Path) -> Path:
    shutil.copytree(model.path, dst, ignore=shutil.ignore_patterns(f"{STAMP_NAME}*"))
    return dst


async def _settled(client: LanguageClient) -> dict[str, Any]:
    """The status the model load ended in (ready or error)."""
    for _ in range(300):
        statuses = client.statuses  # type: ignore[attr-defined]
        if statuses and statuses[-1]["state"] in ("ready", "error"):
            return dict(statuses[-1])
        await asyncio.sleep(0.1)
    raise AssertionError(f"the model load did not settle: {client.statuses}")  # type: ignore[attr-defined]


async def test_a_repository_directory_does_not_stand_in_for_the_default_model(
    tiny_model: InstalledModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The editor started inside a repository that holds `qwen2.5-coder-0.5b/`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy(tiny_model, repo / DEFAULT_MODEL)
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.chdir(repo)  # the server inherits it as its working directory
    client = await start_server("--cache-dir", str(cache))
    try:
        status = await _settled(client)
        assert status["state"] == "error"
        assert "not installed" in status["message"]
        assert str(cache) in status["message"]
    finally:
        await client.shutdown_session()


async def test_a_same_size_replaced_model_file_is_an_error_status(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    model = _copy(tiny_model, tmp_path / "tiny")
    weights = model / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    client = await start_server("--model", "tiny", "--cache-dir", str(tmp_path))
    try:
        status = await _settled(client)
        assert status["state"] == "error"
        assert "sha256" in status["message"]
    finally:
        await client.shutdown_session()
