"""Fixtures of the server tests."""

from __future__ import annotations

import pytest

from completion.engines.ct2 import CT2Engine, load_engine
from completion.models.store import InstalledModel


@pytest.fixture(scope="module")
def engine(tiny_model: InstalledModel) -> CT2Engine:
    """The tiny model in this process, to compute what the server should answer."""
    return load_engine(tiny_model)
