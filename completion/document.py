"""A document other than the one completed: another open buffer, or a workspace file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """Another document the editor holds (or a file of the workspace)."""

    path: str
    text: str
    language: str = "python"
