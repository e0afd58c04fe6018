"""Context: the text around the cursor, split once and windowed for huge files."""

from __future__ import annotations

from cursor import CURSOR, SOURCE

from completion.context import extract_context
from completion.syntax import in_comment_or_string
from completion.trigger import Mode, TriggerOptions, should_complete


def test_context_splits_at_cursor() -> None:
    ctx = extract_context(SOURCE, CURSOR)
    assert ctx.prefix.endswith("    return ")
    assert ctx.suffix.startswith("\n\nprint")
    assert ctx.line_prefix == "    return "
    assert ctx.line_suffix == ""


def test_context_clamps_offset_and_windows_huge_text() -> None:
    huge = "x = 1\n" * 100_000
    ctx = extract_context(huge, len(huge) + 50)
    assert ctx.suffix == ""
    assert len(ctx.prefix) <= 24_000
    assert ctx.prefix.startswith("x = 1")


def test_a_windowed_side_of_a_huge_file_starts_at_a_statement() -> None:
    """The window edge avoids the middle of a docstring, so the syntax stages see code."""
    doc = "    Some words of the docstring.\n" * 30
    text = "".join(
        f'def f{i}(x):\n    """Doc.\n\n{doc}    """\n    return x\n\n' for i in range(200)
    )
    offset = text.index("    return x", len(text) // 2) + len("    return x")
    ctx = extract_context(text, offset)
    assert ctx.prefix.startswith("def f")
    assert len(ctx.prefix) <= 24_000
    assert ctx.suffix.endswith("return x\n")
    assert len(ctx.suffix) <= 8_000
    assert in_comment_or_string(ctx.prefix + ctx.suffix, len(ctx.prefix), "python") is False
    assert (
        should_complete(
            ctx, TriggerOptions(in_comments=False, multiline=False, mid_word_only=False)
        )
        is Mode.SINGLE
    )
