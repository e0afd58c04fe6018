"""Client-facing settings.

Parsed once from `initializationOptions` or `workspace/didChangeConfiguration`; a bad value
warns and keeps the default. The warnings come as one message (one popup in the editor, one
log line), bounded whatever the client sent: at most MAX_LISTED settings named, each name and
value cut to MAX_SHOWN_CHARS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from completion import gate
from completion.engines.choose import DEFAULT_ENGINE, ENGINES
from completion.options import CompletionOptions

# The pipeline's defaults, written once there (completion/pipeline.py).
_PIPELINE = CompletionOptions()

MAX_SHOWN_CHARS = 80  # of a bad setting's name, value or reason in the warning
MAX_LISTED = 8  # bad settings named in the warning; the rest are counted
_SECRET = frozenset({"backend_api_key_env"})  # a bad value here may be the key itself

# camelCase names editors send -> field names
_ALIASES = {
    "maxTokens": "max_tokens",
    "debounceMs": "debounce_ms",
    "contextTokens": "context_tokens",
    "multiLine": "multiline",
    "multiline": "multiline",
    "timeBudgetMs": "time_budget_ms",
    "promptCache": "prompt_cache",
    "crossFile": "crossfile",
    "crossfile": "crossfile",
    "prefetch": "prefetch",
    "warm": "warm",
    "completionTrace": "completion_trace",
    "gate": "gate",
    "engine": "engine",
    "backend": "backend",
    "backendApiKeyEnv": "backend_api_key_env",
    "backendModel": "backend_model",
}


@dataclass(frozen=True)
class ServerConfig:
    """Everything a user can configure at run time."""

    enable: bool = True
    languages: dict[str, bool] = field(default_factory=dict)  # per-language enable
    model: str | None = None
    max_tokens: int = _PIPELINE.max_new_tokens
    multiline: bool = _PIPELINE.trigger.multiline
    debounce_ms: int = 40
    # prompt budget, split 3:1 between prefix and suffix; None: the model family's windows
    context_tokens: int | None = None
    time_budget_ms: int = round(_PIPELINE.time_budget_s * 1000)
    threads: int = 0  # 0: auto, the cores other processes leave free (completion/cpu_load.py)
    # what runs the local model: auto (llama.cpp where its GGUF is installed), llama.cpp or
    # ctranslate2 (completion/engines/choose.py)
    engine: str = DEFAULT_ENGINE
    cache: bool = True  # completion cache, type-through and in-flight reuse
    prompt_cache: bool = _PIPELINE.prompt_cache  # reuse the model state of the prompt's head
    crossfile: bool = False  # context from other open documents and imported workspace files
    # after a suggestion at the end of a line, compute the next line's while the user reads it
    prefetch: bool = True
    # compute the prompt where the cursor comes to rest (`offpilot/cursorRested` from the
    # client), so that the first suggestion there does not wait for it
    warm: bool = True
    # show or not (completion/gate.py): off, quiet, balanced or eager; each language's
    # threshold then moves with this user's own accepts and rejects there (stats.py)
    gate: str = _PIPELINE.gate
    # one `offpilot/completionTrace` notification per request (benchmarks; lsp_server/trace.py)
    completion_trace: bool = False
    # an OpenAI-compatible completions server that generates instead of the local engine
    # (`model` still names the tokenizer and prompt format); None: `--backend`, else local
    backend: str | None = None
    # the NAME of the environment variable that holds the backend's API key, never the key
    backend_api_key_env: str | None = None
    backend_model: str | None = None  # the request's `model` field (vLLM, Ollama route by it)

    def language_enabled(self, language: str) -> bool:
        """Whether completions are wanted for this language id."""
        return self.enable and self.languages.get(language, self.languages.get("*", True))

    @property
    def prefix_tokens(self) -> int | None:
        """The prefix's share of the context budget (None: the family's window)."""
        return None if self.context_tokens is None else self.context_tokens * 3 // 4

    @property
    def suffix_tokens(self) -> int | None:
        """The suffix's share of the context budget (None: the family's window)."""
        if self.context_tokens is None:
            return None
        return self.context_tokens - self.context_tokens * 3 // 4


_BOUNDS: dict[str, tuple[int, int]] = {
    "max_tokens": (1, 512),
    "debounce_ms": (0, 5000),
    "context_tokens": (32, 8192),
    "time_budget_ms": (50, 60_000),
    "threads": (0, 256),
}


def _check(name: str, value: Any, default: Any) -> Any:
    """The value if it fits the field's type and bounds; raises ValueError otherwise."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if name == "context_tokens" and value is None:
        return None  # back to the model family's windows
    if name in _BOUNDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        lo, hi = _BOUNDS[name]
        if not lo <= value <= hi:
            raise ValueError(f"expected {lo}..{hi}")
        return value
    if name == "model":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError("expected a model name or path")
        return value
    if name == "backend":
        if value is None or value == "":
            return None
        from completion.engines.remote import parse_backend_url

        if not isinstance(value, str):
            raise ValueError("expected an http(s):// URL")
        parse_backend_url(value)  # raises ValueError naming what is wrong
        return value.strip()
    if name in ("backend_api_key_env", "backend_model"):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError("expected a name")
        if name == "backend_api_key_env" and value is not None and not value.isidentifier():
            raise ValueError("expected an environment variable's name, not its value")
        return value
    if name == "engine":
        if value not in ENGINES:
            raise ValueError(f"expected one of {', '.join(ENGINES)}")
        return value
    if name == "gate":
        if not isinstance(value, str):
            raise ValueError(f"expected one of {gate.OFF}, {', '.join(gate.POINTS)}")
        return gate.normalize_point(value)  # raises ValueError naming the points
    if name == "languages":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
        ):
            raise ValueError('expected a map of language id to true/false, e.g. {"python": true}')
        return dict(value)
    raise ValueError("unknown setting")


def parse_config(raw: Any, base: ServerConfig | None = None) -> tuple[ServerConfig, list[str]]:
    """Apply settings from a client onto `base`; returns the config and warnings for bad ones.

    Accepts the settings object itself or one nested under an `offpilot` key.
    """
    base = base or ServerConfig()
    if raw is None:
        return base, []
    if isinstance(raw, dict) and isinstance(raw.get("offpilot"), dict):
        raw = raw["offpilot"]
    if not isinstance(raw, dict):
        return base, [f"offpilot settings should be an object, got {type(raw).__name__}; ignored"]
    names = {f.name for f in dataclasses.fields(ServerConfig)}
    changes: dict[str, Any] = {}
    bad: list[str] = []
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if name not in names:
            bad.append(f"{_cut(repr(key))} (unknown setting)")
            continue
        try:
            changes[name] = _check(name, value, getattr(base, name))
        except ValueError as exc:
            shown = "<hidden>" if name in _SECRET else _cut(repr(value))
            bad.append(f"{_cut(key)}={shown} ({_cut(str(exc))})")
    return dataclasses.replace(base, **changes), [_warning(bad)] if bad else []


def _cut(text: str) -> str:
    """`text`, cut to MAX_SHOWN_CHARS: a setting's value may be megabytes."""
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _warning(bad: list[str]) -> str:
    """One message naming the bad settings: one popup, however many there are."""
    listed = "; ".join(bad[:MAX_LISTED])
    more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    noun = "setting" if len(bad) == 1 else "settings"
    return f"offpilot: {len(bad)} {noun} ignored, defaults kept: {listed}{more}"
