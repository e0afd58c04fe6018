"""Which engine generates: the local CTranslate2 model, or a remote server (one home for it).

The server (lsp_server/model_loader.py), `offpilot eval run` and `eval compare` choose here,
so that a `--backend` means the same thing everywhere.
"""

from __future__ import annotations

from completion.engines.interface import Engine
from completion.models.store import InstalledModel


def engine_for(
    model: InstalledModel,
    backend: str | None = None,
    *,
    threads: int = 0,
    api_key_env: str | None = None,
    backend_model: str | None = None,
) -> Engine:
    """The engine for `model`: CTranslate2 locally, or the OpenAI-compatible server at `backend`.

    With a backend, the model's tokenizer, FIM markers and stop tokens are used and the
    server generates (`threads` is then the server's business); the heavy imports happen
    only for the engine chosen.
    """
    if backend:
        from completion.engines.remote import RemoteOptions, load_remote

        return load_remote(model, RemoteOptions(backend, api_key_env, backend_model))
    from completion.engines.ct2 import EngineOptions, load_engine

    return load_engine(model, EngineOptions(threads=threads))
