"""Config parsing, the completion cache, and local statistics."""

from pathlib import Path

from lsp_server.cache import PREFIX_WINDOW, CompletionCache, CursorKey, typed_since
from lsp_server.config import ServerConfig, parse_config
from lsp_server.stats import Stats, format_summary


def test_config_defaults_and_aliases() -> None:
    config, warnings = parse_config(
        {
            "offpilot": {
                "maxTokens": 20,
                "debounceMs": 0,
                "languages": {"markdown": False},
                "multiLine": True,
            }
        }
    )
    assert warnings == []
    assert (config.max_tokens, config.debounce_ms, config.multiline) == (20, 0, True)
    assert not config.language_enabled("markdown") and config.language_enabled("python")
    assert config.prefix_tokens + config.suffix_tokens == config.context_tokens
    assert parse_config(None) == (ServerConfig(), [])


def test_invalid_config_warns_and_keeps_defaults() -> None:
    config, warnings = parse_config(
        {
            "maxTokens": "lots",
            "debounceMs": -5,
            "enable": "yes",
            "threads": 2,
            "bogus": 1,
            "languages": [1],
        }
    )
    assert config.max_tokens == ServerConfig().max_tokens
    assert config.debounce_ms == ServerConfig().debounce_ms
    assert config.enable is True and config.threads == 2
    assert len(warnings) == 5
    assert any("bogus" in w for w in warnings)
    assert parse_config("nonsense")[1]


def test_disable_switches_everything_off() -> None:
    config, _ = parse_config({"enable": False})
    assert not config.language_enabled("python")


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


def test_stats_persist(tmp_path: Path) -> None:
    stats = Stats(tmp_path / "s.json")
    stats.record("shown", "python", 10)
    stats.record("accepted", "python", 4)
    stats.record("shown", "rust", 3)
    stats.record("rejected", "rust")
    again = Stats(tmp_path / "s.json").summary()
    assert again["languages"]["python"]["acceptance_rate"] == 1.0
    assert again["total"]["shown"] == 2 and again["total"]["accepted_chars"] == 4
    assert "python" in format_summary(again)
    (tmp_path / "s.json").write_text("garbage")
    assert Stats(tmp_path / "s.json").summary()["total"]["shown"] == 0
