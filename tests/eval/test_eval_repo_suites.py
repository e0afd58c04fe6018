"""The real-project suites: pinned sdists fetched and unpacked safely, holes cut again.

A local HTTP server plays PyPI's simple index (the file's address is relative, as mirrors
give it); the real packages' fetch and a seeded run with the real model are in
`test_repo_suites_with_the_real_model` (marked real_model, in make test).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval import data
from eval.suites import packages, repo

MODULE = "def double(x):\n    return x * 2\n\n\ndef triple(x):\n    return x * 3\n"
TEST = "from demo import double\n\n\ndef test_double():\n    assert double(2) == 4\n"


def _sdist(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


GOOD = _sdist({"demo-1.0/demo.py": MODULE.encode(), "demo-1.0/tests/test_demo.py": TEST.encode()})


def _pin(body: bytes, name: str = "demo") -> packages.Package:
    return packages.Package(
        name, "1.0", f"{name}-1.0.tar.gz", hashlib.sha256(body).hexdigest(), "MIT", "test"
    )


@pytest.fixture(params=["json", "html"])
def index(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    """A simple package index on localhost (PEP 691 JSON or PEP 503 HTML pages, relative
    file addresses as mirrors give them): files to serve by name, and the paths asked for."""
    files: dict[str, bytes] = {}
    asked: list[str] = []
    flavour = request.param

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            parts = self.path.strip("/").split("/")
            names = [f for f in files if len(parts) == 2 and f.startswith(f"{parts[1]}-")]
            if parts[0] == "simple" and names:
                if flavour == "json":
                    urls = [{"filename": f, "url": f"../../files/{f}#sha256=x"} for f in names]
                    body = json.dumps({"files": urls}).encode()
                    kind = "application/vnd.pypi.simple.v1+json"
                else:
                    links = "".join(f'<a href="../../files/{f}#sha256=x">{f}</a>' for f in names)
                    body = f"<html><body>{links}</body></html>".encode()
                    kind = "text/html"
            elif parts[0] == "files" and parts[-1] in files:
                body, kind = files[parts[-1]], "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple", files, asked
    server.shutdown()
    server.server_close()


def test_fetch_checks_the_pin_and_then_works_offline(tmp_path: Path, index) -> None:  # type: ignore[no-untyped-def]
    url, files, asked = index
    pin = _pin(GOOD)
    files[pin.filename] = GOOD
    cache = tmp_path / "sdists"
    path = packages.fetch(pin, cache, url)
    assert path.read_bytes() == GOOD
    asked.clear()
    assert packages.fetch(pin, cache, url, offline=True) == path
    assert packages.fetch(pin, cache, url) == path
    assert asked == []  # a cached file that matches its pin is never fetched again


def test_a_download_that_does_not_match_its_pin_is_refused_and_removed(
    tmp_path: Path,
    index,  # type: ignore[no-untyped-def]
) -> None:
    url, files, _ = index
    pin = _pin(GOOD)
    files[pin.filename] = GOOD + b"tampered"
    with pytest.raises(packages.FetchError, match="does not match the pin"):
        packages.fetch(pin, tmp_path, url)
    assert list(tmp_path.iterdir()) == []


def test_a_package_that_cannot_be_fetched_says_so(tmp_path: Path, index) -> None:  # type: ignore[no-untyped-def]
    url, files, _ = index
    files["demo-0.9.tar.gz"] = GOOD  # another version only
    with pytest.raises(packages.FetchError, match=r"lists no file demo-1\.0\.tar\.gz"):
        packages.fetch(_pin(GOOD), tmp_path, url)
    with pytest.raises(packages.FetchError, match="cannot look up nothere"):
        packages.fetch(_pin(GOOD, "nothere"), tmp_path, url)  # 404
    with pytest.raises(packages.FetchError, match="offline"):
        packages.fetch(_pin(GOOD), tmp_path, url, offline=True)
    with pytest.raises(packages.FetchError, match="cannot look up"):
        packages.fetch(_pin(GOOD), tmp_path, "http://127.0.0.1:9/simple")


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"demo-1.0/a.py": b"", "../escape.py": b"x"}, None),
        ({"demo-1.0/a.py": b"", "/tmp/abs.py": b"x"}, None),
        ({"demo-1.0/a.py": b""}, {"demo-1.0/out": "../../../etc/passwd"}),
        ({"other-2.0/a.py": b""}, None),
    ],
    ids=["dotdot", "absolute", "link-out", "wrong-top"],
)
def test_a_hostile_sdist_is_refused_and_nothing_lands_outside(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str] | None
) -> None:
    body = _sdist(members, links)
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(body)
    dest = tmp_path / "deep" / "projects"
    with pytest.raises(packages.FetchError):
        packages.unpack(sdist, _pin(body), dest)
    assert not (tmp_path / "deep" / "escape.py").exists()
    assert not (dest / "demo-1.0").exists()
    assert [p.name for p in dest.iterdir()] == []


def test_unpack_makes_the_tree_readable_by_others(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(GOOD)
    project = packages.unpack(sdist, _pin(GOOD), tmp_path / "projects")
    assert (project / "demo.py").stat().st_mode & 0o004  # the sandbox's copy needs o+r
    assert packages.unpack(sdist, _pin(GOOD), tmp_path / "projects") == project


def _manifest(tmp_path: Path, middle: str, start: int = 1) -> Path:
    hole = repo.Hole(
        suite="repo-lines",
        package="demo",
        path="demo.py",
        start=start,
        end=start + 1,
        kind="line",
        function="double",
        tests=("tests/test_demo.py::test_double",),
        imported_names=(),
        middle_sha256=hashlib.sha256(middle.encode()).hexdigest(),
    )
    path = tmp_path / "manifest.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"holes": [hole.to_json()]}).encode()))
    return path


def test_build_cuts_the_manifests_holes_and_the_suite_loads_by_name(
    tmp_path: Path,
    index,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, files, _ = index
    pin = _pin(GOOD)
    files[pin.filename] = GOOD
    root = tmp_path / "cache" / "eval-suites"
    manifest = _manifest(tmp_path, "    return x * 2\n")
    counts = repo.build(root, index=url, manifest=manifest, pins=(pin,))
    assert counts == {"repo-lines": 1, "repo-blocks": 0, "repo-bodies": 0, "repo-crossfile": 0}
    again = (root / "repo-lines.jsonl").read_text()
    repo.build(root, offline=True, manifest=manifest, pins=(pin,))
    assert (root / "repo-lines.jsonl").read_text() == again  # same pins, same tasks

    monkeypatch.setenv("OFFPILOT_SUITES_DIR", str(root))
    [task] = data.load_suite("repo-lines")
    assert task.task_id == "demo-1.0/demo.py:double:line:L2"
    assert task.canonical_solution == "    return x * 2\n"
    assert task.prompt == "def double(x):\n"
    assert Path(str(task.project)) == (root / "projects" / "demo-1.0").resolve()
    assert data.suite_name("repo-lines") == "repo-lines"


def test_a_hole_whose_text_changed_is_refused(tmp_path: Path, index) -> None:  # type: ignore[no-untyped-def]
    url, files, _ = index
    pin = _pin(GOOD)
    files[pin.filename] = GOOD
    manifest = _manifest(tmp_path, "    return x * 4\n")
    with pytest.raises(repo.SuiteError, match="changed"):
        repo.build(tmp_path / "suites", index=url, manifest=manifest, pins=(pin,))


def test_an_unbuilt_suite_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFPILOT_SUITES_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="offpilot eval suites build"):
        data.load_suite("repo-blocks")


def test_the_shipped_manifest_names_only_pinned_packages_and_enough_tasks() -> None:
    holes = repo.read_manifest()
    pinned = {p.name for p in packages.PACKAGES}
    assert {h.package for h in holes} == pinned
    assert len(pinned) >= 8
    assert len({(h.package, h.path, h.start, h.end) for h in holes}) >= 800
    assert {h.suite for h in holes} == set(data.REPO_SUITES)
    crossing = [h for h in holes if h.suite == "repo-crossfile"]
    assert all(h.imported_names for h in crossing)
    assert all(p.license for p in packages.PACKAGES)


@pytest.mark.real_model
def test_repo_suites_with_the_real_model(tmp_path: Path, real_model) -> None:  # type: ignore[no-untyped-def]
    """The shipped suites for real: the pinned sdists from PyPI (cached), a reference that
    passes in the sandbox, and a seeded subset of every suite filled by the real model."""
    from completion.engines.ct2 import load_engine
    from eval.records import RunSettings
    from eval.run import run
    from eval.suites.make_tasks import verify

    counts = repo.build()
    assert sum(counts.values()) >= 800
    engine = load_engine(real_model)
    passed = 0
    for suite in data.REPO_SUITES:
        first = data.load_suite(suite)[0]
        assert verify(first, 60.0) is None, first.task_id
        settings = RunSettings(suite=suite, limit=4, seed=0, timeout_s=60.0)
        summary = run(settings, tmp_path / suite, lambda: engine, workers=2)
        assert summary["samples"] == 4
        passed += round(summary["pass@1"] * 4)
    assert passed > 0  # the model fills at least one of these 16 real holes right
