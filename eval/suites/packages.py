"""The real packages of the real-project suites: pinned sdists, fetched and unpacked safely.

The suites' code is never committed: each package is named here by version, sdist file name
and sha256, fetched from PyPI (its simple index, as pip reads it, gives the file's address)
into an offline cache, checked against the pin, and unpacked with tarfile's `data` filter
(no absolute paths, no `..`, no links or devices that lead out). A package's tests then run
in the eval sandbox like any sample, so a hostile sdist gains nothing over a hostile
completion.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from completion.models.store import sha256_file

PYPI_SIMPLE = "https://pypi.org/simple"
SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
MAX_INDEX_BYTES = 16 << 20
FETCH_TIMEOUT_S = 60.0
MAX_SDIST_BYTES = 32 << 20


@dataclass(frozen=True)
class Package:
    """One pinned sdist and what it brings to the suites."""

    name: str
    version: str
    filename: str
    sha256: str
    license: str
    style: str  # what kind of code it is (docs/eval.md's table)

    @property
    def dir_name(self) -> str:
        """The unpacked project's directory name (`toolz-1.2.0`), the prefix of its task ids."""
        return self.filename.removesuffix(".tar.gz").removesuffix(".zip")


# Pure-Python, permissively licensed, tests in the sdist that run offline with pytest alone.
PACKAGES: tuple[Package, ...] = (
    Package(
        "affine",
        "3.0.1",
        "affine-3.0.1.tar.gz",
        "e1b3c38c5d4d3ef5024a182a6d1bf1e0c51ab221825781c741aeb4d0c079a7e2",
        "BSD-3-Clause",
        "numeric: 2D affine transforms, one class with operators",
    ),
    Package(
        "boltons",
        "26.2.0",
        "boltons-26.2.0.tar.gz",
        "d39cfd15c1a1c3bd4d705c82252fa9edb8e4f5e8cc039f8e39afac7b1b47e92c",
        "BSD-3-Clause",
        "data structures and utilities: many modules, classes",
    ),
    Package(
        "cachetools",
        "8.0.3",
        "cachetools-8.0.3.tar.gz",
        "79245d0d90464e29355f13658cd769e57d98ed06242d3c6fbd71796ca0938ef9",
        "MIT",
        "data structures: cache classes, decorators",
    ),
    Package(
        "inflection",
        "0.5.1",
        "inflection-0.5.1.tar.gz",
        "1a29730d366e996aaacffb2f1f1cb9593dc38e2ddd30c91250c6dde09ea9b417",
        "MIT",
        "text: word inflections with regular expressions",
    ),
    Package(
        "isodate",
        "0.7.2",
        "isodate-0.7.2.tar.gz",
        "4cd1aa0f43ca76f4a6c6c0292a85f40b35ec2e43e315b59f06e6d32171a953e6",
        "BSD-3-Clause",
        "parsing: ISO 8601 dates and durations, modules importing each other",
    ),
    Package(
        "more-itertools",
        "11.2.1",
        "more_itertools-11.2.1.tar.gz",
        "cbf08fd0af284dc69718b9b76a8e6203df624d70209ea511e4219d350c856f63",
        "MIT",
        "functional: iterator building blocks in a 5,000-line module",
    ),
    Package(
        "semver",
        "3.2.0",
        "semver-3.2.0.tar.gz",
        "adf2c822d2d8908a1dce0121da7da6511851fbd33080e61da8d2ba1e0677e8f3",
        "BSD-3-Clause",
        "classes and CLI: a version class, its parser and a command line",
    ),
    Package(
        "simpleeval",
        "1.0.8",
        "simpleeval-1.0.8.tar.gz",
        "b417f869c11f2de034eb919820a825f35d12ce99f63a43971947ce73679eb9ba",
        "MIT",
        "parsing: a safe expression evaluator over Python's ast",
    ),
    Package(
        "sqlparse",
        "0.6.1",
        "sqlparse-0.6.1.tar.gz",
        "ca722573f848ff2d30e40ea30f53a104b7dea7635ea9285891263eb2c58fb6e7",
        "BSD-3-Clause",
        "parsing: an SQL lexer, token tree and formatter across many modules",
    ),
    Package(
        "tabulate",
        "0.10.0",
        "tabulate-0.10.0.tar.gz",
        "e2cfde8f79420f6deeffdeda9aaec3b6bc5abce947655d17ac662b126e48a60d",
        "MIT",
        "text and I/O: table formatting, one long module",
    ),
    Package(
        "toolz",
        "1.2.0",
        "toolz-1.2.0.tar.gz",
        "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490",
        "BSD-3-Clause",
        "functional: itertoolz, functoolz, dicttoolz, curried wrappers",
    ),
)


class FetchError(RuntimeError):
    """A package that could not be fetched, or whose file does not match its pin."""


def fetch(package: Package, cache: Path, index: str = PYPI_SIMPLE, offline: bool = False) -> Path:
    """The package's sdist in `cache`, downloaded first unless a file matching the pin is there.

    A file there that does not match is replaced (or refused `offline`); a download that does
    not match its pin is deleted and refused. Raises FetchError with what to do.
    """
    path = cache / package.filename
    if path.is_file() and sha256_file(path) == package.sha256:
        return path
    if offline:
        raise FetchError(
            f"{package.filename} is not in {cache} (or does not match its sha256) and the "
            f"build is offline: put the sdist there, or build once with the network"
        )
    cache.mkdir(parents=True, exist_ok=True)
    url = _sdist_url(package, index)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=cache)
    try:
        with os.fdopen(fd, "wb") as out, _open(url) as resp:
            total = 0
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                total += len(chunk)
                if total > MAX_SDIST_BYTES:
                    raise FetchError(f"{url}: larger than {MAX_SDIST_BYTES >> 20} MiB")
                out.write(chunk)
        got = sha256_file(Path(tmp))
        if got != package.sha256:
            raise FetchError(
                f"{package.filename}: sha256 {got} does not match the pin {package.sha256}"
            )
        os.replace(tmp, path)
    except (OSError, urllib.error.URLError) as exc:
        raise FetchError(f"cannot fetch {package.filename} from {url}: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _sdist_url(package: Package, index: str) -> str:
    """The sdist's address from a PEP 691/503 simple index (what pip reads)."""
    page_url = f"{index.rstrip('/')}/{package.name}/"
    try:
        with _open(page_url, SIMPLE_ACCEPT) as resp:
            kind = resp.headers.get("Content-Type", "")
            body = resp.read(MAX_INDEX_BYTES).decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as exc:
        raise FetchError(f"cannot look up {package.name} at {page_url}: {exc}") from exc
    if "json" in kind:
        try:
            links = [str(f["url"]) for f in json.loads(body).get("files", [])]
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise FetchError(f"{page_url}: not a simple index page: {exc}") from exc
    else:
        links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', body)]
    for link in links:
        url = urllib.parse.urljoin(page_url, link.split("#")[0])
        if urllib.parse.urlparse(url).path.rsplit("/", 1)[-1] == package.filename:
            return url
    raise FetchError(f"{page_url} lists no file {package.filename}")


def _open(url: str, accept: str = "*/*") -> Any:
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"{url}: only http(s) addresses are fetched")
    request = urllib.request.Request(url, headers={"Accept": accept})
    return urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S)


def unpack(sdist: Path, package: Package, dest: Path) -> Path:
    """The sdist unpacked at `dest/<name-version>` (kept if already there); its path.

    tarfile's `data` filter refuses absolute names, `..`, links that lead out and special
    files; the archive must hold one top-level directory of the package's name. The tree is
    made readable by others, as the eval's project copy requires.
    """
    target = dest / package.dir_name
    if (target / ".offpilot-unpacked").is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        try:
            with tarfile.open(sdist) as tar:
                tar.extractall(work, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise FetchError(f"{sdist.name}: cannot unpack: {exc}") from exc
        tops = list(work.iterdir())
        if len(tops) != 1 or tops[0].name != package.dir_name or not tops[0].is_dir():
            raise FetchError(f"{sdist.name}: expected one directory {package.dir_name}/ inside")
        for root, dirs, files in os.walk(tops[0]):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o644)
        os.chmod(tops[0], 0o755)
        (tops[0] / ".offpilot-unpacked").write_text(package.sha256 + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tops[0], target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
