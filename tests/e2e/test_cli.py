"""The `offpilot` command line, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from completion.models.store import InstalledModel


def run(*args: str, env_cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    if env_cache is not None:
        env["OFFPILOT_CACHE_DIR"] = str(env_cache)
    return subprocess.run(
        [sys.executable, "-m", "offpilot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_model_list(tiny_model: InstalledModel) -> None:
    out = run("model", "list", env_cache=tiny_model.path.parent)
    assert out.returncode == 0
    assert "tiny" in out.stdout
    assert str(tiny_model.path) in out.stdout


def test_complete_prints_the_completion(tiny_model: InstalledModel, tmp_path: Path) -> None:
    src = tmp_path / "a.py"
    src.write_text("x = 1\ny = \n", encoding="utf-8")
    # the gate off: the random tiny model's answer, however unsure
    out = run("complete", str(src), "1", "4", "--model", str(tiny_model.path), "--gate", "off")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")
    assert out.stdout.strip()  # a line or a block
    again = run("complete", str(src), "1", "4", "--model", str(tiny_model.path), "--gate", "off")
    assert again.stdout == out.stdout  # greedy: the same answer again
    # the gate on (the default): the same answer, or nothing and a word on stderr why
    gated = run("complete", str(src), "1", "4", "--model", str(tiny_model.path))
    assert gated.returncode == 0, gated.stderr
    assert gated.stdout in (out.stdout, "\n")
    if gated.stdout == "\n":
        assert "the gate (balanced) hid an unsure answer" in gated.stderr


def test_missing_model_message(tmp_path: Path) -> None:
    src = tmp_path / "a.py"
    src.write_text("x = \n")
    out = run("complete", str(src), "0", "4", env_cache=tmp_path / "empty")
    assert out.returncode == 2
    assert "offpilot model install" in out.stderr
    assert out.stdout == ""


def test_bad_files(tmp_path: Path, tiny_model: InstalledModel) -> None:
    out = run("complete", str(tmp_path / "missing.py"), "0", "0", "--model", str(tiny_model.path))
    assert out.returncode == 1
    assert "cannot read" in out.stderr
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    out = run("complete", str(binary), "0", "0", "--model", str(tiny_model.path))
    assert out.returncode == 1
    assert "binary" in out.stderr


def test_corrupt_model_is_reported(tiny_model: InstalledModel, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_model.path.iterdir():
        if f.name != "model.bin":
            (broken / f.name).write_bytes(f.read_bytes())
    src = tmp_path / "a.py"
    src.write_text("x = \n")
    out = run("complete", str(src), "0", "4", "--model", str(broken))
    assert out.returncode == 2
    assert "model.bin is missing" in out.stderr
