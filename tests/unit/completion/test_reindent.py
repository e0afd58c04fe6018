"""The `reindent` post-processing stage: a block's first line goes deeper than its header."""

from __future__ import annotations

from completion.context import extract_context
from completion.postprocess import PostOptions, indent_unit, postprocess

DOC = "def f(x):\n    for i in x:\n        if i > 2:\n\n    return x\n"
HOLE = DOC.index(":\n\n") + 2  # the empty line under `if i > 2:`


def run(
    text: str, doc: str = DOC, offset: int = HOLE, language: str = "python", **options: bool
) -> str:
    context = extract_context(doc, offset, language, "f.py")
    return postprocess(text, context, "stop_rule", PostOptions(**options))


def test_a_body_line_at_the_header_depth_moves_under_it() -> None:
    assert run("        return False") == "            return False"
    assert run("return False") == "            return False"
    assert run("        return False", reindent=False) == "        return False"


def test_a_line_already_deeper_is_left_alone() -> None:
    assert run("            return False") == "            return False"
    assert run("                return False") == "                return False"


def test_multi_line_completions_move_as_a_whole() -> None:
    got = run("        y = 1\n\n        if y:\n            z = 2", multiline=True)
    assert got == "            y = 1\n\n            if y:\n                z = 2"


def test_after_auto_indent_only_the_missing_depth_is_added() -> None:
    doc = DOC.replace(":\n\n", ":\n        \n")
    offset = doc.index(":\n        \n") + 10  # after the editor's 8 spaces
    assert run("return False", doc, offset) == "    return False"


def test_no_change_without_a_header_above_or_outside_python() -> None:
    doc = "def f(x):\n    y = x\n\n    return y\n"
    offset = doc.index("x\n\n") + 2
    assert run("    z = 1", doc, offset) == "    z = 1"
    assert run("        return False", language="javascript") == "        return False"
    assert run("        return False", language="cobol") == "        return False"


def test_a_docstring_line_that_reads_like_a_header_is_no_header() -> None:
    doc = 'def f(x):\n    """Doc.\n\n    if the list is empty:\n\n    """\n'
    offset = doc.index("empty:\n\n") + 7
    assert run("    then None", doc, offset) == "    then None"


def test_indent_unit_is_the_files_step() -> None:
    assert indent_unit("def f():\n  if x:\n    y\n  z\n") == 2
    assert indent_unit("x = 1\n") == 4
    assert indent_unit("def f():\n\tif x:\n\t\ty\n") == 4  # tabs: not counted
