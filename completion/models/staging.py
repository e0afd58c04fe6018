"""Where a model is built: a hidden staging directory, published into the cache in one rename.

Everything is written into `.staging-NAME-PID` next to the final directory; the manifest is
written last and the directory is renamed into place in one step, so an interrupted or failed
run never leaves a model that looks installed. One install of a name runs at a time (a lock
file), and a killed run's staging directory is removed by the next.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from completion.models.store import MANIFEST_NAME, InstalledModel, Manifest, ModelError, verify

# In every staging directory: only a directory holding it is removed as a stale staging one.
STAGING_MARK = ".offpilot-staging"


def writable_root(root: Path) -> Path:
    """`root`, created; a ModelError that names the way out when it cannot be written."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ModelError(
            f"cannot write to the model cache directory {root}: {exc.strerror or exc}. "
            "Choose another with --cache-dir or OFFPILOT_CACHE_DIR."
        ) from exc
    return root


@contextlib.contextmanager
def install_lock(root: Path, name: str) -> Iterator[None]:
    """Held while `name` is installed: a second install of it waits for the first."""
    with (root / f".install-{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def staging(root: Path, name: str) -> Iterator[Path]:
    """A fresh hidden work directory, removed afterwards whatever happens.

    A stale one (a killed run's) is removed only if it is exactly `.staging-NAME-PID` and
    holds the mark this function leaves, so nothing that another tool or user made goes.
    """
    prefix = f".staging-{name}-"
    for stale in root.iterdir():
        pid = stale.name.removeprefix(prefix)
        if stale.name.startswith(prefix) and pid.isdigit() and _made_here(stale):
            shutil.rmtree(stale, ignore_errors=True)
    work = root / f"{prefix}{os.getpid()}"
    work.mkdir()
    (work / STAGING_MARK).touch()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _made_here(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / STAGING_MARK).is_file()


def existing_install(final: Path, log: Callable[[str], None]) -> InstalledModel | None:
    """The verified model at `final`, or None when there is none or it must be rebuilt.

    Nothing is removed here: a damaged install is replaced only once its rebuild is done, and
    a directory that is not an install of ours (no manifest, or a link) stops the install.
    """
    if not final.exists() and not final.is_symlink():
        return None
    if final.is_symlink() or not final.is_dir() or not (final / MANIFEST_NAME).is_file():
        raise ModelError(
            f"{final} exists but is not a model that offpilot installed (no {MANIFEST_NAME}); "
            "offpilot will not replace it. Move it away, or install under another name."
        )
    try:
        return verify(final, full=True)
    except ModelError as exc:
        log(f"existing model is not usable ({exc}); rebuilding it")
        return None


def install_error(step: str, exc: OSError) -> ModelError:
    """A failed step's OSError as a ModelError (a full disk said as such)."""
    if exc.errno == errno.ENOSPC:
        return ModelError(
            f"{step} failed: the disk is full ({exc}). Nothing was installed; free space "
            "or choose another cache directory with --cache-dir."
        )
    return ModelError(f"{step} failed: {exc}. Nothing was installed.")


def publish(ct2_dir: Path, final: Path, manifest: Manifest) -> InstalledModel:
    """Write the manifest (last) and rename the finished directory into place.

    A model already at `final` (one of ours: `existing_install` checked) is moved aside first and
    removed once the new one is in place. The full check at the end leaves the stamp that
    spares the first load a rehash.
    """
    (ct2_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(ct2_dir, final)
    shutil.rmtree(old, ignore_errors=True)
    return verify(final, full=True)
