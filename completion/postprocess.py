"""Post-processing stage: turn raw model output into what the editor should show."""

from __future__ import annotations

from completion.context import Context


def clean_single_line(text: str, context: Context) -> str:
    """One line of completion: trailing blanks trimmed, a repeat of the line's rest dropped."""
    text = text.rstrip()
    if not text.strip():
        return ""
    rest = context.line_suffix.strip()
    if rest:
        if "\n" in text:  # a new line cannot be inserted in the middle of this one
            return ""
        if text.endswith(rest):  # the model rewrote what already follows the cursor
            text = text[: -len(rest)].rstrip()
    return text if text.strip() else ""
