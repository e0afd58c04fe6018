"""Multi-line stop rules and post-processing, string in, string out."""

import pytest

from completion.fake_engine import FakeEngine
from completion.pipeline import CompletionOptions, CompletionRequest, complete, complete_samples
from completion.trigger import TriggerOptions


def test_the_last_line_is_judged_whole_when_the_stream_ends() -> None:
    doc = "def f(ans, odds):\n    \n    return ans\n"
    engine = FakeEngine(default="ans.extend(odds)\n    return ans")
    request = CompletionRequest(doc, doc.index("    \n") + 4)
    result = complete(engine, request, CompletionOptions(trigger=TriggerOptions(multiline=True)))
    assert result.text == "ans.extend(odds)"
    assert result.stop_reason == "stop_rule"
    [sampled] = complete_samples(
        engine, request, CompletionOptions(trigger=TriggerOptions(multiline=True)), 1
    )
    assert (sampled.text, sampled.stop_reason) == ("ans.extend(odds)", "stop_rule")  # batch path


def test_pipeline_multi_line_stops_at_block_end_while_streaming() -> None:
    doc = "def f(x):\n    \n\nprint(f(1))\n"
    engine = FakeEngine(default="y = x + 1\n    return y\n\nprint(f(1))\n" + "z" * 40)
    request = CompletionRequest(doc, doc.index("    \n") + 4)
    result = complete(engine, request, CompletionOptions(trigger=TriggerOptions(multiline=True)))
    assert result.text == "y = x + 1\n    return y"
    assert result.stop_reason == "stop_rule"
    assert result.generated_tokens < 40
    single = complete(engine, request, CompletionOptions(trigger=TriggerOptions(multiline=False)))
    assert single.text == "y = x + 1"


def test_pipeline_trigger_none_skips_the_model() -> None:
    engine = FakeEngine(default="abc")
    doc = "x = fo(a)\n"
    result = complete(engine, CompletionRequest(doc, 4), CompletionOptions())
    assert result.text == "" and result.stop_reason == "trigger"
    assert engine.prompts == []


def test_option_specs_apply_and_refuse_what_they_do_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = CompletionOptions().with_spec("multiline=0,dedupe=off,max_new_tokens=7")
    assert not options.trigger.multiline and not options.post.dedupe
    assert options.max_new_tokens == 7
    for bad in ("bogus=1", "dedupe=maybe", "max_new_tokens=lots", "dedupe"):
        with pytest.raises(ValueError, match="pipeline option"):
            CompletionOptions().with_spec(bad)
    # the product path reads no environment: an ablation knob cannot reach a user's server
    monkeypatch.setenv("OFFPILOT_PIPELINE", "multiline=0")
    engine = FakeEngine(default="x = 1\ny = 2\n")
    assert complete(engine, CompletionRequest("", 0)).mode == "multi"


def test_a_block_never_runs_into_the_next_definition_nor_ends_inside_a_string() -> None:
    """Through the real pipeline (FakeEngine output): the guarantees a block keeps."""
    import ast

    doc = "def f(x):\n    \n\n\ndef g(y):\n    return y\n"
    cursor = doc.index("    \n") + 4
    runs_on = FakeEngine(default="return x + 1\n\n\ndef g(y):\n    return y\n\n\ndef h():\n")
    result = complete(runs_on, CompletionRequest(doc, cursor))
    assert result.mode == "multi" and result.text == "return x + 1"
    # cut by the token cap inside a string: what is shown still parses with the file
    doc = "def f(x):\n    \n    return x\n"
    cursor = doc.index("    \n") + 4
    in_string = FakeEngine(default='s = """a long\n    docstring that goes on\n    """\n')
    options = CompletionOptions(multiline_max_new_tokens=20)
    shown = complete(in_string, CompletionRequest(doc, cursor), options).text
    ast.parse(doc[:cursor] + shown + doc[cursor:])
    whole = complete(FakeEngine(default=in_string.default), CompletionRequest(doc, cursor))
    assert whole.text == 's = """a long\n    docstring that goes on\n    """'  # a whole unit
