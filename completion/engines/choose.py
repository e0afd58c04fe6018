"""Which engine generates: the local CTranslate2 model, or a remote server (one home for it).

Every caller opens its engine here: the server (lsp_server/model_loader.py), `offpilot
complete`, `offpilot eval run` (local and on Ray) and `eval compare`, so that a model name
and a `--backend` mean the same thing everywhere.
"""

from __future__ import annotations

from completion.engines.interface import Engine
from completion.models.store import InstalledModel, locate


def open_engine(
    model: InstalledModel | str | None = None,
    *,
    cache_dir: str | None = None,
    backend: str | None = None,
    threads: int = 0,
    api_key_env: str | None = None,
    backend_model: str | None = None,
) -> Engine:
    """The engine for `model`: CTranslate2 locally, or the OpenAI-compatible server at `backend`.

    `model` is an installed model, or a name or directory looked up in `cache_dir` (None:
    the default model); a missing or damaged one raises `ModelError`. With a backend, the
    model's tokenizer, FIM markers and stop tokens are used and the server generates
    (`threads` is then the server's business); the heavy imports happen only for the engine
    chosen.
    """
    installed = model if isinstance(model, InstalledModel) else locate(model, cache_dir)
    if backend:
        from completion.engines.remote import RemoteOptions, load_remote

        return load_remote(installed, RemoteOptions(backend, api_key_env, backend_model))
    from completion.engines.ct2 import EngineOptions, load_engine

    return load_engine(installed, EngineOptions(threads=threads))
