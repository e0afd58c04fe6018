"""Which engine generates: the model's GGUF in llama.cpp, CTranslate2, or a remote server.

Every caller opens its engine here: the server (lsp_server/model_loader.py), `offpilot
complete`, `offpilot eval run` (local and on Ray) and `eval compare`, so that a model name,
an `engine` and a `--backend` mean the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import subprocess
import sys
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
    verdict = llama_runs(gguf)
    if verdict != "ok":
        raise ModelCorruptError(
            f"engine llama.cpp: llama.cpp does not run on this CPU ({verdict} in a test run; "
            "`make setup` builds it for this CPU)"
        )
    return gguf


# What the test run does: load the GGUF and evaluate a few tokens (every kernel a prompt uses).
_PROBE = (
    "import sys, llama_cpp\n"
    "llm = llama_cpp.Llama(sys.argv[1], n_ctx=64, n_threads=1, verbose=False)\n"
    "llm.eval(llm.tokenize(b'def add(a, b):\\n    return a + b\\n'))\n"
)
PROBE_TIMEOUT_S = 120.0


def llama_runs(gguf: Path) -> str:
    """`"ok"` where llama.cpp runs `gguf` on this CPU, else what happened to it.

    A llama.cpp built for another CPU (AVX-512 on a CPU without it) dies of SIGILL at its
    first matrix product and takes the whole server with it, so it is tried first in a
    child process, once per llama.cpp build and CPU: the verdict is kept beside the GGUF.
    A run that times out (a busy machine) is not kept, and counts as running.
    """
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent
    key = hashlib.sha256(_PROBE.encode())
    for so in sorted(lib.rglob("*.so*")):
        stat = so.stat()
        key.update(f"{so.relative_to(lib)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    key.update(_cpu_flags().encode())
    stamp = gguf.parent / f".llama-runs-{key.hexdigest()[:16]}"
    if stamp.exists():
        return stamp.read_text(encoding="utf-8").strip() or "ok"
    try:
        run = subprocess.run(
            [sys.executable, "-c", _PROBE, str(gguf)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("llama.cpp's test run took over %.0f s; not judged", PROBE_TIMEOUT_S)
        return "ok"
    verdict = "ok" if run.returncode == 0 else _death(run.returncode, run.stderr)
    if verdict != "ok":
        log.warning("llama.cpp failed its test run: %s", verdict)
    try:
        stamp.write_text(verdict + "\n", encoding="utf-8")
    except OSError as exc:
        log.info("cannot keep llama.cpp's verdict at %s: %s", stamp, exc)
    return verdict


def _death(returncode: int, stderr: bytes) -> str:
    """A child's end in words: the signal that killed it, or its exit and last error line."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"exit {returncode}: {last[0][:200]}".rstrip(": ")


def _cpu_flags() -> str:
    """The CPU's model and instruction sets, as /proc/cpuinfo names them ("" elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))
