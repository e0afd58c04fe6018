"""The cursor marker the tests write in code: `|` stands where the cursor is.

One helper for every stage test, so a document reads as the editor shows it.
"""

from __future__ import annotations

from completion.context import Context, extract_context

MARK = "|"


def at_cursor(doc: str) -> tuple[str, int]:
    """`doc` without its marker, and the offset the marker stood at.

    Exactly one `|`: none, or a second one, is a mistake in the test, not a document to
    complete (a `|` the code needs would be dropped silently).
    """
    if doc.count(MARK) != 1:
        raise ValueError(f"a test document needs exactly one {MARK!r} cursor: {doc!r}")
    offset = doc.index(MARK)
    return doc.replace(MARK, ""), offset


def context_at(doc: str, language: str = "python", path: str | None = None) -> Context:
    """The pipeline's `Context` at the marked cursor."""
    text, offset = at_cursor(doc)
    return extract_context(text, offset, language, path)


# The small document several stages are tested on: the cursor after `return `.
SOURCE, CURSOR = at_cursor("def add(a, b):\n    return |\n\nprint(add(1, 2))\n")
