"""The gate stage on scripted log-probs: its features, its model file, its decisions."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from completion import gate
from completion.context import extract_context
from completion.engines.fake import FakeEngine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, complete, complete_samples
from completion.stops import RULE, StopReason

DOC = "def area(w, h):\n    \n\nprint(area(2, 3))\n"
CURSOR = DOC.index("    \n") + 4


def _context(doc: str = DOC, cursor: int = CURSOR):  # type: ignore[no-untyped-def]
    return extract_context(doc, cursor, "python")


# A model on the mean log-prob alone: P(right) = 0.5 at a mean of -0.5.
ON_MEAN = gate.GateModel(
    ("lp_mean",), (-0.5,), (0.25,), (3.0,), 0.0, {"quiet": 0.8, "balanced": 0.5, "eager": 0.2}, {}
)


def test_features_read_the_log_probs_and_the_surroundings() -> None:
    values = gate.features(
        "return w * h", "return w * h\n", (-0.1, -0.2, -1.5, -0.2), RULE, "multi", _context()
    )
    assert values is not None
    assert values["lp_mean"] == pytest.approx(-0.5)
    assert values["lp_min"] == -1.5
    assert values["lp_first"] == -0.1
    assert values["low_share"] == 0.25
    assert values["stop_rule"] == 1.0
    assert values["stop_end"] == 0.0
    assert values["multi"] == 1.0
    assert values["line_start"] == 1.0
    assert values["after_opener"] == 1.0
    assert values["lang_python"] == 1.0
    assert values["repeats_below"] == 0.0
    assert values["post_cut"] == 0.0


def test_an_answer_that_repeats_the_code_below_is_marked() -> None:
    values = gate.features(
        "print(area(2, 3))", "print(area(2, 3))", (-0.1,), StopReason.END_TOKEN, "multi", _context()
    )
    assert values is not None
    assert values["repeats_below"] == 1.0
    assert values["stop_end"] == 1.0


def test_nothing_to_score_without_text_or_log_probs() -> None:
    assert gate.features("", "", (-0.1,), RULE, "single", _context()) is None
    assert gate.features("x", "x", (), RULE, "single", _context()) is None
    assert gate.features("x", "x", (math.nan,), RULE, "single", _context()) is None
    # unscored: shown, whatever the point
    assert gate.judge(None, "quiet").shown


def test_the_score_and_the_operating_points() -> None:
    sure = ON_MEAN.score({"lp_mean": -0.05})
    unsure = ON_MEAN.score({"lp_mean": -2.0})
    assert sure > 0.9 > 0.1 > unsure
    assert gate.judge({"lp_mean": -0.05}, "quiet", model=ON_MEAN).shown
    assert not gate.judge({"lp_mean": -0.6}, "balanced", model=ON_MEAN).shown
    assert gate.judge({"lp_mean": -0.6}, "eager", model=ON_MEAN).shown
    assert gate.judge({"lp_mean": -9.0}, "off", model=ON_MEAN).shown
    assert ON_MEAN.threshold("off") is None
    # the user's shift moves the threshold, within bounds
    assert ON_MEAN.threshold("balanced", 0.1) == pytest.approx(0.6)
    assert ON_MEAN.threshold("balanced", 5.0) == pytest.approx(0.5 + gate.MAX_SHIFT)
    assert ON_MEAN.threshold("balanced", -5.0) == pytest.approx(0.5 - gate.MAX_SHIFT)


def test_point_names_and_the_benchmark_switch() -> None:
    assert gate.normalize_point(" Quiet ") == "quiet"
    assert gate.normalize_point("0") == gate.OFF
    assert gate.normalize_point("1") == gate.DEFAULT_POINT
    with pytest.raises(ValueError, match="gate must be"):
        gate.normalize_point("loud")
    assert CompletionOptions().with_spec("gate=0").gate == gate.OFF
    assert CompletionOptions().with_spec("gate=eager").gate == "eager"
    with pytest.raises(ValueError, match="gate"):
        CompletionOptions().with_spec("gate=loud")


def test_the_users_record_moves_the_threshold_within_bounds() -> None:
    assert gate.user_shift(0, gate.MIN_VERDICTS - 1) == 0.0
    rejecting = gate.user_shift(2, 60)
    accepting = gate.user_shift(55, 5)
    assert 0 < rejecting <= gate.MAX_SHIFT
    assert -gate.MAX_SHIFT <= accepting < 0
    assert gate.user_shift(0, 10_000) == gate.MAX_SHIFT
    assert gate.user_shift(-5, -5) == 0.0  # corrupt counts move nothing


@pytest.mark.parametrize("runtime", ["llama.cpp", "ctranslate2"])
def test_the_shipped_parameters_fit_the_features(tmp_path: Path, runtime: str) -> None:
    model = gate.shipped_model(runtime)
    assert model.about["engines"] == [runtime], "fitted on another runtime's log-probs"
    values = gate.features("return w * h", "return w * h", (-0.1,), RULE, "single", _context())
    assert values is not None
    assert set(model.names) <= set(values), "the shipped model reads features we no longer make"
    assert model.thresholds["eager"] <= model.thresholds["balanced"] <= model.thresholds["quiet"]
    # the file round-trips
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(model.to_json()))
    assert gate.load_model(path) == model


def test_the_pipeline_reads_the_parameters_of_its_engines_runtime() -> None:
    engine = FakeEngine(default="return w * h\n")
    request = CompletionRequest(DOC, CURSOR)
    for runtime in ("llama.cpp", "ctranslate2", "remote"):
        engine.runtime = runtime
        verdict = complete(engine, request).verdict
        assert verdict is not None
        model = gate.shipped_model(runtime)
        assert verdict.threshold == model.threshold(gate.DEFAULT_POINT, 0.0, "python")
        assert verdict.score == model.score(verdict.features or {})
    # a llama.cpp server runs the same GGUF as the in-process engine
    assert gate.shipped_model("remote") is gate.shipped_model("llama.cpp")
    assert gate.shipped_model("ctranslate2") != gate.shipped_model("llama.cpp")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "not a gate parameter file"),
        ({**ON_MEAN.to_json(), "coef": [1.0, 2.0]}, "must match"),
        ({**ON_MEAN.to_json(), "scale": [0.0]}, "must match"),
        ({**ON_MEAN.to_json(), "thresholds": {"quiet": 0.9}}, "needs thresholds"),
        ({**ON_MEAN.to_json(), "mean": ["x"]}, "not a gate parameter file"),
    ],
)
def test_a_bad_parameter_file_is_a_clear_error(payload: object, message: str) -> None:
    with pytest.raises(gate.GateFileError, match=message):
        gate.parse_model(payload)


def test_an_unreadable_parameter_file(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_bytes(b"\xff\x00")
    with pytest.raises(gate.GateFileError, match="cannot read"):
        gate.load_model(tmp_path / "gate.json")
    with pytest.raises(gate.GateFileError, match="cannot read"):
        gate.load_model(tmp_path / "missing.json")


@pytest.fixture
def on_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's gate reads ON_MEAN instead of the shipped parameters."""
    monkeypatch.setattr(gate, "shipped_model", lambda runtime="": ON_MEAN)


@pytest.mark.usefixtures("on_mean")
def test_the_pipeline_hides_an_unsure_answer_and_keeps_it() -> None:
    engine = FakeEngine(default="return w * h\n")
    request = CompletionRequest(DOC, CURSOR)
    engine.log_prob = -0.05
    sure = complete(engine, request)
    assert (sure.text, sure.answer, sure.gated) == ("return w * h", "return w * h", False)
    assert sure.verdict is not None
    assert sure.verdict.score is not None
    assert sure.verdict.score > 0.9
    engine.log_prob = -2.0
    unsure = complete(engine, request)
    assert (unsure.text, unsure.answer, unsure.gated) == ("", "return w * h", True)
    assert len(unsure.log_probs) == unsure.generated_tokens
    # the gate off shows it, and still says what it would have scored
    off = complete(engine, request, CompletionOptions(gate="off"))
    assert off.text == "return w * h"
    assert off.verdict is not None
    assert off.verdict.score == unsure.verdict.score  # type: ignore[union-attr]
    [sampled] = complete_samples(engine, request, CompletionOptions(), 1)
    assert (sampled.text, sampled.answer) == ("", "return w * h")


@pytest.mark.usefixtures("on_mean")
def test_a_hidden_block_may_show_its_first_line_alone() -> None:
    doc = "def f(xs):\n    \n"
    cursor = doc.index("    \n") + 4
    block = "total = 0\n    for x in xs:\n        total += x\n    return total"
    engine = FakeEngine(default=block)
    # sure of the first line (its 10 tokens, the line end included), unsure of the rest
    engine.log_probs = {"": [-0.05] * 10 + [-2.5]}
    early: list[str] = []

    def show(line: str, verdict: gate.Verdict | None) -> None:
        assert verdict is not None
        assert verdict.shown
        early.append(line)

    result = complete(engine, CompletionRequest(doc, cursor), on_first_line=show)
    assert result.answer == block
    assert result.text == "total = 0"
    assert early == ["total = 0"]
    assert result.line_verdict is not None
    assert result.line_verdict.shown
    # an unsure first line is neither shown early nor kept
    engine.log_probs = {"": -2.5}
    early.clear()
    hidden = complete(engine, CompletionRequest(doc, cursor), on_first_line=show)
    assert (hidden.text, early) == ("", [])


@pytest.mark.usefixtures("on_mean")
def test_a_header_is_previewed_but_never_the_answer_alone() -> None:
    """A block's header is shown early when sure; a hidden block never leaves it alone."""
    doc = "def f(xs):\n    \n"
    cursor = doc.index("    \n") + 4
    block = "for x in xs:\n        print(x)\n    return xs"
    engine = FakeEngine(default=block)
    engine.log_probs = {"": [-0.05] * 13 + [-2.5]}  # sure of the header (13 tokens), not the rest
    early: list[str] = []
    result = complete(
        engine, CompletionRequest(doc, cursor), on_first_line=lambda t, _v: early.append(t)
    )
    assert early == ["for x in xs:"]
    assert (result.answer, result.text) == (block, "")  # the block hidden, the header too


def test_a_language_may_have_thresholds_of_its_own(tmp_path: Path) -> None:
    model = dataclasses.replace(ON_MEAN, by_language={"rust": {"balanced": 0.3}})
    assert model.threshold("balanced", 0.0, "rust") == 0.3
    assert model.threshold("balanced", 0.0, "python") == 0.5  # the default
    assert model.threshold("quiet", 0.0, "rust") == 0.8  # a point it lacks: the default
    assert model.threshold("balanced", 0.1, "rust") == pytest.approx(0.4)
    between = {"lp_mean": -0.55}  # P = 0.35: over Rust's threshold, under the default
    verdict = gate.judge(between, "balanced", model=model, language="rust")
    assert (verdict.shown, verdict.threshold) == (True, 0.3)
    assert not gate.judge(between, "balanced", model=model, language="python").shown
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(model.to_json()))
    assert gate.load_model(path) == model
