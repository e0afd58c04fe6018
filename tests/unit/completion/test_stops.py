"""Stop rules: where a streamed completion is cut, single-line and block, string in, string out."""

from __future__ import annotations

import pytest
from cursor import context_at
from language_cases import BY_ID, CASES, Case

from completion.stops import block_stop, indent_floor, single_line_stop


def test_single_line_stop_rule() -> None:
    assert single_line_stop("a + b") is None
    assert single_line_stop("a + b\n    x") == 5
    assert single_line_stop("\n    return x\nfoo") == 0  # never leaves the cursor's line
    assert single_line_stop("x\r\ny") == 1


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


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_block_stop_with_the_language_lexemes(case: Case) -> None:
    c = context_at(case.open_end, case.language)
    rule = block_stop(c.line_prefix, c.suffix, language=case.language)
    at = rule(case.model)
    got = case.model if at is None else case.model[:at]
    assert got.rstrip("\n") == case.block


def test_brace_block_end_rules() -> None:
    go = "go"

    def cut(text: str, line_prefix: str, suffix: str = "") -> str:
        at = block_stop(line_prefix, suffix, language=go)(text)
        return text if at is None else text[:at]

    # `} else {` goes on; the closer of the else ends it
    assert cut("\n\ta()\n} else {\n\tb()\n}\nc()\n", "if x {") == "\n\ta()\n} else {\n\tb()\n}"
    # opened on the cursor's line by `} else {` itself
    assert cut("\n\tb()\n}\nc()\n", "} else {") == "\n\tb()\n}"
    assert cut("\n\tb()\n}\nc()\n", "} else {", "\n}\n") == "\n\tb()"
    # a closer inside a string is no closer
    assert cut('\n\ts := "}"\n\treturn s\n}\nx\n', "func f() string {") == (
        '\n\ts := "}"\n\treturn s\n}'
    )
    # an empty line in a block whose closer is missing: the closer ends it
    assert cut("return 1\n}\n\nfunc main() {\n", "\t") == "return 1\n}"
    assert cut("return 1\n}\n\nfunc main() {\n", "\t", "\nfunc h() {\n}\n") == "return 1\n}"
    # the block goes on below, or the suffix closes it: cut before the closer
    assert cut("return 1\n}\n\nfunc main() {\n", "\t", "\n\tfoo()\n}\n") == "return 1"
    assert cut("return 1\n}\n", "\t", "\n}\n") == "return 1"
    # a closer still on its way is waited for: `}` may become `} else {`
    assert block_stop("if x {", "", language=go)("\n\ta()\n}") is None
    # brackets of a call around the block close too: `});`
    js = block_stop("run(function () {", "", language="javascript")
    model = "\n  go();\n});\nmore();\n"
    at = js(model)
    assert at is not None and model[:at] == "\n  go();\n});"


def test_brace_block_stop_keeps_the_closers_of_nested_blocks() -> None:
    """`}` under `}` is no degenerate run, and a less indented `}` below closes an outer block.

    The cursor on the empty line under `        if (x) {`; below it the loop's `}`.
    """
    suffix = "\n    }\n    return false;\n}\n"
    text = (
        "            if (y) {\n                if (z) {\n                    return 1;\n"
        "                }\n            }\n        }\n    }\n"
    )
    rule = block_stop("", suffix, floor=12, language="java")
    assert text[: rule(text)] == text[: text.rindex("\n    }")]
    # the suffix's closer at the closer's own depth closes the block itself: cut before it
    rule = block_stop("", "\n        }\n    }\n", floor=12, language="java")
    more = "            f();\n        }\n"
    assert more[: rule(more)] == "            f();"


def test_brace_block_stop_ends_after_a_reopening_closer_whose_body_is_below() -> None:
    """`} else {` written on an empty line above the else's body: that line is the answer."""
    suffix = "\n        b();\n    }\n"
    rule = block_stop("", suffix, floor=4, language="javascript")
    text = "    } else {\n        b();\n    }\n"
    assert text[: rule(text)] == "    } else {"
    rule = block_stop("", suffix, floor=4, language="python")  # Python: as before
    assert rule(text) == 0


def test_brace_blank_lines_inside_an_open_block_go_on() -> None:
    text = "    for x := range xs {\n        a()\n\n\n        b()\n    }\n"
    rule = block_stop("", "\n    return\n}\n", floor=4, language="go")
    assert rule(text) is None  # nothing cuts it: the block with its closer is the answer
    text = "    a()\n\n\n    b()\n"  # no block open: two blank lines end it, as in Python
    assert text[: rule(text)] == "    a()\n\n"


def test_brace_header_above_a_deeper_closer_goes_on_into_its_body() -> None:
    """HumanEval-X JavaScript/0: the hole opens `for` and `if`s whose closers the suffix has.

    A closer below, deeper than the first line, is an inner block's: the completion still
    has to open it, so the header's body is not below (it was cut after the header).
    """
    suffix = "\n      }\n    }\n  }\n  return false;\n}\n"
    rule = block_stop("", suffix, floor=4, language="javascript")
    text = (
        "    for (let j = 0; j < n.length; j++) {\n      if (i != j) {\n"
        "        return true;\n      }\n    }\n  }\n"
    )
    assert text[: rule(text)].startswith("    for (let j = 0; j < n.length; j++) {\n      if")
    # a body below (code, not a closer) still ends the completion after the header
    rule = block_stop("", "\n      x++;\n    }\n", floor=4, language="javascript")
    assert text[: rule(text)] == "    for (let j = 0; j < n.length; j++) {"


def test_floor_under_a_braceless_header_is_the_headers_depth() -> None:
    """HumanEval-X JavaScript/12: `if (...)` + `return null;` above; code goes on at the if's."""
    prefix = "const f = (s) => {\n  if (!s.length)\n    return null;\n"
    suffix = "\n      return s;\n    }\n  }\n}\n"
    assert indent_floor(prefix, suffix, "javascript") == 2
    assert indent_floor(prefix, suffix, "python") == 4  # Python: no brace-less headers
    braced = "const f = (s) => {\n  if (!s.length) {\n    return null;\n"
    assert indent_floor(braced, suffix, "javascript") == 4
