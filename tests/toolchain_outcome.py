"""What a brace-language test does when the sample's toolchain is missing."""

from __future__ import annotations

import os

import pytest

from eval import toolchains
from eval.sandbox import execution


def require(outcome: execution.Outcome) -> execution.Outcome:
    """The outcome, unless its toolchain is missing: then fail (make test) or skip."""
    if toolchains.is_missing(outcome.reason):
        if os.environ.get("OFFPILOT_REQUIRE_REAL_MODEL") == "1":
            pytest.fail(f"{outcome.reason} (make setup installs it)")
        pytest.skip(f"TOOLCHAIN NOT INSTALLED, test skipped: {outcome.reason}")
    return outcome
