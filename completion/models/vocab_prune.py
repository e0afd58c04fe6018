"""Prune a converted model's output vocabulary to the tokens that occur in code.

The 0.5B model's output matrix has 151,936 rows (27% of its weights) and every decode step
reads all of them. Most rows are tokens of natural languages that code never contains.
Pruning keeps the rows of a vendored token list and reorders the vocabulary so that those
tokens come first: CTranslate2 then scores only the first `kept` ids (its output layer may be
smaller than its embedding table), while the input embeddings keep every token, so any
prompt can still be read. `CT2Engine` maps the reordered ids back to the tokenizer's ids.
The byte-level tokens are always kept, so any text can still be written.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

# CTranslate2's DataType enum order (include/ctranslate2/types.h)
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_EMBEDDINGS = "decoder/embeddings/"
_PROJECTION = "decoder/projection/"
_BINARY_VERSION = 6


class PruneError(ValueError):
    """The model cannot be pruned (unknown layout or format)."""


@dataclass(frozen=True)
class Variable:
    """One named array of a CTranslate2 `model.bin`: where its bytes lie in the file."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int
    nbytes: int


@dataclass(frozen=True)
class ModelBin:
    """The parsed index of a `model.bin`; the bytes stay in `data`."""

    version: int
    spec: str
    revision: int
    variables: list[Variable]
    aliases: list[tuple[str, str]]
    data: bytes

    def array(self, var: Variable) -> np.ndarray:
        """The variable's values as a read-only array over `data`."""
        dtype = np.dtype(var.dtype) if var.dtype != "bfloat16" else np.dtype("uint16")
        count = var.nbytes // dtype.itemsize
        return np.frombuffer(self.data, dtype, count, var.offset).reshape(var.shape)


def read_model_bin(path: Path) -> ModelBin:
    """Parse a CTranslate2 `model.bin` (binary version 6)."""
    data = path.read_bytes()
    pos = 0

    def unpack(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def string() -> str:
        nonlocal pos
        length = unpack("H")
        text = data[pos : pos + length - 1].decode("utf-8")
        pos += length
        return text

    try:
        version = unpack("I")
        if version != _BINARY_VERSION:
            raise PruneError(f"{path}: model.bin version {version}, expected {_BINARY_VERSION}")
        spec, revision = string(), unpack("I")
        variables = []
        for _ in range(unpack("I")):
            name = string()
            shape = tuple(unpack("I") for _ in range(unpack("B")))
            dtype = _DTYPES[unpack("B")]
            nbytes = unpack("I")
            variables.append(Variable(name, shape, dtype, pos, nbytes))
            pos += nbytes
        aliases = [(string(), string()) for _ in range(unpack("I"))]
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise PruneError(f"{path}: not a CTranslate2 model.bin ({exc})") from exc
    return ModelBin(version, spec, revision, variables, aliases, data)


def _write_string(out: BinaryIO, text: str) -> None:
    raw = text.encode("utf-8")
    out.write(struct.pack("H", len(raw) + 1) + raw + b"\0")


def write_model_bin(path: Path, model: ModelBin, replace: dict[str, np.ndarray]) -> None:
    """Write `model` to `path`, with the arrays of `replace` instead of the stored ones."""
    with path.open("wb") as out:
        out.write(struct.pack("I", model.version))
        _write_string(out, model.spec)
        out.write(struct.pack("I", model.revision))
        out.write(struct.pack("I", len(model.variables)))
        for var in model.variables:
            new = replace.get(var.name)
            shape = var.shape if new is None else new.shape
            _write_string(out, var.name)
            out.write(struct.pack("B", len(shape)))
            out.write(b"".join(struct.pack("I", dim) for dim in shape))
            out.write(struct.pack("B", _DTYPES.index(var.dtype)))
            if new is None:
                out.write(struct.pack("I", var.nbytes))
                out.write(model.data[var.offset : var.offset + var.nbytes])
            else:
                raw = np.ascontiguousarray(new).tobytes()
                out.write(struct.pack("I", len(raw)))
                out.write(raw)
        out.write(struct.pack("I", len(model.aliases)))
        for alias, target in model.aliases:
            _write_string(out, alias)
            _write_string(out, target)


def code_tokens(family: str) -> frozenset[str] | None:
    """The vendored list of tokens kept for a model family, or None when there is none."""
    resource = resources.files("completion.models") / "data" / f"{family}-code-tokens.json.gz"
    if not resource.is_file():
        return None
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        return frozenset(json.load(text))


def prune_output_vocabulary(model_dir: Path, keep_tokens: Iterable[str]) -> int:
    """Keep only `keep_tokens` (plus byte and special tokens) as outputs; returns rows kept.

    Rewrites `model.bin` and `vocabulary.json` of a converted decoder in place: the kept
    tokens move to the front, in their old order, and the output layer keeps their rows.
    """
    vocab_path = model_dir / "vocabulary.json"
    vocabulary: list[str] = json.loads(vocab_path.read_text(encoding="utf-8"))
    keep = set(keep_tokens)
    kept = [i for i, tok in enumerate(vocabulary) if tok in keep or _always_kept(tok)]
    kept_set = set(kept)
    order = np.array(kept + [i for i in range(len(vocabulary)) if i not in kept_set])
    model = read_model_bin(model_dir / "model.bin")
    names = {v.name: v for v in model.variables}
    if any(v.name.startswith(_PROJECTION + "bias") for v in model.variables):
        raise PruneError("output layers with a bias are not supported")
    if any(name.startswith((_EMBEDDINGS, _PROJECTION)) for pair in model.aliases for name in pair):
        raise PruneError("models whose output layer shares its storage are not supported")
    if f"{_PROJECTION}weight" not in names or names[f"{_PROJECTION}weight"].shape[0] != len(
        vocabulary
    ):
        raise PruneError(f"{model_dir}: no full-size output layer to prune (already pruned?)")
    replace: dict[str, np.ndarray] = {}
    for var in model.variables:
        if var.name.startswith(_EMBEDDINGS) and var.shape[:1] == (len(vocabulary),):
            replace[var.name] = model.array(var)[order]
        elif var.name.startswith(_PROJECTION) and var.shape[:1] == (len(vocabulary),):
            replace[var.name] = model.array(var)[order[: len(kept)]]
    tmp = model_dir / "model.bin.tmp"
    write_model_bin(tmp, model, replace)
    del model
    tmp.replace(model_dir / "model.bin")
    reordered = [vocabulary[i] for i in order]
    vocab_path.write_text(json.dumps(reordered, ensure_ascii=False), encoding="utf-8")
    return len(kept)


def _always_kept(token: str) -> bool:
    """Byte fallback tokens (one byte-level symbol, or `<0xAB>`) and control tokens."""
    return len(token) == 1 or (token.startswith("<") and token.endswith(">"))
