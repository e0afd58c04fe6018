"""The published GGUF's weights re-encoded once in a type with faster CPU kernels.

The 0.5B model's published GGUF is mostly Q5_0 (its 896-wide rows rule out the k-quants),
and llama.cpp's Q5_0 kernels are slow without AVX-512: on a 2-core AVX2 EPYC a prompt of
800 tokens took 10.3 ms a token, against 6.9 ms for the same file re-encoded as Q8_0, which
decoded as fast (docs/latency.md, "The GGUF re-encoded as Q8_0"). With AVX-512 VNNI, Q8_0
decoded 15% slower, so which file runs is timed on the machine (`choose.llama_faster`). Q8_0 holds
each Q5_0 value almost exactly (top-1 agreement 99.2%, KL 0.0008 over 6,000 positions of
real code): the model, its answers and its log-probs stay the published file's.

The re-encoding is llama.cpp's own quantizer, run once in a child process (a crash there
cannot take the server with it) and written under another name beside the published GGUF.
A stamp records what it was made from; a file that does not match its stamp is made again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path

from completion.child import run_python
from completion.models.specs import KNOWN_MODELS, GgufPackageModel
from completion.models.store import STAMP_NAME, file_identity

log = logging.getLogger(__name__)

# llama.cpp's file types by name (llama.h, `LLAMA_FTYPE_MOSTLY_*`)
FILE_TYPES = {"q8_0": 7}
REENCODE_TIMEOUT_S = 600.0

_REENCODE = (
    "import ctypes, sys, llama_cpp\n"
    "params = llama_cpp.llama_model_quantize_default_params()\n"
    "params.ftype = int(sys.argv[3])\n"
    "params.allow_requantize = True\n"
    "rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(),"
    " ctypes.byref(params))\n"
    "sys.exit(1 if rc else 0)\n"
)


def reencoded_gguf(published: Path, model_name: str) -> Path:
    """`published` (`model_name`'s verified GGUF) re-encoded in its spec's `runtime_type`.

    Made now if it is missing or does not match its stamp (about 5 s, once). The published
    file itself where the spec names no type, and where the re-encoding fails (logged).
    """
    spec = KNOWN_MODELS.get(model_name)
    if not isinstance(spec, GgufPackageModel) or not spec.runtime_type:
        return published
    kind = spec.runtime_type
    out = published.with_name(f"{published.stem}.{kind}.gguf")
    stamp = out.with_name(out.name + STAMP_NAME)
    made_from = {"source_sha256": spec.gguf_sha256, "type": kind, "llama_cpp": _llama_version()}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        kept = json.loads(stamp.read_text(encoding="utf-8"))
        if kept.get("made_from") == made_from and kept.get("file") == file_identity(out):
            return out
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    log.info("re-encoding %s as %s for llama.cpp (once) ...", published.name, kind)
    try:
        run_python(
            _REENCODE, str(published), str(tmp), str(FILE_TYPES[kind]), timeout=REENCODE_TIMEOUT_S
        )
        os.replace(tmp, out)
        stamp.write_text(
            json.dumps({"made_from": made_from, "file": file_identity(out)}), encoding="utf-8"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot re-encode %s as %s (%s); running it as published", published, kind, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
        return published
    return out


def _llama_version() -> str:
    """The installed llama-cpp-python's version: another quantizer may write another file."""
    try:
        import llama_cpp
    except ImportError:
        return ""
    return str(getattr(llama_cpp, "__version__", ""))
