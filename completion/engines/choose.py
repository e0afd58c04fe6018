"""Which engine generates: the model's GGUF in llama.cpp, CTranslate2, or a remote server.

Every caller opens its engine here: the server (lsp_server/model_loader.py), `offpilot
complete`, `offpilot eval run` (local and on Ray) and `eval compare`, so that a model name,
an `engine` and a `--backend` mean the same thing everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path

from completion.child import ChildDied, run_python
from completion.cpu_load import usable_cores
from completion.engines.interface import Engine
from completion.models.requantize import reencoded_gguf
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
    """The GGUF llama.cpp runs (re-encoded where the spec says), or `ModelError` saying why not."""
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
    return _faster_gguf(gguf, installed.manifest.name)


def _faster_gguf(published: Path, model_name: str) -> Path:
    """The published GGUF, or its re-encoding where that is faster on this CPU.

    Without AVX-512, Q8_0 computed a prompt 1.4x as fast as the published Q5_0 and decoded
    as fast; with AVX-512 VNNI it computed a prompt as fast and decoded 15% slower
    (docs/latency.md, "The GGUF re-encoded as Q8_0").
    """
    other = reencoded_gguf(published, model_name)
    if other != published and llama_faster(other, published):
        return other
    return published


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
    stamp = gguf.parent / f".llama-runs-{_machine_key(_PROBE, gguf)}"
    if stamp.exists():
        return stamp.read_text(encoding="utf-8").strip() or "ok"
    try:
        run_python(_PROBE, str(gguf), timeout=PROBE_TIMEOUT_S)
        verdict = "ok"
    except subprocess.TimeoutExpired:
        log.warning("llama.cpp's test run took over %.0f s; not judged", PROBE_TIMEOUT_S)
        return "ok"
    except ChildDied as exc:
        verdict = str(exc)
        log.warning("llama.cpp failed its test run: %s", verdict)
    try:
        stamp.write_text(verdict + "\n", encoding="utf-8")
    except OSError as exc:
        log.info("cannot keep llama.cpp's verdict at %s: %s", stamp, exc)
    return verdict


# What the speed test does (its arguments: the two files, then the threads): both files
# loaded and run once (to page them in), then five rounds, the files' order alternating, of
# a 128-token prompt in the engine's 64-token chunks and 32 decode steps. Per round the
# candidate's time over the published file's; the medians of those ratios, and each file's
# median ms a token, as JSON. Ratios taken round by round cancel what the rest of the
# machine does meanwhile: three best-of runs of each file, its earlier form, gave a decode
# ratio of 0.92-1.21 for two files that decode equally fast.
_SPEED = (
    "import json, statistics as st, sys, time, llama_cpp\n"
    "ids = [(7919 * i) % 20000 + 100 for i in range(160)]\n"
    "files = sys.argv[1:3]\n"
    "llms = {p: llama_cpp.Llama(p, n_ctx=512, n_batch=64, n_threads=int(sys.argv[3]),"
    " verbose=False) for p in files}\n"
    "def once(llm):\n"
    "    llm.reset()\n"
    "    t = time.perf_counter()\n"
    "    llm.eval(ids[:64])\n"
    "    llm.eval(ids[64:128])\n"
    "    d = time.perf_counter()\n"
    "    for i in ids[128:]:\n"
    "        llm.eval([i])\n"
    "    return [(d - t) * 1e3 / 128, (time.perf_counter() - d) * 1e3 / 32]\n"
    "for p in files:\n"
    "    once(llms[p])\n"
    "ms = {p: [] for p in files}\n"
    "for r in range(5):\n"
    "    for p in files if r % 2 == 0 else files[::-1]:\n"
    "        ms[p].append(once(llms[p]))\n"
    "a, b = ms[files[0]], ms[files[1]]\n"
    "print(json.dumps({'ratio': [st.median(x[k] / y[k] for x, y in zip(a, b)) for k in (0, 1)],"
    " 'ms': {p: [st.median(x[k] for x in v) for k in (0, 1)] for p, v in ms.items()}}))\n"
)

# The re-encoded file runs where it computes a prompt at least 10% faster and decodes no
# more than 15% slower. On a 2-core AVX2 EPYC Q8_0's prompt took 0.73-0.84 of the time and
# its decode 1.01-1.09 (six runs of this test), and the users' replay was as fast or faster
# with it at every percentile; with AVX-512 VNNI its prompt took 0.95 and its decode 1.15
# (docs/latency.md, "The GGUF re-encoded as Q8_0").
FASTER_PROMPT = 0.90
SLOWER_DECODE = 1.15
# Load average over cores above which the machine is too busy to time (a build on 2 cores)
BUSY_LOAD = 0.75
SPEED_TIMEOUT_S = 90.0


def runs_faster(prompt_ratio: float, decode_ratio: float) -> bool:
    """Whether a file whose times are these ratios of another's should run instead of it."""
    return prompt_ratio <= FASTER_PROMPT and decode_ratio <= SLOWER_DECODE


def llama_faster(candidate: Path, published: Path) -> bool:
    """Whether llama.cpp runs `candidate` faster than `published` here (`runs_faster`).

    Measured once per llama.cpp build and CPU in a child process (about 27 s; a crash there
    is a no), and kept beside the files with the figures. Not on a machine that other work
    keeps busy: two llama.cpp threads sharing a core with it ran 5-10 times slower and gave
    ratios of nothing, so `published` runs and the test waits for the next start: a process
    answers the same all its life, so a reload for a new thread count never waits for it.
    """
    key = _machine_key(_SPEED, candidate, published)
    if key not in _verdicts:
        _verdicts[key] = _time_both(candidate, published, published.parent / f".llama-faster-{key}")
    return _verdicts[key]


_verdicts: dict[str, bool] = {}  # this process's answers, by `_machine_key`


def _time_both(candidate: Path, published: Path, stamp: Path) -> bool:
    """The kept verdict, or the speed test's now (kept where it ran to its end)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return bool(json.loads(stamp.read_text(encoding="utf-8"))["faster"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = usable_cores()
    if load > BUSY_LOAD * cores:
        log.info("the machine is busy (load %.1f): %s runs, timed at a later start", load,
                 published.name)  # fmt: skip
        return False
    try:
        figures = json.loads(
            run_python(_SPEED, str(candidate), str(published), str(cores), timeout=SPEED_TIMEOUT_S)
        )
        (prompt_ratio, decode_ratio), ms = figures["ratio"], figures["ms"]
        new, old = ms[str(candidate)], ms[str(published)]
    except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot time %s in llama.cpp (%s); running %s", candidate, exc, published)
        return False
    faster = runs_faster(prompt_ratio, decode_ratio)
    log.info(
        "llama.cpp, ms a prompt token / decode step: %s %.2f / %.1f, %s %.2f / %.1f "
        "(ratios %.2f / %.2f); running %s",
        candidate.name,
        new[0],
        new[1],
        published.name,
        old[0],
        old[1],
        prompt_ratio,
        decode_ratio,
        (candidate if faster else published).name,
    )
    with contextlib.suppress(OSError):
        stamp.write_text(
            json.dumps(
                {
                    "faster": faster,
                    "ratio": [prompt_ratio, decode_ratio],
                    "ms": {candidate.name: new, published.name: old},
                }
            ),
            encoding="utf-8",
        )
    return faster


def _machine_key(program: str, *files: Path) -> str:
    """What a verdict about `files` depends on: the test, the files, llama.cpp's build, the CPU."""
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent
    key = hashlib.sha256(program.encode())
    for path in files:  # a file of other types runs other kernels
        key.update(f"{path.name}\n".encode())
    for so in sorted(lib.rglob("*.so*")):
        stat = so.stat()
        key.update(f"{so.relative_to(lib)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    key.update(_cpu_flags().encode())
    return key.hexdigest()[:16]


def _cpu_flags() -> str:
    """The CPU's model and instruction sets, as /proc/cpuinfo names them ("" elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))
