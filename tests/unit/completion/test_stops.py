"""Stop rules: where a streamed completion is cut, single-line and block, string in, string out."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cursor import context_at
from language_cases import BY_ID, CASES, Case

from completion.stops import BLOCK_RULES, block_cut, block_stop, indent_floor, single_line_stop


def test_single_line_stop_rule() -> None:
    assert single_line_stop("a + b") is None
    assert single_line_stop("a + b\n    x") == 5
    assert single_line_stop("\n    return x\nfoo") == 0  # never leaves the cursor's line
    assert single_line_stop("x\r\ny") == 1


@dataclass(frozen=True)
class Stop:
    """A golden block-stop case: `text` as the model writes it is cut to `want` by `rule`.

    `rule` names the rule of `stops.BLOCK_RULES` that decides ("": none does, the text goes
    on); a change to one rule fails exactly the cases it moves.
    """

    rule: str
    name: str
    text: str
    want: str
    line_prefix: str = ""
    suffix: str = "\n"
    floor: int = 0
    language: str = ""


JS, GO, JAVA, PY = "javascript", "go", "java", "python"
PY_DICT = "        'b': 2,\n    }\n    return d\n\ndef g():\n"
PY_EOF = "            y += i\n        z = y\n    return z\n\n\ndef check(c):\n"
LIST = "    2,\n]\nprint(x)\n"
NESTED = (  # the cursor on the empty line under `        if (x) {`, the loop's `}` below
    "            if (y) {\n                if (z) {\n                    return 1;\n"
    "                }\n            }\n        }\n    }\n"
)
JS_FOR = (  # HumanEval-X JavaScript/0: the hole opens `for` and `if`s the suffix closes
    "    for (let j = 0; j < n.length; j++) {\n      if (i != j) {\n"
    "        return true;\n      }\n    }\n  }\n"
)
PRIME = "\n    for k in range(2, n):\n        if n % k == 0:\n            return False\n"
FOR_GRADE = '        elif g > 3:\n            grade = "A"\n        else:\n            grade = "E"\n'

STOPS = [
    # the block ends where a line is less indented
    Stop("dedent", "at-dedent", "    for i in x:\n        y += i\n    z = 1\nprint(z)\n",
         "    for i in x:\n        y += i\n    z = 1"),
    Stop("dedent", "after-opener-the-body-sets-the-indent",
         "\n        a = 1\n        b = 2\n    c = 3", "\n        a = 1\n        b = 2",
         "    if x:"),
    # Python: `}` closing a dict opened above the cursor, statements follow it
    Stop("dedent", "python-literal-closer-goes-on", PY_DICT,
         "        'b': 2,\n    }\n    return d\n", floor=8, language=PY),
    # Python at the end of the file: the function may be finished, no new top-level code
    Stop("dedent", "python-end-of-file-finishes-the-function", PY_EOF,
         "            y += i\n        z = y\n    return z\n\n", language=PY),
    Stop("dedent", "python-code-below-the-block-end-is-the-end", PY_EOF, "            y += i",
         suffix="\n    return w\n", floor=4, language=PY),
    Stop("dedent", "brace-end-of-file-the-block-end-is-the-end", PY_EOF, "            y += i",
         language=JS),
    Stop("suffix_repeat", "a-line-of-the-suffix", "    y = x + 1\n    return y\n", "    y = x + 1",
         suffix="\n    return y\n"),
    Stop("suffix_repeat", "a-whole-line-of-the-suffix", '    if n:\n        out += "_"\n',
         "    if n:", suffix='\n    out += "_"\n    return out\n'),
    Stop("suffix_repeat", "any-of-the-next-suffix-lines", "    ans.extend(odds)\n    return ans\n",
         "    ans.extend(odds)", suffix="\n        ans.append(x)\n    return ans\n"),
    # Python: `elif` + its body, then the header whose body is below: no stop after line one
    Stop("suffix_repeat", "python-a-header-goes-on-into-its-body", FOR_GRADE,
         '        elif g > 3:\n            grade = "A"\n        else:',
         suffix='\n            grade = "E"\n    return grade\n', floor=9, language=PY),
    Stop("suffix_repeat", "the-suffix-two-levels-deeper-goes-on",
         "    for e in l:\n        if e > m:\n            m = e\n",
         "    for e in l:\n        if e > m:", suffix="\n            m = e\n    return m\n"),
    Stop("suffix_repeat", "a-closer-the-suffix-has", LIST, "    2,", suffix="\n]\n"),
    # `if n < 2:` + `return False` above a loop whose inner block also returns False
    Stop("", "the-same-code-at-another-depth-is-no-repeat", "        return False\n",
         "        return False\n", suffix=PRIME, floor=4),
    Stop("suffix_repeat", "the-same-code-at-its-own-depth-is-a-repeat",
         "    for k in range(2, n):\n", "", suffix=PRIME),
    Stop("first_line_below_floor", "under-the-floor", "x = 1\n", "", floor=4),
    Stop("first_line_below_floor", "a-statement-under-the-floor", "        x = 1\n", "",
         suffix="\n            depth -= 1\n", floor=12),
    Stop("first_line_pending", "the-first-line-is-judged-once-whole", "    x = 1", "    x = 1",
         floor=4),
    Stop("header_with_body_below", "a-header-whose-body-is-below",
         "    for x in y:\n        ans.append(x)\n", "    for x in y:",
         suffix="\n        ans.append(x)\n    return ans\n"),
    Stop("header_with_body_below", "a-dedented-header-through-the-floor",
         "        elif c == ')':\n            depth -= 1\n", "        elif c == ')':",
         suffix="\n            depth -= 1\n", floor=12),
    Stop("header_with_body_below", "brace-a-header-whose-body-is-below",
         '        if (g > 3) {\n            grade = "A";\n', "        if (g > 3) {",
         suffix='\n            grade = "E";\n        }\n', floor=9, language=JS),
    Stop("header_with_body_below", "brace-a-header-above-code-below", JS_FOR,
         "    for (let j = 0; j < n.length; j++) {", suffix="\n      x++;\n    }\n", floor=4,
         language=JS),
    Stop("degenerate_run", "three-copies-in-a-row", "    a = 1\n    a = 1\n    a = 1\n    a = 1",
         "    a = 1"),
    Stop("blank_lines", "two-blank-lines", "    a = 1\n\n\n    b = 2", "    a = 1\n\n"),
    Stop("blank_lines", "brace-two-blank-lines-outside-a-block", "    a()\n\n\n    b()\n",
         "    a()\n\n", suffix="\n    return\n}\n", floor=4, language=GO),
    Stop("", "brace-blank-lines-inside-an-open-block-go-on",
         "    for x := range xs {\n        a()\n\n\n        b()\n    }\n",
         "    for x := range xs {\n        a()\n\n\n        b()\n    }\n",
         suffix="\n    return\n}\n", floor=4, language=GO),
    # a bracket opened above the cursor: its closer ends the block when nothing below does
    Stop("outer_block_closed", "a-closer-the-suffix-lacks", LIST, "    2,\n]", suffix=""),
    Stop("outer_block_closed", "brace-a-closer-the-suffix-lacks", PY_DICT, "        'b': 2,\n    }",
         floor=8, language=JS),
    Stop("outer_block_closed", "brace-an-empty-line-in-a-block-without-its-closer",
         "return 1\n}\n\nfunc main() {\n", "return 1\n}", "\t", "", language=GO),
    Stop("outer_block_closed", "brace-a-function-below-closes-nothing",
         "return 1\n}\n\nfunc main() {\n", "return 1\n}", "\t", "\nfunc h() {\n}\n", language=GO),
    # `}` under `}` is no degenerate run, and a less indented `}` below closes an outer block
    Stop("outer_block_closed", "brace-the-closers-of-nested-blocks", NESTED,
         NESTED[: NESTED.rindex("\n    }")], suffix="\n    }\n    return false;\n}\n", floor=12,
         language=JAVA),
    Stop("suffix_closes_outer", "the-suffix-goes-on-in-the-block", LIST, "    2,",
         suffix="\n    3,\n]\n"),
    Stop("suffix_closes_outer", "python-the-suffix-holds-more-of-the-literal", PY_DICT,
         "        'b': 2,", suffix="\n        'c': 3,\n    }\n", floor=8, language=PY),
    Stop("suffix_closes_outer", "brace-the-block-goes-on-below",
         "return 1\n}\n\nfunc main() {\n", "return 1", "\t", "\n\tfoo()\n}\n", language=GO),
    Stop("suffix_closes_outer", "brace-the-suffix-closes-the-block", "return 1\n}\n", "return 1",
         "\t", "\n}\n", language=GO),
    Stop("suffix_closes_outer", "brace-a-closer-at-its-own-depth-below",
         "            f();\n        }\n", "            f();", suffix="\n        }\n    }\n",
         floor=12, language=JAVA),
    Stop("suffix_closes_outer", "brace-a-header-above-a-deeper-closer-goes-on", JS_FOR,
         JS_FOR[: JS_FOR.rindex("\n  }")], suffix="\n      }\n    }\n  }\n  return false;\n}\n",
         floor=4, language=JS),
    Stop("suffix_closes_outer", "python-no-else-line-above-its-body",
         "    } else {\n        b();\n    }\n", "", suffix="\n        b();\n    }\n", floor=4,
         language=PY),
    Stop("outer_reopens", "a-reopened-closer-is-left-to-the-user", "    2,\n] + [\n    3,\n]\n",
         "    2,", suffix=""),
    Stop("else_above_its_body", "brace-else-on-an-empty-line-above-its-body",
         "    } else {\n        b();\n    }\n", "    } else {", suffix="\n        b();\n    }\n",
         floor=4, language=JS),
    # the block the cursor's line opened
    Stop("block_closed", "brace-else-goes-on-its-closer-ends",
         "\n\ta()\n} else {\n\tb()\n}\nc()\n", "\n\ta()\n} else {\n\tb()\n}", "if x {", "",
         language=GO),
    Stop("block_closed", "brace-opened-by-else-itself", "\n\tb()\n}\nc()\n", "\n\tb()\n}",
         "} else {", "", language=GO),
    Stop("block_closed", "brace-a-closer-in-a-string-is-no-closer",
         '\n\ts := "}"\n\treturn s\n}\nx\n', '\n\ts := "}"\n\treturn s\n}', "func f() string {",
         "", language=GO),
    Stop("block_closed", "brace-a-call-around-the-block-closes-too",
         "\n  go();\n});\nmore();\n", "\n  go();\n});", "run(function () {", "", language=JS),
    Stop("suffix_closes_block", "brace-the-suffix-closes-the-else", "\n\tb()\n}\nc()\n",
         "\n\tb()", "} else {", "\n}\n", language=GO),
    # a closer still on its way is waited for: `}` may become `} else {`
    Stop("closer_pending", "brace-a-closer-still-streaming", "\n\ta()\n}", "\n\ta()\n}", "if x {",
         "", language=GO),
]  # fmt: skip
GOES_ON = {  # the rules that let a line through (to the next rule's judgement of the next)
    "cursor_line",
    "blank_line",
    "else_goes_on",
    "python_literal_closer",
    "first_line",
    "goes_on",
}


def judged(stop: Stop) -> tuple[str, str]:
    """(what `block_stop` keeps of `stop.text`, the rule that decided)."""
    args = stop.line_prefix, stop.suffix
    at = block_stop(*args, floor=stop.floor, language=stop.language)(stop.text)
    rule = block_cut(*args, floor=stop.floor, language=stop.language)(stop.text)
    assert rule.at == at
    return (stop.text if at is None else stop.text[:at]), rule.rule


@pytest.mark.parametrize("stop", STOPS, ids=[f"{s.rule or 'none'}:{s.name}" for s in STOPS])
def test_block_stop_cuts_each_case_by_its_rule(stop: Stop) -> None:
    assert judged(stop) == (stop.want, stop.rule)


def test_every_rule_that_decides_has_a_case() -> None:
    """Each rule either decides a line (a cut, or a wait) or lets it through; none is idle."""
    names = [rule.__name__ for rule in BLOCK_RULES]
    assert len(set(names)) == len(names)
    tagged = {stop.rule for stop in STOPS} - {""}
    assert tagged | GOES_ON == set(names)
    assert not tagged & GOES_ON


def test_a_line_still_streaming_is_no_repeat_of_the_suffix() -> None:
    """`out += "_"` below: a streamed line that has only reached those characters goes on."""
    suffix = '\n    out += "_"\n    return out\n'
    rule = block_stop("", suffix)
    text = '    if n:\n        out += "_" * n\n'
    ends = [rule(text[:end]) for end in range(1, len(text) + 1)]
    assert all(at is None for at in ends)


def test_indent_floor() -> None:
    assert indent_floor("def f():\n    a = 1\n", "\n    return a\n") == 4
    assert indent_floor("def f():\n", "\n    return a\n") == 1


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_block_stop_with_the_language_lexemes(case: Case) -> None:
    c = context_at(case.open_end, case.language)
    cut = block_cut(c.line_prefix, c.suffix, language=case.language)(case.model)
    got = case.model if cut.at is None else case.model[: cut.at]
    assert got.rstrip("\n") == case.block
    # Python's block ends at the code below it, a brace language's at its own `}`
    assert cut.rule == ("dedent" if case.language == "python" else "block_closed")


def test_floor_under_a_braceless_header_is_the_headers_depth() -> None:
    """HumanEval-X JavaScript/12: `if (...)` + `return null;` above; code goes on at the if's."""
    prefix = "const f = (s) => {\n  if (!s.length)\n    return null;\n"
    suffix = "\n      return s;\n    }\n  }\n}\n"
    assert indent_floor(prefix, suffix, "javascript") == 2
    assert indent_floor(prefix, suffix, "python") == 4  # Python: no brace-less headers
    braced = "const f = (s) => {\n  if (!s.length) {\n    return null;\n"
    assert indent_floor(braced, suffix, "javascript") == 4


def test_the_time_budget_counts_from_the_first_token() -> None:
    """A slow prompt pass (it cannot be interrupted) does not eat the decode's budget."""
    import time

    from completion.stops import StopConditions, StopReason

    stops = StopConditions(48, 2.0, frozenset(), started=time.monotonic() - 5.0)
    assert stops.before(7) is None  # the first token, 5 s after the request
    assert stops.after(1) is None
    later = (stops.first_token_at or 0.0) + 2.5
    assert stops.after(2, now=later) == StopReason.TIME_BUDGET
    idle = StopConditions(48, 2.0, frozenset(), started=time.monotonic() - 5.0)
    assert idle.after(0) == StopReason.TIME_BUDGET  # no token yet: from the request's start
