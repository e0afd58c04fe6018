"""Which GGUF llama.cpp runs: the rule applied to the speed test's ratios."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from completion.cpu_load import usable_cores
from completion.engines import choose
from completion.engines.choose import runs_faster


@pytest.mark.parametrize(
    ("prompt_ratio", "decode_ratio", "faster"),
    [
        # a 2-core AVX2 EPYC, Q8_0 against the published Q5_0 (six runs: 0.73-0.84, 1.01-1.09)
        (0.78, 1.04, True),
        (0.84, 1.09, True),
        # AVX-512 VNNI: the prompt as fast, the decode 15% slower
        (0.95, 1.15, False),
        # a faster prompt does not buy a much slower decode, nor the reverse
        (0.70, 1.20, False),
        (0.95, 0.80, False),
    ],
)
def test_the_re_encoded_file_runs_where_its_prompt_is_faster_and_its_decode_not_much_slower(
    prompt_ratio: float, decode_ratio: float, faster: bool
) -> None:
    assert runs_faster(prompt_ratio, decode_ratio) is faster


def test_a_busy_machine_is_not_timed_and_the_published_file_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("llama_cpp")  # the verdict's key names llama.cpp's build
    published, candidate = tmp_path / "model.gguf", tmp_path / "model.q8_0.gguf"
    published.write_bytes(b"GGUF")
    candidate.write_bytes(b"GGUF")

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("timed on a busy machine")

    monkeypatch.setattr(subprocess, "run", no_child)
    monkeypatch.setattr(choose.os, "getloadavg", lambda: (4.0 * usable_cores(), 0, 0))
    with caplog.at_level(logging.INFO, logger="completion.engines.choose"):
        assert choose.llama_faster(candidate, published) is False
    assert "busy" in caplog.text
    # nothing is kept: the next start, on a quieter machine, times them
    assert not list(tmp_path.glob(".llama-faster-*"))
    # and this process does not: a reload (a new thread count) must not wait for the test
    monkeypatch.setattr(choose.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert choose.llama_faster(candidate, published) is False
