"""A second family end to end: the tiny StarCoder (GPTBigCode) through install, prompt, engine.

The checkpoint (tests/tiny_model.py) writes `STARCODER_ANSWER` after `<fim_middle>`, then
`<filename>`, then LEAK: the answer shows that the prompt ended with StarCoder's middle
marker (PSM order), and the missing LEAK that the engine stopped at StarCoder's stop token.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tiny_model import STARCODER_ANSWER, STARCODER_LEAK, STARCODER_STOP

from completion.engines.ct2 import CT2Engine, EngineOptions, load_engine
from completion.models import install as model_install
from completion.models.install import install_known
from completion.models.specs import (
    FAMILIES,
    KNOWN_MODELS,
    STARCODER,
    BackendModel,
    FimOrder,
    HuggingFaceModel,
    PromptBudget,
)
from completion.models.store import InstalledModel, ModelError
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, _prepare, complete
from lsp_server.completer import completion_options
from lsp_server.config import parse_config

TEXT = "def add(a, b):\n    return \n"
OFFSET = TEXT.index("return ") + len("return ")
STEADY = CompletionOptions(time_budget_s=60.0)
QUIET = {"log": lambda _m: None}


def _engine(model: InstalledModel) -> CT2Engine:
    return load_engine(model, EngineOptions(threads=1, warmup=False))


def _shown(engine: CT2Engine, ids: list[int]) -> str:
    """The prompt as text with its marker tokens."""
    return str(engine._tokenizer.decode(ids, skip_special_tokens=False))


def test_the_install_records_the_starcoder_family(tiny_starcoder: InstalledModel) -> None:
    manifest = tiny_starcoder.manifest
    assert manifest.family == "gpt_bigcode"
    assert manifest.fim == STARCODER.fim
    assert manifest.stop_tokens == STARCODER.stop_tokens  # every one is in its vocabulary
    family = tiny_starcoder.family
    assert (family.repo_name, family.file_sep) == ("<reponame>", "<filename>")
    assert family.windows == STARCODER.windows
    assert family.code_tokens is None
    assert manifest.output_vocabulary == {}  # no token list ships for StarCoder: not pruned


def test_the_prompt_is_psm_in_starcoder_tokens(tiny_starcoder: InstalledModel) -> None:
    engine = _engine(tiny_starcoder)
    assert engine.fim is not None
    assert engine.fim.order is FimOrder.PSM
    prompt = _prepare(engine, CompletionRequest(TEXT, OFFSET), STEADY).prompt
    # the blank before the cursor is left to the model (`heal_blanks`)
    expected = f"<fim_prefix>{TEXT[: OFFSET - 1]}<fim_suffix>{TEXT[OFFSET:]}<fim_middle>"
    assert _shown(engine, prompt.ids) == expected
    assert prompt.ids[0] == engine.token_id("<fim_prefix>")
    assert prompt.ids[-1] == engine.token_id("<fim_middle>")


def test_a_completion_stops_at_the_familys_stop_token(tiny_starcoder: InstalledModel) -> None:
    result = complete(_engine(tiny_starcoder), CompletionRequest(TEXT, OFFSET), STEADY)
    assert result.text == STARCODER_ANSWER.strip()
    assert result.stop_reason == "end_token"
    assert STARCODER_LEAK.strip() not in result.raw
    # the control: the same model without `<filename>` among its stop tokens writes on
    manifest = dataclasses.replace(
        tiny_starcoder.manifest,
        stop_tokens=tuple(t for t in tiny_starcoder.manifest.stop_tokens if t != STARCODER_STOP),
    )
    unstopped = _engine(InstalledModel(tiny_starcoder.path, manifest))
    raw = complete(unstopped, CompletionRequest(TEXT, OFFSET), STEADY).raw
    assert raw.startswith(STARCODER_ANSWER.lstrip())
    assert STARCODER_LEAK.strip() in raw


def test_the_windows_are_the_familys_unless_the_user_sets_them(
    tiny_starcoder: InstalledModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = dataclasses.replace(STARCODER, windows=PromptBudget(prefix_tokens=24, suffix_tokens=6))
    monkeypatch.setitem(FAMILIES, STARCODER.name, narrow)
    engine = _engine(tiny_starcoder)
    assert engine.family.windows == narrow.windows
    above = "".join(f"x{i} = {i}\n" for i in range(60))  # 60 lines above the cursor
    text = above + "def add(a, b):\n    return \n" + "".join(f"y{i} = {i}\n" for i in range(60))
    request = CompletionRequest(text, len(above) + OFFSET)

    def kept(options: CompletionOptions) -> tuple[int, int]:
        prompt = _prepare(engine, request, options).prompt
        return len(engine.encode(prompt.prefix)), len(engine.encode(prompt.suffix))

    # the lines since the last checkpoint and the cursor's line come on top of the prefix's
    recent = len(engine.encode("".join(f"x{i} = {i}\n" for i in range(56, 60)) + TEXT[:26]))
    prefix, suffix = kept(STEADY)
    assert suffix <= 6
    assert prefix <= 24 + recent
    prefix, suffix = kept(STEADY.with_spec("prefix_tokens=200,suffix_tokens=100"))
    assert 6 < suffix <= 100
    assert prefix > 24 + recent
    prefix, suffix = kept(completion_options(parse_config({"contextTokens": 400})[0]))
    assert 6 < suffix <= 100
    assert prefix > 24 + recent


def test_a_registry_entry_with_a_huggingface_source_installs_by_name(
    tiny_starcoder_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = HuggingFaceModel("tiny-star", "test", str(tiny_starcoder_checkpoint), STARCODER)
    monkeypatch.setitem(KNOWN_MODELS, spec.name, spec)
    model = install_known(spec.name, tmp_path, **QUIET).model
    assert model.manifest.family == STARCODER.name
    assert model.manifest.fim == STARCODER.fim
    assert model.manifest.source["kind"] == "huggingface"
    assert model.manifest.license_note == spec.license_note
    assert complete(_engine(model), CompletionRequest(TEXT, OFFSET), STEADY).text == "a + b"


def test_a_backend_entry_has_nothing_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = BackendModel("remote", "test", "http://127.0.0.1:9/", STARCODER)
    monkeypatch.setitem(KNOWN_MODELS, spec.name, spec)
    monkeypatch.setattr(model_install, "_require_converters", lambda: None)
    with pytest.raises(ModelError, match="nothing to install"):
        install_known(spec.name, tmp_path, **QUIET)
    assert not (tmp_path / spec.name).exists()
