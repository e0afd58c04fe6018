"""The completion cache: keyed by the text at the cursor, typed through, bounded."""

from __future__ import annotations

from lsp_server.cache import PREFIX_WINDOW, CompletionCache, CursorKey, typed_since


def key(text: str, offset: int) -> CursorKey:
    return CursorKey.at("file:///a.py", text, offset)


def test_typed_since() -> None:
    before = key("x = \nrest", 4)
    assert typed_since(before, key("x = 1\nrest", 5)) == "1"
    assert typed_since(before, key("x = \nrest", 4)) == ""
    assert typed_since(before, key("x = 1\nREST", 5)) is None  # text after the cursor changed
    assert typed_since(before, key("y = 1\nrest", 5)) is None
    long = "a" * (PREFIX_WINDOW * 2)
    assert typed_since(key(long + "\n", len(long)), key(long + "bc\n", len(long) + 2)) == "bc"


def test_cache_exact_and_type_through() -> None:
    cache = CompletionCache()
    text = "def add(a, b):\n    return \n"
    cursor = text.index("return ") + 7
    cache.put(key(text, cursor), "a + b")
    assert cache.get(key(text, cursor)) == "a + b"
    typed = text[:cursor] + "a " + text[cursor:]
    assert cache.get(key(typed, cursor + 2)) == "+ b"
    wrong = text[:cursor] + "x" + text[cursor:]
    assert cache.get(key(wrong, cursor + 1)) is None
    done = text[:cursor] + "a + b" + text[cursor:]
    assert cache.get(key(done, cursor + 5)) is None  # fully typed: ask the model again
    assert (cache.hits, cache.misses) == (2, 2)


def test_cache_is_bounded() -> None:
    cache = CompletionCache(max_entries=3)
    for i in range(10):
        cache.put(key(f"x{i}", 2), str(i))
    assert len(cache) == 3
    cache.forget("file:///a.py")
    assert len(cache) == 0
