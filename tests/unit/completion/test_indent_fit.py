"""The `indent_fit` post-processing stage: a plain statement does not end above deeper code."""

from __future__ import annotations

from completion.context import extract_context
from completion.postprocess import PostOptions, postprocess
from completion.syntax import in_brackets

# the hole is the header of the indented body below it
DOC = "def f(s):\n    n = 0\n\n        return []\n    return s\n"
HOLE = DOC.index("0\n\n") + 2


def run(
    text: str, doc: str = DOC, offset: int = HOLE, language: str = "python", **options: bool
) -> str:
    context = extract_context(doc, offset, language, "f.py")
    return postprocess(text, context, "stop_rule", PostOptions(**options))


def test_a_statement_above_deeper_code_is_dropped() -> None:
    assert run("    return s.split()") == ""
    assert run("    return s.split()", indent_fit=False) == "    return s.split()"
    assert run("    x = 1  # a comment") == ""


def test_a_header_or_an_open_bracket_fits() -> None:
    assert run("    if not s:") == "    if not s:"
    assert run("    if not s:  # empty") == "    if not s:  # empty"
    assert run("    x = foo(", keep_parse=False) == "    x = foo("
    assert run("    x = a + \\", keep_parse=False) == "    x = a + \\"


def test_code_below_at_the_same_depth_or_shallower_needs_nothing() -> None:
    doc = "def f(s):\n    n = 0\n\n    return s\n"
    offset = doc.index("0\n\n") + 2
    assert run("    n += 1", doc, offset) == "    n += 1"
    assert run("    n += 1", doc + "\n", len(doc)) == "    n += 1"  # end of the file


def test_multi_line_is_cut_back_to_its_last_header() -> None:
    got = run("    if not s:\n        n = 1\n    n += 2", multiline=True)
    assert got == "    if not s:\n        n = 1"  # `n = 1` is as deep as the code below
    got = run("    for c in s:\n        if c:\n    n += 2", multiline=True)
    assert got == "    for c in s:"  # `if c:` would have no body: the code below is its sibling


def test_a_multi_line_completion_does_not_end_on_a_header_without_its_body() -> None:
    doc = "def f(s):\n    n = 0\n\n    return n\n"
    offset = doc.index("0\n\n") + 2
    assert run("    n = len(s)\n    if n > 2:", doc, offset, multiline=True) == "    n = len(s)"
    assert run("    if n > 2:", doc, offset, multiline=True) == ""
    assert run("    if n > 2:", doc, offset) == "    if n > 2:"  # single-line: the body comes next
    end = "def f(s):\n    n = 0\n"
    got = run("    for c in s:\n        n += 1\n    if n:", end, len(end), multiline=True)
    assert got == "    for c in s:\n        n += 1"  # at the end of the file too
    assert run("    n = 1\n    n += 2", multiline=True) == ""


def test_inside_brackets_strings_and_other_languages_indentation_is_free() -> None:
    doc = "x = [\n    1,\n\n        2,\n]\n"
    offset = doc.index("1,\n\n") + 3
    assert in_brackets(doc, offset, "python") is True
    assert in_brackets(DOC, HOLE, "python") is False
    assert in_brackets(DOC, HOLE, "cobol") is None
    assert run("    3,", doc, offset) == "    3,"
    doc = 'def f():\n    """Doc.\n\n        indented text\n    """\n'
    offset = doc.index("Doc.\n\n") + 5
    assert run("    more text", doc, offset) == "    more text"
    js = "function f() {\n  let n = 0;\n\n    return [];\n}\n"
    assert run("  n++;", js, js.index("0;\n\n") + 3, "javascript") == "  n++;"
