"""complete() end to end on the FakeEngine: the stages in order, options, caps and stop reasons."""

import pytest
from cursor import CURSOR, SOURCE, at_cursor
from language_cases import BY_ID, CASES, Case, complete_at

from completion.engines.fake import FakeEngine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, complete, complete_samples
from completion.stops import RULE, StopReason
from completion.syntax import has_error
from completion.trigger import TriggerOptions


def test_complete_end_to_end_with_fake_engine() -> None:
    engine = FakeEngine(default="a + b\n\nprint(add(1, 2))\n")
    single = CompletionOptions(trigger=TriggerOptions(multiline=False))
    result = complete(engine, CompletionRequest(SOURCE, CURSOR), single)
    assert result.text == "a + b"
    assert result.stop_reason == RULE
    # the stream was closed at the first newline: the rest was never produced
    assert engine.produced_tokens <= len("a + b\n") + 1
    # as a block (the default at a line's end) it ends where the block does: the code below
    # repeats the suffix, so the stream stops there too
    block = complete(
        FakeEngine(default="a + b\n\nprint(add(1, 2))\n"), CompletionRequest(SOURCE, CURSOR)
    )
    assert (block.text, block.mode) == ("a + b", "multi")
    assert set(result.timings_ms) >= {"context", "prompt", "generate", "postprocess", "total"}


def test_token_cap_and_end_token() -> None:
    engine = FakeEngine(default="abcdefghij")
    single = CompletionOptions(trigger=TriggerOptions(multiline=False))
    # an empty file asks for a block: its own cap
    assert complete(engine, CompletionRequest("", 0), single).mode == "single"
    capped = complete(
        engine,
        CompletionRequest("", 0),
        CompletionOptions(trigger=TriggerOptions(multiline=False), max_new_tokens=3),
    )
    assert (capped.text, capped.stop_reason) == ("abc", StopReason.MAX_TOKENS)
    multi = CompletionOptions(multiline_max_new_tokens=4)
    assert complete(engine, CompletionRequest("", 0), multi).text == "abcd"
    ended = complete(engine, CompletionRequest("", 0), single)
    assert (ended.text, ended.stop_reason) == ("abcdefghij", StopReason.END_TOKEN)


def test_pipeline_passes_the_static_head_to_the_engine() -> None:
    engine = FakeEngine(default="a + b\n")
    complete(engine, CompletionRequest(SOURCE, CURSOR))  # on by default
    complete(engine, CompletionRequest(SOURCE, CURSOR), CompletionOptions(prompt_cache=False))
    # two lines above the cursor's: no checkpoint yet, the head is the markers and the suffix
    assert engine.static_lens == [3 + len(SOURCE[CURSOR:]), 0]


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
    assert result.text == ""
    assert result.stop_reason == "trigger"
    assert engine.prompts == []


def test_option_specs_apply_and_refuse_what_they_do_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = CompletionOptions().with_spec("multiline=0,dedupe=off,max_new_tokens=7")
    assert not options.trigger.multiline
    assert not options.post.dedupe
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
    assert result.mode == "multi"
    assert result.text == "return x + 1"
    # cut by the token cap inside a string: what is shown still parses with the file
    doc = "def f(x):\n    \n    return x\n"
    cursor = doc.index("    \n") + 4
    in_string = FakeEngine(default='s = """a long\n    docstring that goes on\n    """\n')
    options = CompletionOptions(multiline_max_new_tokens=20)
    shown = complete(in_string, CompletionRequest(doc, cursor), options).text
    ast.parse(doc[:cursor] + shown + doc[cursor:])
    whole = complete(FakeEngine(default=in_string.default), CompletionRequest(doc, cursor))
    assert whole.text == 's = """a long\n    docstring that goes on\n    """'  # a whole unit


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_multi_line_stops_at_the_end_of_the_block(case: Case) -> None:
    text, reason = complete_at(case.open_end, case.language, case.model)
    assert (text, reason) == (case.block, "stop_rule")
    whole = at_cursor(case.open_end)[0] + text
    if case.language != "java":  # the class is still open there
        assert has_error(whole, case.language) is False
    assert complete_at(case.closed, case.language, case.model) == (case.closed_block, "stop_rule")
