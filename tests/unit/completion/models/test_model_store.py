import json
import os
import re
import time
from pathlib import Path

import pytest

from completion.models import store as model_store
from completion.models.specs import DEFAULT_MODEL
from completion.models.store import (
    MANIFEST_NAME,
    STAMP_NAME,
    InstalledModel,
    ModelCorruptError,
    ModelError,
    ModelMissingError,
    cache_root,
    list_installed,
    locate,
    verify,
)


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OFFPILOT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "offpilot" / "models"
    monkeypatch.setenv("OFFPILOT_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "flag") == tmp_path / "flag"


def test_missing_model_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="offpilot model install"):
        locate(None, tmp_path)
    with pytest.raises(
        ModelMissingError, match=re.escape("offpilot model install qwen2.5-coder-1.5b")
    ):
        locate("qwen2.5-coder-1.5b", tmp_path)


def _copy_model(src: InstalledModel, dst: Path) -> Path:
    """A copy of an installed model without its stamp (as installed before stamps existed)."""
    dst.mkdir()
    for f in src.path.iterdir():
        if f.name != STAMP_NAME:
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _flip_byte(path: Path, offset: int) -> None:
    """Change one byte in place: same size, same mtime (only the ctime shows it)."""
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_partial_directory_without_manifest_is_corrupt(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    model = _copy_model(tiny_model, tmp_path / "m")
    (model / MANIFEST_NAME).unlink()
    with pytest.raises(ModelCorruptError, match="interrupted install"):
        verify(model)


def test_truncated_file_is_corrupt(tiny_model: InstalledModel, tmp_path: Path) -> None:
    model = _copy_model(tiny_model, tmp_path / "m")
    data = (model / "model.bin").read_bytes()
    (model / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelCorruptError, match="truncated"):
        verify(model)


def test_damaged_bytes_fail_the_full_check(tiny_model: InstalledModel, tmp_path: Path) -> None:
    model = _copy_model(tiny_model, tmp_path / "m")
    data = bytearray((model / "model.bin").read_bytes())
    data[100] ^= 0xFF
    (model / "model.bin").write_bytes(bytes(data))
    verify(model)  # sizes still match
    with pytest.raises(ModelCorruptError, match="sha256"):
        verify(model, full=True)


def test_malformed_manifest_is_corrupt(tiny_model: InstalledModel, tmp_path: Path) -> None:
    model = _copy_model(tiny_model, tmp_path / "m")
    (model / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelCorruptError, match="malformed"):
        verify(model)
    (model / MANIFEST_NAME).write_text(json.dumps({"manifest_version": 99}))
    with pytest.raises(ModelCorruptError):
        verify(model)


def test_list_shows_good_and_broken(tiny_model: InstalledModel, tmp_path: Path) -> None:
    _copy_model(tiny_model, tmp_path / "good")
    broken = _copy_model(tiny_model, tmp_path / "broken")
    (broken / "model.bin").unlink()
    (tmp_path / ".staging-x-1").mkdir()  # in-progress installs are not listed
    found = list_installed(tmp_path)
    assert [type(f).__name__ for f in found] == ["PosixPath", "InstalledModel"]


def test_a_directory_in_the_working_directory_never_stands_in_for_a_cached_model(
    tiny_model: InstalledModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository holding `qwen2.5-coder-0.5b/` replaced the user's model."""
    cache = tmp_path / "cache"
    repo = tmp_path / "repo"
    cache.mkdir()
    repo.mkdir()
    _copy_model(tiny_model, repo / DEFAULT_MODEL)
    _copy_model(tiny_model, repo / "tiny")
    _copy_model(tiny_model, cache / "tiny")
    monkeypatch.chdir(repo)
    with pytest.raises(ModelMissingError, match=f"looked in {cache}"):
        locate(None, cache)
    assert locate("tiny", cache).path == cache / "tiny"
    # a directory is taken only when given as one
    assert locate("./tiny", cache).path == repo / "tiny"
    assert locate(str(repo / "tiny"), cache).path == repo / "tiny"
    for bad in ("sub/tiny", "a/../tiny", ".hidden", "a..b"):
        with pytest.raises(ModelError, match="not a model name"):
            locate(bad, cache)


def test_a_same_size_replacement_fails_the_load_check(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    model = _copy_model(tiny_model, tmp_path / "m")
    _flip_byte(model / "model.bin", (model / "model.bin").stat().st_size // 2)
    with pytest.raises(ModelCorruptError, match="sha256"):
        locate("m", tmp_path)


def test_the_first_load_hashes_and_stamps_later_loads_see_a_change_in_place(
    tiny_model: InstalledModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real = model_store.sha256_file
    monkeypatch.setattr(model_store, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    model = _copy_model(tiny_model, tmp_path / "m")  # an install from before stamps
    locate("m", tmp_path)
    assert sorted(hashed) == sorted(tiny_model.manifest.files)  # verified once, in full
    assert (model / STAMP_NAME).is_file()
    hashed.clear()
    locate("m", tmp_path)
    assert hashed == []  # the stamp matches: no rehash
    time.sleep(0.05)  # the kernel's file times advance by clock ticks
    _flip_byte(model / "model.bin", 100)
    with pytest.raises(ModelCorruptError, match="sha256"):
        locate("m", tmp_path)
    assert hashed  # the stamp no longer matched


def test_a_manifest_entry_without_a_size_or_hash_is_corrupt(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    model = _copy_model(tiny_model, tmp_path / "m")
    data = json.loads((model / MANIFEST_NAME).read_text())
    for key in ("size", "sha256"):
        broken = json.loads(json.dumps(data))
        del broken["files"]["model.bin"][key]
        (model / MANIFEST_NAME).write_text(json.dumps(broken))
        with pytest.raises(ModelCorruptError, match="malformed"):
            locate("m", tmp_path)
    data["files"]["../escape"] = data["files"].pop("model.bin")
    (model / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelCorruptError, match="not a plain name"):
        locate("m", tmp_path)
