"""pytest-benchmark microbenchmarks of each pipeline stage (issue 7).

In the normal test run (`--benchmark-disable`) each body runs once, as a test. For figures:

    pytest tests/bench --benchmark-enable --benchmark-columns=median,iqr,rounds

The engine benchmarks use the installed default model (real_model marker) in both local
engines, its GGUF in llama.cpp and its CTranslate2 int8 conversion, so their ratio comes
from one run. With OFFPILOT_FULL_VOCAB_MODEL pointing at a model installed with
`--full-vocabulary`, the prompt-pass and decode benchmarks also run on it (the pruning's
ratio).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from completion import crossfile, gate
from completion.context import Context, extract_context
from completion.document import Document
from completion.engines.choose import local_engine
from completion.engines.ct2 import CT2Engine, EngineOptions
from completion.engines.interface import Engine, GenerationParams
from completion.models.store import InstalledModel, ModelError, verify
from completion.pipeline import CompletionRequest, complete
from completion.postprocess import PostOptions, postprocess
from completion.prompt import build_prompt
from completion.trigger import TriggerOptions, should_complete

SOURCE = (resources.files("offpilot") / "data" / "replay" / "colorsys.py.txt").read_text()
CURSOR = SOURCE.index("\n", SOURCE.index("def hls_to_rgb"))  # after a header, mid-file
PROMPT_PASS = GenerationParams(max_new_tokens=1, time_budget_s=None)
DECODE = GenerationParams(max_new_tokens=17, time_budget_s=None)


def _context() -> Context:
    return extract_context(SOURCE, CURSOR, "python", "/w/colorsys.py")


def _tokens(text: str) -> int:
    return len(text) // 4


def test_context(benchmark: Any) -> None:
    ctx = benchmark(extract_context, SOURCE, CURSOR, "python", "/w/colorsys.py")
    assert ctx.prefix == SOURCE[: len(ctx.prefix)]
    assert ctx.prefix


def test_trigger(benchmark: Any) -> None:
    options = TriggerOptions(
        multiline=True, in_comments=False, mid_word_only=False
    )  # with the tree-sitter check
    assert benchmark(should_complete, _context(), options).value in {"single", "multi"}


def test_crossfile(benchmark: Any) -> None:
    """A new file being written next to an open module it resembles: Jaccard windows."""
    head = SOURCE[:CURSOR]  # the new file holds only the code above the cursor so far
    ctx = extract_context(head, len(head), "python", "/w/new.py")
    docs = (Document("/w/colorsys.py", SOURCE[CURSOR:] + "\n" + SOURCE[:200]),)
    opts = crossfile.CrossfileOptions(windows=True, imports=False, budget_tokens=256)

    def run() -> crossfile.Crossfile:
        return crossfile.collect(
            head, ctx.prefix, ctx.suffix, "python", "/w/new.py", docs, "/w", opts, _tokens
        )

    assert benchmark(run).snippets


def test_gate(benchmark: Any) -> None:
    """Show or not: the features of a 3-line answer mid-file, scored by the shipped model."""
    ctx = _context()
    answer = "    if s == 0.0:\n        return l, l, l\n    m2 = l * (1.0 + s)"
    log_probs = tuple(-0.05 * (i % 7) for i in range(40))

    def run() -> gate.Verdict:
        values = gate.features(answer, answer, log_probs, "stop_rule", "multi", ctx)
        return gate.judge(values, "balanced")

    assert benchmark(run).score is not None


def test_postprocess(benchmark: Any) -> None:
    ctx = _context()
    raw = "    return (r, g, b)\n\ndef main():\n    pass\n"
    options = PostOptions(multiline=True)
    assert benchmark(postprocess, raw, ctx, "max_tokens", options).startswith("    return")


@pytest.fixture(scope="module")
def engines(real_model: InstalledModel) -> dict[str, Engine]:
    found: dict[str, Engine] = {"ctranslate2": CT2Engine(real_model, EngineOptions())}
    _, gguf = local_engine(real_model)  # the file llama.cpp runs here, where it is installed
    if gguf is not None:
        from completion.engines.llamacpp import LlamaCppEngine

        found["llama.cpp"] = LlamaCppEngine(real_model, gguf)
    full = os.environ.get("OFFPILOT_FULL_VOCAB_MODEL")
    if full:
        try:
            found["ctranslate2-full-vocabulary"] = CT2Engine(verify(Path(full)), EngineOptions())
        except ModelError as exc:
            pytest.fail(f"OFFPILOT_FULL_VOCAB_MODEL: {exc}")
    return found


ENGINES = ["llama.cpp", "ctranslate2"]
MODELS = [*ENGINES, "ctranslate2-full-vocabulary"]


def _engine(engines: dict[str, Engine], name: str) -> Engine:
    if name not in engines:
        pytest.skip(
            "set OFFPILOT_FULL_VOCAB_MODEL to compare with a full-vocabulary model"
            if name.endswith("full-vocabulary")
            else f"{name} is not installed (`make setup`)"
        )
    return engines[name]


@pytest.mark.real_model
def test_prompt_build(benchmark: Any, engines: dict[str, Engine]) -> None:
    prompt = benchmark(build_prompt, _context(), engines["ctranslate2"])
    # the head (markers, suffix, the lines above the checkpoint) fits the family's windows
    # (768 + 256 tokens; colorsys has fewer above the cursor); the few lines since the
    # checkpoint come on top
    windows = engines["ctranslate2"].family.windows
    assert 300 < prompt.static_len <= 3 + windows.prefix_tokens + windows.suffix_tokens
    assert len(prompt.ids) - prompt.static_len < 150


@pytest.mark.real_model
@pytest.mark.parametrize("model", MODELS)
def test_prompt_pass(benchmark: Any, engines: dict[str, Engine], model: str) -> None:
    """The prompt pass plus one decode step on a default-window prompt (~570 tokens), uncached."""
    engine = _engine(engines, model)
    ids = build_prompt(_context(), engine).ids

    def run() -> list[int]:
        return list(engine.stream(ids, PROMPT_PASS))

    assert len(benchmark.pedantic(run, rounds=5, warmup_rounds=1)) <= 1


@pytest.mark.real_model
@pytest.mark.parametrize("model", MODELS)
def test_decode_16_tokens(benchmark: Any, engines: dict[str, Engine], model: str) -> None:
    """A short prompt and 17 tokens: the time is mostly 16 decode steps."""
    engine = _engine(engines, model)
    ids = engine.encode("import os\n\n\ndef list_python_files(root):\n    result = []\n    ")

    def run() -> list[int]:
        return list(engine.stream(ids, DECODE))

    assert len(benchmark.pedantic(run, rounds=5, warmup_rounds=1)) >= 1


@pytest.mark.real_model
@pytest.mark.parametrize("model", ENGINES)
@pytest.mark.parametrize("head", [128, 512, 1024])
def test_first_token_over_a_cached_head(
    benchmark: Any, engines: dict[str, Engine], head: int, model: str
) -> None:
    """What a cached prompt head costs a request: one new token after `head` cached ones.

    CTranslate2 copies the cached state into each request's (docs/latency.md, issue 27):
    measured 40 / 97 / 151 ms for 128 / 512 / 1,024 cached tokens, against 220 / 829 /
    2,657 ms computing the same prompt whole. llama.cpp keeps its context in place.
    """
    engine = _engine(engines, model)
    ids = engine.encode(SOURCE * 4)[: head + 1]

    def run() -> list[int]:
        return list(engine.stream(ids, PROMPT_PASS, static_len=head))

    assert len(benchmark.pedantic(run, rounds=5, warmup_rounds=1)) <= 1


@pytest.mark.real_model
@pytest.mark.parametrize("model", ENGINES)
@pytest.mark.parametrize("context", [128, 512, 1024])
def test_decode_16_tokens_at_context(
    benchmark: Any, engines: dict[str, Engine], context: int, model: str
) -> None:
    """16 decode steps after a cached `context`: what the context adds to each step."""
    engine = _engine(engines, model)
    ids = engine.encode(SOURCE * 4)[:context]

    def run() -> list[int]:
        return list(engine.stream(ids, DECODE, static_len=context - 4))

    assert len(benchmark.pedantic(run, rounds=3, warmup_rounds=1)) >= 1


@pytest.mark.real_model
@pytest.mark.parametrize("model", ENGINES)
def test_complete_end_to_end(benchmark: Any, engines: dict[str, Engine], model: str) -> None:
    request = CompletionRequest(SOURCE, CURSOR, "python", "/w/colorsys.py")
    result = benchmark.pedantic(complete, (_engine(engines, model), request), rounds=3)
    assert result.prompt_tokens > 0
