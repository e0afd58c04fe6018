"""Shared fixtures: a tiny real CTranslate2 model, the real default model, the shared data."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from completion.models.store import InstalledModel, ModelError, installed_gguf, locate

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers the tests start keep their statistics here, never in the user's own state.

    The user's accept/reject record moves the gate's threshold (completion/gate.py): a test
    must not read it, nor add to it. A test that sets OFFPILOT_STATE_DIR itself still wins.
    """
    path = tmp_path_factory.mktemp("state")
    before = os.environ.get("OFFPILOT_STATE_DIR")
    os.environ["OFFPILOT_STATE_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("OFFPILOT_STATE_DIR", None)
    else:
        os.environ["OFFPILOT_STATE_DIR"] = before


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Hugging Face Qwen2 checkpoint built by the test suite."""
    from tiny_model import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-hf") / "tiny-qwen2")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache directory private to this test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path, tiny_cache: Path) -> InstalledModel:
    """The tiny checkpoint converted by `install_from_hf` into CTranslate2 int8."""
    from completion.models.install import install_from_hf

    return install_from_hf(str(tiny_checkpoint), "tiny", tiny_cache, log=lambda _m: None).model


@pytest.fixture(scope="session")
def tiny_starcoder_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPTBigCode (StarCoder format) checkpoint with a known answer (tests/tiny_model.py)."""
    from tiny_model import build_tiny_starcoder

    return build_tiny_starcoder(tmp_path_factory.mktemp("tiny-hf") / "tiny-starcoder")


@pytest.fixture(scope="session")
def tiny_starcoder(tiny_starcoder_checkpoint: Path, tiny_cache: Path) -> InstalledModel:
    """The tiny StarCoder converted by `install_from_hf`: the second family, end to end."""
    from completion.models.install import install_from_hf

    return install_from_hf(
        str(tiny_starcoder_checkpoint), "tiny-starcoder", tiny_cache, log=lambda _m: None
    ).model


@pytest.fixture(scope="session")
def real_model() -> InstalledModel:
    """The installed default model; missing fails under make test, else skips loudly."""
    try:
        return locate()
    except ModelError as exc:
        if os.environ.get("OFFPILOT_REQUIRE_REAL_MODEL") == "1":
            pytest.fail(f"the real default model is required: {exc}")
        pytest.skip(f"REAL MODEL NOT INSTALLED, test skipped: {exc}")


@pytest.fixture(scope="session")
def real_gguf(real_model: InstalledModel) -> Path:
    """The default model's published GGUF, verified (llama.cpp's tests)."""
    path = installed_gguf(real_model)
    if path is None:
        pytest.fail("the default model's GGUF is not installed (`offpilot model install`)")
    return path
