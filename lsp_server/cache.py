"""Completion cache with type-through.

Entries are keyed by document and a window of text around the cursor. When the user types
characters that match a suggestion on screen, the rest of it is served from here without
running the model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

PREFIX_WINDOW = 2048
SUFFIX_WINDOW = 512
MAX_TYPED = 256


@dataclass(frozen=True)
class CursorKey:
    """A document and the text around a cursor (windows bound the cost on huge files)."""

    uri: str
    prefix_tail: str
    suffix_head: str

    @classmethod
    def at(cls, uri: str, text: str, offset: int) -> CursorKey:
        """The key of a cursor position in a document snapshot."""
        return cls(
            uri,
            text[max(0, offset - PREFIX_WINDOW) : offset],
            text[offset : offset + SUFFIX_WINDOW],
        )


def typed_since(earlier: CursorKey, now: CursorKey) -> str | None:
    """What was typed at the cursor between two snapshots, or None if they don't line up.

    `now` must have the same text after the cursor and its text before the cursor must be
    `earlier`'s plus the typed characters.
    """
    if earlier.uri != now.uri or earlier.suffix_head != now.suffix_head:
        return None
    prefix, before = now.prefix_tail, earlier.prefix_tail
    for n in range(min(MAX_TYPED, len(prefix)) + 1):
        head = prefix[: len(prefix) - n]
        whole = len(head) == len(before)  # else both windows were cut at PREFIX_WINDOW
        if before.endswith(head) and (whole or len(prefix) == PREFIX_WINDOW):
            return prefix[len(prefix) - n :]
    return None


class CompletionCache:
    """A bounded LRU of completions, with type-through lookups."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CursorKey, str] = OrderedDict()
        self._prefetched: set[CursorKey] = set()  # entries a prefetch made before anyone asked
        self.hits = 0
        self.misses = 0
        # how the last hit was found: "cache" (this cursor), "typethrough" (the rest of a
        # suggestion being typed), "prefetch" (computed before the user got here)
        self.last_hit = ""

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: CursorKey, completion: str, prefetched: bool = False) -> None:
        """Remember the completion shown at `key` (or made ahead of time, `prefetched`)."""
        self._entries[key] = completion
        self._entries.move_to_end(key)
        if prefetched:
            self._prefetched.add(key)
        else:
            self._prefetched.discard(key)
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._prefetched.discard(old)

    def get(self, key: CursorKey) -> str | None:
        """The completion for this cursor: exact, or the rest of one being typed through."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            self.last_hit = "prefetch" if key in self._prefetched else "cache"
            return self._entries[key]
        for earlier in reversed(self._entries):
            if earlier.uri != key.uri:
                continue
            typed = typed_since(earlier, key)
            completion = self._entries[earlier]
            if typed and completion.startswith(typed) and len(completion) > len(typed):
                self.hits += 1
                self.last_hit = "typethrough"
                return completion[len(typed) :]
        self.misses += 1
        return None

    def clear(self) -> None:
        """Drop everything (the settings that shaped the entries changed)."""
        self._entries.clear()
        self._prefetched.clear()

    def forget(self, uri: str) -> None:
        """Drop a closed document's entries."""
        for key in [k for k in self._entries if k.uri == uri]:
            del self._entries[key]
            self._prefetched.discard(key)
