import json
from pathlib import Path

import pytest

from completion.model_store import (
    MANIFEST_NAME,
    InstalledModel,
    ModelCorruptError,
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
    with pytest.raises(ModelMissingError, match="offpilot model install qwen2.5-coder-1.5b"):
        locate("qwen2.5-coder-1.5b", tmp_path)


def _copy_model(src: InstalledModel, dst: Path) -> Path:
    dst.mkdir()
    for f in src.path.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


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
