"""The wheel installs exactly the project's four packages at the top level.

`completion` and `eval` are generic names: a stray top-level module (a test helper, a
script) would shadow or be shadowed by another project's in a shared environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_top_level_names_are_the_four_packages(tmp_path: Path) -> None:
    # a copy without build outputs: setuptools would reuse a stale build/lib
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "node_modules", "*.egg-info", "__pycache__", ".*cache"
    )
    shutil.copytree(ROOT, src, ignore=skip)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(tmp_path), str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("offpilot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"offpilot", "lsp_server", "completion", "eval"}
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)
