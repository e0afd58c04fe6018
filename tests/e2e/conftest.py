"""Fixtures of the server tests."""

from __future__ import annotations

import pytest

from completion.ct2_engine import CT2Engine, load_engine
from completion.model_store import InstalledModel


@pytest.fixture(scope="module")
def engine(tiny_model: InstalledModel) -> CT2Engine:
    """The tiny model in this process, to compute what the server should answer."""
    return load_engine(tiny_model)
