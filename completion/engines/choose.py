"""Which engine generates: the model's GGUF in llama.cpp, CTranslate2, or a remote server.

Every caller opens its engine here: the server (lsp_server/model_loader.py), `offpilot
complete`, `offpilot eval run` (local and on Ray) and `eval compare`, so that a model name,
an `engine` and a `--backend` mean the same thing everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

from completion.engines.interface import Engine
from completion.models.store import (
    InstalledModel,
    ModelCorruptError,
    ModelError,
    installed_gguf,
    locate,
)

log = logging.getLogger(__name__)

# "auto": llama.cpp where the model's GGUF and llama.cpp are installed, else CTranslate2.
# llama.cpp decodes the 4-bit GGUF at 21-25 ms a token on 2 cores where CTranslate2's int8
# takes 40-48 ms, and a prompt that shares its start with the last reuses it in place
# (docs/latency.md, "The engine"); CTranslate2 runs models that have no GGUF.
ENGINES = ("auto", "llama.cpp", "ctranslate2")
DEFAULT_ENGINE = "auto"


def open_engine(
    model: InstalledModel | str | None = None,
    *,
    cache_dir: str | None = None,
    engine: str = DEFAULT_ENGINE,
    backend: str | None = None,
    threads: int = 0,
    api_key_env: str | None = None,
    backend_model: str | None = None,
) -> Engine:
    """The engine for `model`: llama.cpp or CTranslate2 locally, or the server at `backend`.

    `model` is an installed model, or a name or directory looked up in `cache_dir` (None:
    the default model); a missing or damaged one raises `ModelError`, as does `engine`
    "llama.cpp" where its GGUF or llama.cpp is missing. With a backend, the model's
    tokenizer, FIM markers and stop tokens are used and the server generates (`threads` is
    then the server's business); the heavy imports happen only for the engine chosen.
    """
    installed = model if isinstance(model, InstalledModel) else locate(model, cache_dir)
    if backend:
        from completion.engines.remote import RemoteOptions, load_remote

        return load_remote(installed, RemoteOptions(backend, api_key_env, backend_model))
    _, gguf = local_engine(installed, engine)
    if gguf is not None:
        from completion.engines.llamacpp import LlamaOptions, load_llamacpp

        return load_llamacpp(installed, gguf, LlamaOptions(threads=threads))
    from completion.engines.ct2 import EngineOptions, load_engine

    return load_engine(installed, EngineOptions(threads=threads))


def local_engine(
    installed: InstalledModel, engine: str = DEFAULT_ENGINE
) -> tuple[str, Path | None]:
    """The engine `engine` means for this model, and the GGUF when it is llama.cpp.

    "auto" is llama.cpp where llama-cpp-python and the model's verified GGUF are installed,
    else CTranslate2 (a damaged GGUF is logged, not fatal). "llama.cpp" where either is
    missing raises `ModelError`, as does an unknown name.
    """
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "ctranslate2":
        return engine, None
    try:
        gguf = _llama_gguf(installed)
    except ModelError as exc:
        if engine == "llama.cpp":
            raise
        if isinstance(exc, ModelCorruptError):  # not installed is a choice; damaged is news
            log.warning("%s; running the CTranslate2 model instead", exc)
        return "ctranslate2", None
    return "llama.cpp", gguf


def _llama_gguf(installed: InstalledModel) -> Path:
    """The verified GGUF llama.cpp would run, or `ModelError` saying why it cannot."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"engine llama.cpp: llama-cpp-python is not installed ({exc})") from exc
    gguf = installed_gguf(installed)  # raises ModelCorruptError for a damaged one
    if gguf is None:
        raise ModelError(
            f"engine llama.cpp: {installed.manifest.name} has no GGUF installed "
            f"(`offpilot model gguf {installed.manifest.name}`)"
        )
    return gguf
