"""Server config: the settings parsed once, with defaults, aliases and a warning per bad key."""

from __future__ import annotations

from lsp_server.config import MAX_LISTED, MAX_SHOWN_CHARS, ServerConfig, parse_config


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
    assert not config.language_enabled("markdown")
    assert config.language_enabled("python")
    # unset, the prompt windows are the model family's (completion/models/specs.py)
    assert (config.context_tokens, config.prefix_tokens, config.suffix_tokens) == (None,) * 3
    assert parse_config(None) == (ServerConfig(), [])


def test_context_tokens_split_three_to_one_and_null_restores_the_family_windows() -> None:
    config, warnings = parse_config({"contextTokens": 1001})
    assert warnings == []
    assert (config.prefix_tokens, config.suffix_tokens) == (750, 251)
    back, warnings = parse_config({"contextTokens": None}, config)
    assert warnings == []
    assert back.context_tokens is None
    assert back.prefix_tokens is None
    _, warnings = parse_config({"contextTokens": 8})
    assert len(warnings) == 1
    assert "32..8192" in warnings[0]


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
    assert config.enable is True
    assert config.threads == 2
    assert len(warnings) == 1  # one message, naming each bad setting
    for key in ("maxTokens", "debounceMs", "enable", "'bogus' (unknown setting)", "languages"):
        assert key in warnings[0]
    assert warnings[0].startswith("offpilot: 5 settings ignored, defaults kept: ")
    assert parse_config("nonsense")[1]


def test_disable_switches_everything_off() -> None:
    config, _ = parse_config({"enable": False})
    assert not config.language_enabled("python")


def test_backend_settings() -> None:
    config, warnings = parse_config(
        {"backend": "http://gpu-box:8080", "backendApiKeyEnv": "TEAM_KEY", "backendModel": "q"}
    )
    assert warnings == []
    assert (config.backend, config.backend_api_key_env, config.backend_model) == (
        "http://gpu-box:8080",
        "TEAM_KEY",
        "q",
    )
    assert parse_config({"backend": ""}, config)[0].backend is None  # back to the local engine
    bad, warnings = parse_config(
        {"backend": "gpu-box:8080", "backendApiKeyEnv": "sk-live 123", "backendModel": 5}
    )
    assert (bad.backend, bad.backend_api_key_env, bad.backend_model) == (None, None, None)
    assert len(warnings) == 1
    assert warnings[0].count("=") == 3
    assert "http" in warnings[0]
    assert "variable's name" in warnings[0]
    assert "sk-live" not in warnings[0]  # the key's name was wanted: the value may be the key


def test_many_huge_bad_settings_make_one_bounded_warning() -> None:
    """30 bad settings of 1 MB each: one message of a few KB, each value cut, the rest counted."""
    raw = {f"bogus{i}": "v" * (1 << 20) for i in range(20)}
    raw |= {"maxTokens": "w" * (1 << 20), "x" * (1 << 20): 1}
    raw |= {f"k{i}": i for i in range(8)}
    config, warnings = parse_config(raw)
    assert config == ServerConfig()
    assert len(warnings) == 1
    (warning,) = warnings
    assert len(warning) < (MAX_SHOWN_CHARS * 2 + 20) * MAX_LISTED + 200
    assert warning.startswith("offpilot: 30 settings ignored, defaults kept: 'bogus0'")
    assert warning.endswith(f"; and {30 - MAX_LISTED} more")
    assert "v" * MAX_SHOWN_CHARS not in warning


def test_the_gate_setting_names_an_operating_point() -> None:
    """off, quiet, balanced (the default), eager; any other value warns and keeps the last."""
    assert ServerConfig().gate == "balanced"
    for value, point in [("off", "off"), ("quiet", "quiet"), (" Eager ", "eager"), ("0", "off")]:
        config, warnings = parse_config({"offpilot": {"gate": value}})
        assert (config.gate, warnings) == (point, [])
    quiet, _ = parse_config({"gate": "quiet"})
    for bad in ("loud", "", 1, None, ["eager"]):
        config, warnings = parse_config({"gate": bad}, quiet)
        assert config.gate == "quiet"  # the setting before stays
        assert len(warnings) == 1
        assert warnings[0].startswith("offpilot: 1 setting ignored, defaults kept: gate=")
        assert "quiet, balanced, eager" in warnings[0]
