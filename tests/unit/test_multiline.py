"""Multi-line stop rules and post-processing, string in, string out."""

import pytest
from cursor import context_at

from completion.fake_engine import FakeEngine
from completion.pipeline import CompletionOptions, CompletionRequest, complete, complete_samples
from completion.postprocess import (
    PostOptions,
    balance_brackets,
    drop_line_above_repeat,
    drop_next_line_repeat,
    drop_repetition,
    drop_suffix_repeat,
    postprocess,
    syntax_truncate,
)
from completion.stops import block_stop, indent_floor
from completion.trigger import TriggerOptions


def cut(rule_text: str, line_prefix: str = "", suffix: str = "\n", floor: int = 0) -> str:
    rule = block_stop(line_prefix, suffix, floor=floor)
    at = rule(rule_text)
    return rule_text if at is None else rule_text[:at]


def test_block_stop_at_dedent() -> None:
    text = "    for i in x:\n        y += i\n    z = 1\nprint(z)\n"
    assert cut(text) == "    for i in x:\n        y += i\n    z = 1"


def test_block_stop_after_opener_uses_body_indent() -> None:
    assert cut("\n        a = 1\n        b = 2\n    c = 3", "    if x:") == (
        "\n        a = 1\n        b = 2"
    )


def test_block_stop_at_repeat_of_suffix_and_floor() -> None:
    assert cut("    y = x + 1\n    return y\n", suffix="\n    return y\n") == "    y = x + 1"
    assert cut("x = 1\n", floor=4) == ""
    assert indent_floor("def f():\n    a = 1\n", "\n    return a\n") == 4
    assert indent_floor("def f():\n", "\n    return a\n") == 1


def test_a_line_still_streaming_is_no_repeat_of_the_suffix() -> None:
    """`out += "_"` below: a streamed line that has only reached those characters goes on."""
    suffix = '\n    out += "_"\n    return out\n'
    rule = block_stop("", suffix)
    text = '    if n:\n        out += "_" * n\n'
    ends = [rule(text[:end]) for end in range(1, len(text) + 1)]
    assert all(at is None for at in ends)
    assert rule('    if n:\n        out += "_"\n') == len("    if n:")


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


def test_python_literal_closer_does_not_end_the_completion() -> None:
    """`}` closing a dict opened above the cursor: Python statements may follow it."""
    text = "        'b': 2,\n    }\n    return d\n\ndef g():\n"
    rule = block_stop("", "\n", floor=8, language="python")
    assert text[: rule(text)].rstrip() == "        'b': 2,\n    }\n    return d"
    # the brace languages: the closer ends the completion when nothing below closes the block
    rule = block_stop("", "\n", floor=8, language="javascript")
    assert text[: rule(text)].rstrip() == "        'b': 2,\n    }"
    # the suffix holds more of the literal: cut before the closer, as before
    rule = block_stop("", "\n        'c': 3,\n    }\n", floor=8, language="python")
    assert text[: rule(text)].rstrip() == "        'b': 2,"


def test_python_at_the_end_of_the_file_the_function_may_be_finished() -> None:
    """Nothing below: after the inner block, the function's own lines go on; new top-level
    code does not. With code below, the block's end stays the end."""
    text = "            y += i\n        z = y\n    return z\n\n\ndef check(c):\n"
    rule = block_stop("", "\n", floor=0, language="python")
    assert text[: rule(text)].rstrip() == "            y += i\n        z = y\n    return z"
    rule = block_stop("", "\n    return w\n", floor=4, language="python")
    assert text[: rule(text)].rstrip() == "            y += i"
    rule = block_stop("", "\n", floor=0, language="javascript")
    assert text[: rule(text)].rstrip() == "            y += i"


def test_block_stop_on_degenerate_repetition_and_blank_lines() -> None:
    assert cut("    a = 1\n    a = 1\n    a = 1\n    a = 1") == "    a = 1"
    assert cut("    a = 1\n\n\n    b = 2") == "    a = 1\n\n"


def test_drop_suffix_and_line_above_repeats() -> None:
    c = context_at("def f(x):\n    y = x\n|\n    return y\n")
    assert drop_suffix_repeat("    y += 1\n    return y", c) == "    y += 1"
    assert drop_line_above_repeat("    y = x\n    z = 1", c) == "    z = 1"
    assert drop_line_above_repeat("    z = 1", c) == "    z = 1"
    end = context_at("def f(x):\n    if x:\n        return False\n|")  # the same code, one level up
    assert drop_line_above_repeat("    return False", end) == "    return False"


def test_a_single_line_that_repeats_the_next_line_is_dropped() -> None:
    c = context_at("def f(x):\n    y = x\n|\n\n    return y\n")
    assert drop_next_line_repeat("    return y", c) == ""
    assert drop_next_line_repeat("    y += 1", c) == "    y += 1"
    assert postprocess("    return y", c, "stop_rule", PostOptions()) == ""
    assert postprocess("    return y", c, "stop_rule", PostOptions(dedupe=False)) == "    return y"
    mid = context_at("def f(x):\n    y = |x\n    return y\n")  # text right of the cursor: no rule
    assert drop_next_line_repeat("return y", mid) == "return y"


def test_balance_brackets_against_the_rest_of_the_line() -> None:
    assert balance_brackets("b)", context_at("x = foo(a, |)\n")) == "b"
    assert balance_brackets("b))", context_at("x = foo(bar(a, |))\n")) == "b"
    assert balance_brackets("g(1)", context_at("x = f(|)\n")) == "g(1)"
    assert balance_brackets("2]", context_at("x = [1, |]\n")) == "2"


def test_drop_repetition() -> None:
    assert drop_repetition("a\nb\nb\nb\nb") == "a\nb"
    assert drop_repetition("a\nb\nb") == "a\nb\nb"


def test_syntax_truncate_ends_at_a_whole_unit() -> None:
    c = context_at("def f(x):\n    if x:\n|\n    return 0\n")
    text = "        return 1\n    x = ("
    assert syntax_truncate(text, c, keep_parse=False) == "        return 1"


def test_keep_parse_drops_a_completion_that_breaks_the_file() -> None:
    c = context_at("x = 1\n|\ny = 2\n")
    assert syntax_truncate("z = (", c, keep_parse=True) == ""
    assert syntax_truncate("z = (", c, keep_parse=False) == "z = ("
    assert syntax_truncate("z = 3", c, keep_parse=True) == "z = 3"
    assert syntax_truncate("z = (", context_at("x = 1\n|\n", "cobol"), keep_parse=True) == "z = ("


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("    y = x  \n    return y\n", "    y = x"),
        ("    y = x\n    y = x\n    y = x\n    y = x\n", "    y = x"),
        ("\n\n", ""),
    ],
)
def test_postprocess_multi_line(raw: str, expected: str) -> None:
    c = context_at("def f(x):\n    a = 1\n|\n    return y\n")
    assert postprocess(raw, c, "end_token", PostOptions(multiline=True)) == expected


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


def test_block_stop_at_any_near_suffix_line_and_existing_body() -> None:
    suffix = "\n        ans.append(x)\n    return ans\n"
    assert cut("    ans.extend(odds)\n    return ans\n", suffix=suffix) == "    ans.extend(odds)"
    assert cut("    for x in y:\n        ans.append(x)\n", suffix=suffix) == "    for x in y:"


def test_python_a_header_may_go_on_into_its_body() -> None:
    """`elif` + its body, then the header whose body is below: no stop after the first line."""
    suffix = '\n            grade = "E"\n    return grade\n'
    text = '        elif g > 3:\n            grade = "A"\n        else:\n            grade = "E"\n'
    rule = block_stop("", suffix, floor=9, language="python")
    assert (
        text[: rule(text)].rstrip() == '        elif g > 3:\n            grade = "A"\n        else:'
    )
    # in a brace language the header whose body is below ends the completion at once
    suffix = '\n            grade = "E";\n        }\n'
    text = '        if (g > 3) {\n            grade = "A";\n'
    rule = block_stop("", suffix, floor=9, language="javascript")
    assert text[: rule(text)].rstrip() == "        if (g > 3) {"


def test_block_stop_lets_a_dedented_header_through_the_floor() -> None:
    suffix = "\n            depth -= 1\n"
    text = "        elif c == ')':\n            depth -= 1\n"
    assert cut(text, suffix=suffix, floor=12) == "        elif c == ')':"
    assert cut("        x = 1\n", suffix=suffix, floor=12) == ""


def test_block_stop_goes_on_when_the_suffix_is_two_levels_deeper() -> None:
    suffix = "\n            m = e\n    return m\n"
    text = "    for e in l:\n        if e > m:\n            m = e\n"
    assert cut(text, suffix=suffix) == "    for e in l:\n        if e > m:"


def test_block_stop_keeps_a_closer_the_suffix_lacks() -> None:
    # a bracket opened above the cursor and closed nowhere below: its closer ends the block
    assert cut("    2,\n]\nprint(x)\n", suffix="") == "    2,\n]"
    assert cut("    2,\n]\nprint(x)\n", suffix="\n]\n") == "    2,"  # the suffix closes it
    assert cut("    2,\n]\nprint(x)\n", suffix="\n    3,\n]\n") == "    2,"  # it goes on below
    assert cut("    2,\n] + [\n    3,\n]\n", suffix="") == "    2,"  # reopened: left to the user


def test_the_same_code_at_another_depth_is_no_repeat_of_the_suffix() -> None:
    """`if n < 2:` + `return False`, above a loop whose inner block also returns False."""
    suffix = "\n    for k in range(2, n):\n        if n % k == 0:\n            return False\n"
    assert cut("        return False\n", suffix=suffix, floor=4) == "        return False\n"
    # at its own depth it is a repeat: the model is writing the code below again
    assert cut("    for k in range(2, n):\n", suffix=suffix) == ""


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
