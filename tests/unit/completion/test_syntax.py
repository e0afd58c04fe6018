"""Syntax: what tree-sitter tells the trigger and post-processing (comment or string, parses)."""

from __future__ import annotations

import threading

import pytest
from cursor import context_at
from language_cases import BY_ID, CASES, Case

from completion.syntax import Insertion, has_error, in_comment_or_string, parser_for


def test_syntax_positions() -> None:
    src = 'def f(x):\n    s = "abc"\n    # hi\n    return x\n'
    assert in_comment_or_string(src, src.index('"a') + 2, "python") is True
    assert in_comment_or_string(src, src.index('"abc"') + 5, "python") is False
    assert in_comment_or_string(src, src.index("# hi") + 4, "python") is True
    assert in_comment_or_string(src, src.index("return x") + 8, "python") is False


def test_comment_and_string_edges() -> None:
    js = "const a = 1; /* note */ const b = 2;\n"
    assert in_comment_or_string(js, js.index("*/") + 2, "javascript") is False
    assert in_comment_or_string(js, js.index("*/"), "javascript") is True
    go = "package main\n\nvar r = 'x'\n"
    assert in_comment_or_string(go, go.index("'x") + 1, "go") is True
    assert in_comment_or_string(go, go.index("'x") + 3, "go") is False
    py = 'x = f"a{b}c"\n'
    assert in_comment_or_string(py, py.index("b}"), "python") is False
    assert in_comment_or_string(py, py.index('c"'), "python") is True
    java = 'class A {\n    String t = """\n        text\n        """;\n}\n'
    assert in_comment_or_string(java, java.index("text") + 2, "java") is True
    rust = "fn f() {} /* a */\n// b\n"
    assert in_comment_or_string(rust, rust.index("a */"), "rust") is True
    assert in_comment_or_string(rust, rust.index("// b") + 4, "rust") is True
    assert in_comment_or_string(rust, rust.index("fn f") + 4, "rust") is False


def test_tsx_and_jsx_parse_with_their_grammar() -> None:
    tsx = "const App = (): JSX.Element => <div>{1}</div>;\n"
    assert has_error(tsx, "typescriptreact") is False
    assert has_error(tsx, "typescript") is True  # `<div>` is a type assertion there
    assert has_error("const a = <b>{x}</b>;\n", "javascriptreact") is False


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_incremental_check_matches_a_whole_parse(case: Case) -> None:
    c = context_at(case.hole, case.language)
    note = "#" if case.language == "python" else "//"
    prefix = c.prefix.replace("\n", f"\n{note} 漢字 🙂 é\n", 1)  # columns in bytes
    check = Insertion(prefix, c.suffix, case.language)
    assert check.before is False
    lines = case.runaway.split("\n")
    for k in range(1, len(lines) + 1):
        for end in ("", "\n", f"  {note} é🙂"):
            text = "\n".join(lines[:k]) + end
            whole = has_error(prefix + text + c.suffix, case.language)
            assert check.has_error(text) is whole, (text, whole)
    assert Insertion("x = 1\n", "", "cobol").has_error("(") is None
    line = Insertion("s = 'é🙂'; y = ", "\nz = 2\n", "python")  # the cursor's line too
    assert (line.has_error("1"), line.has_error("(")) == (False, True)


def test_parsers_are_per_thread() -> None:
    here = parser_for("go")
    there: list[object] = []
    thread = threading.Thread(target=lambda: there.append(parser_for("go")))
    thread.start()
    thread.join()
    assert here is parser_for("go")
    assert there[0] is not None
    assert there[0] is not here
