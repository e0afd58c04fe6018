"""Context stage: the text around the cursor, as plain strings."""

from __future__ import annotations

from dataclasses import dataclass

# Bounds the work on huge files before any tokenisation: far more than a prompt can hold.
MAX_PREFIX_CHARS = 24_000
MAX_SUFFIX_CHARS = 8_000


@dataclass(frozen=True)
class Context:
    """What surrounds the cursor: prefix and suffix (possibly windowed) and the current line."""

    prefix: str
    suffix: str
    line_prefix: str
    line_suffix: str
    language: str = "python"
    path: str | None = None


def extract_context(
    text: str, offset: int, language: str = "python", path: str | None = None
) -> Context:
    """Split the document at the cursor; very long sides are windowed at line boundaries."""
    offset = max(0, min(offset, len(text)))
    prefix, suffix = text[:offset], text[offset:]
    if len(prefix) > MAX_PREFIX_CHARS:
        window = prefix[-MAX_PREFIX_CHARS:]
        prefix = window[window.find("\n") + 1 :] if "\n" in window else window
    if len(suffix) > MAX_SUFFIX_CHARS:
        window = suffix[:MAX_SUFFIX_CHARS]
        suffix = window[: window.rfind("\n") + 1] if "\n" in window else window
    line_prefix = prefix[prefix.rfind("\n") + 1 :]
    newline = suffix.find("\n")
    line_suffix = (suffix if newline < 0 else suffix[:newline]).rstrip("\r")
    return Context(prefix, suffix, line_prefix, line_suffix, language, path)
