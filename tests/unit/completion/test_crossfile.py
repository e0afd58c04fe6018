"""Cross-file context: windows, Jaccard ranking, imports, definitions, budgets, formatting."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from completion.crossfile import assembly, common, definitions, imports, outline, windows
from completion.crossfile.common import CrossfileOptions, Snippet
from completion.document import Document
from completion.engines.fake import FakeEngine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, complete

# cross-file context switched on, whatever the defaults
ON = {"crossfile": True, "imports": True}


def chars(text: str) -> int:
    """A token counter: one token per character (like FakeEngine)."""
    return len(text)


# -- windows and ranking ---------------------------------------------------------------------


def test_windows_cover_the_file_with_half_overlap() -> None:
    lines = [f"l{i}" for i in range(130)]
    spans = windows.windows(lines, 60, 30)
    assert spans[0] == (0, 60)
    assert spans[1] == (30, 90)
    assert spans[-1] == (70, 130)  # the last window ends at the last line
    assert windows.windows(lines[:10], 60, 30) == [(0, 10)]
    assert windows.windows([], 60, 30) == []


def test_identifiers_drop_keywords_and_short_names() -> None:
    ids = common.identifiers("def parse_header(self, raw):\n    return x + raw.split(':')")
    assert ids == {"parse_header", "raw", "split"}


def test_jaccard() -> None:
    assert windows.jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert windows.jaccard(set(), {"a"}) == 0.0


def _doc(path: str, body: str, language: str = "python") -> Document:
    return Document(path, body, language)


UNRELATED = "\n".join(f"colour_{i} = paint(brush_{i}, canvas)" for i in range(80))
RELATED = (
    "\n".join(f"filler_{i} = {i}" for i in range(70))
    + "\ndef merge_headers(headers, extra_headers):\n"
    + "    merged = dict(headers)\n    merged.update(extra_headers)\n    return merged\n"
)


def test_best_windows_rank_the_similar_document_first() -> None:
    query = common.identifiers("merged = merge_headers(headers, extra_headers)\nreturn merged")
    docs = [_doc("/w/paint.py", UNRELATED), _doc("/w/http.py", RELATED)]
    found, timed_out = windows.best_windows(query, docs, "python", CrossfileOptions(), "/w")
    assert not timed_out
    assert found[0].path == "http.py"
    assert "merge_headers" in found[0].text
    assert all(s.path != "paint.py" for s in found)  # below the minimum score


def test_best_windows_do_not_overlap_and_prefer_the_same_language() -> None:
    query = common.identifiers("merge_headers headers extra_headers merged")
    docs = [_doc("/w/http.py", RELATED), _doc("/w/http.js", RELATED, "javascript")]
    found, _ = windows.best_windows(query, docs, "python", CrossfileOptions(max_windows=3), "/w")
    assert found[0].path == "http.py"
    py = [s for s in found if s.path == "http.py"]
    for a in py:
        for b in py:
            assert a is b or not (a.start < b.end and b.start < a.end)


def test_binary_and_huge_documents_are_skipped() -> None:
    query = common.identifiers("merge_headers headers")
    docs = [
        _doc("/w/blob.py", "\x00\x01" + RELATED),
        _doc("/w/huge.py", RELATED + "x = 1\n" * (common.MAX_FILE_CHARS // 6 + 10)),
    ]
    assert windows.best_windows(query, docs, "python", CrossfileOptions())[0] == []


# -- imports ---------------------------------------------------------------------------------


def test_parse_imports() -> None:
    text = (
        "import os\nimport pkg.mod as m\nfrom . import sibling\n"
        "from ..core import (\n    Alpha,\n    Beta as B,\n)\nfrom pkg.util import *\n"
        "def f():\n    from pkg.late import late_name\n"
        '"""\nfrom the docs import nothing\n"""\n'
    )
    found = {(i.module, i.level, i.name, i.alias) for i in imports.parse_imports(text)}
    assert ("os", 0, None, "os") in found
    assert ("pkg.mod", 0, None, "m") in found
    assert ("", 1, "sibling", "sibling") in found
    assert ("core", 2, "Alpha", "Alpha") in found
    assert ("core", 2, "Beta", "B") in found
    assert ("pkg.util", 0, "*", "*") in found
    assert ("pkg.late", 0, "late_name", "late_name") in found


def _project(tmp_path: Path) -> Path:
    """root/src/pkg/{__init__,models,util}.py, root/src/pkg/sub/{__init__,views}.py."""
    pkg = tmp_path / "src" / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .models import Record\n")
    (pkg / "models.py").write_text(
        "import os\n\nLIMIT = 10\n\n\n"
        "class Record:\n"
        '    """A stored record."""\n\n'
        "    kind = 'record'\n\n"
        "    def __init__(self, key, value):\n"
        "        self.key = key\n        self.value = value\n\n"
        + "".join(
            f"    def method_{i}(self, arg_{i}):\n        return arg_{i}\n\n" for i in range(8)
        )
        + "    def render_record(self, width: int = 80) -> str:\n        return str(self.value)\n"
    )
    (pkg / "util.py").write_text(
        "def slugify(text: str, sep: str = '-') -> str:\n"
        '    """Lower-case `text` and join its words with `sep`."""\n'
        + "".join(f"    step_{i} = text\n" for i in range(20))
        + "    return sep.join(text.lower().split())\n\n\n"
        "def short(a, b):\n    return a + b\n"
    )
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "views.py").write_text("")
    return tmp_path


def test_resolve_relative_absolute_src_layout_and_missing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    pkg = (root / "src/pkg").resolve()
    assert imports.resolve_module("models", 2, views, str(root)) == pkg / "models.py"
    assert imports.resolve_module("", 2, views, str(root)) == pkg / "__init__.py"
    assert imports.resolve_module("pkg.util", 0, views, str(root)) == pkg / "util.py"
    assert imports.resolve_module("pkg", 0, views, str(root)) == pkg / "__init__.py"
    assert imports.resolve_module("pkg.missing", 0, views, str(root)) is None
    assert imports.resolve_module("os", 0, views, str(root)) is None  # not a workspace file
    assert imports.resolve_module("models", 5, views, str(root)) is None  # above the root
    # without a root, absolute imports are looked up from the file's ancestors
    assert imports.resolve_module("pkg.util", 0, views, None) == pkg / "util.py"


def test_imported_definitions_signature_docstring_and_class_outline(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    text = (
        "from ..models import Record, LIMIT\nfrom pkg import util\nimport pkg.missing\n\n"
        "def show(r):\n    s = util.slugify(r.key)\n    return r.render_record(LIMIT)\n"
    )
    found, timed_out = definitions.imported_definitions(text, text, views, str(root))
    assert not timed_out
    by_name = {s.name: s for s in found}
    assert set(by_name) == {"Record", "LIMIT", "slugify"}
    slug = by_name["slugify"]
    assert slug.path == "src/pkg/util.py"
    assert slug.text.splitlines()[0].startswith("def slugify(text: str, sep: str = '-') -> str:")
    assert "Lower-case" in slug.text
    assert "step_19" not in slug.text  # long body left out
    record = by_name["Record"].text
    assert "def __init__(self, key, value):" in record
    assert "self.value = value" in record
    assert "def render_record(self, width: int = 80) -> str: ..." in record
    # the member used near the cursor comes before the others
    assert record.index("render_record") < record.index("method_0")
    assert by_name["LIMIT"].text == "LIMIT = 10"


def test_reexports_are_followed_and_open_documents_win(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    text = "from pkg import Record\n\nRecord(1, 2)\n"
    found, _ = definitions.imported_definitions(text, text, views, str(root))
    assert [s.name for s in found] == ["Record"]
    assert found[0].path == "src/pkg/models.py"
    util = str((root / "src/pkg/util.py").resolve())
    edited = {util: "def slugify(text):\n    return text  # unsaved\n"}
    text = "from pkg.util import slugify\nslugify('a b')\n"
    found, _ = definitions.imported_definitions(text, text, views, str(root), edited)
    assert "unsaved" in found[0].text


def test_modules_are_cached_by_mtime_and_size(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("def one():\n    return 1\n")
    first = outline.load_module(path)
    assert first is not None
    assert outline.load_module(path) is first
    path.write_text("def one():\n    return 1\n\ndef two():\n    return 2\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = outline.load_module(path)
    assert second is not first
    assert second is not None
    assert "two" in second.definitions
    (tmp_path / "bin.py").write_bytes(b"def x():\x00\x01 pass")
    assert outline.load_module(tmp_path / "bin.py") == common.Module()
    assert outline.load_module(tmp_path / "gone.py") is None


# -- assembly: dedupe, budget, time, formatting ----------------------------------------------


def test_dedupe_against_the_prompt() -> None:
    snip = Snippet(
        "a.py", 0, 3, "merged = dict(headers)\nmerged.update(extra)\nreturn merged", 1, "window"
    )
    assert assembly.duplicated(snip, {"merged = dict(headers)", "merged.update(extra)"})
    assert not assembly.duplicated(snip, {"merged = dict(headers)"})
    kept, used = assembly.assemble(
        [snip], "python", 500, chars, {"merged = dict(headers)", "merged.update(extra)"}, set()
    )
    assert kept == []
    assert used == 0


def test_budget_share_windows_are_cut_and_definitions_go_compact() -> None:
    lines = [f"value_{i} = compute(value_{i - 1})" for i in range(60)]
    window = Snippet("w.py", 0, 60, "\n".join(lines), 0.5, "window")
    query = common.identifiers("value_30 value_31 compute")
    kept, used = assembly.assemble([window], "python", 200, chars, set(), query)
    assert kept
    assert used <= 200
    assert "value_30" in kept[0].text
    assert kept[0].end - kept[0].start < 60
    long_def = Snippet(
        "d.py", 0, 9, "def f(a):\n" + "    x = 1\n" * 30, 1.0, "definition", "f", "def f(a): ..."
    )
    kept, used = assembly.assemble([long_def], "python", 60, chars, set(), set())
    assert kept[0].text == "def f(a): ..."
    assert used <= 60
    kept, used = assembly.assemble([long_def], "python", 5, chars, set(), set())
    assert kept == []
    assert used == 0


def test_collect_stays_within_the_token_budget(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    text = "from ..models import Record\nfrom ..util import slugify, short\n\n"
    text += "slugify(Record(1, 2).key)\n"
    docs = [_doc(str(root / "other.py"), RELATED)]
    for budget in (40, 120, 400):
        out = assembly.collect(
            text,
            text,
            "",
            "python",
            views,
            docs,
            str(root),
            CrossfileOptions(budget_tokens=budget),
            chars,
        )
        assert out.tokens == len(out.text) <= budget
    assert "# Compare this snippet from src/pkg/" in out.text
    assert all(line.startswith("#") for line in out.text.splitlines())


def test_time_budget_stops_collection_without_error(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    text = "from ..util import slugify\nslugify('x')\n"
    docs = [_doc(f"/w/d{i}.py", RELATED) for i in range(20)]
    out = assembly.collect(
        text, text, "", "python", views, docs, str(root), CrossfileOptions(time_budget_ms=0), chars
    )
    assert out.timed_out
    assert out.text == ""


def test_files_too_slow_to_parse_now_are_parsed_in_the_background(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text("def target(a, b):\n    return a\n" + "x = 1\n" * 70_000)
    here = str(tmp_path / "main.py")
    text = "from big import target\ntarget(1, 2)\n"
    # 50 ms cannot parse 420 kB by the guess: nothing now, a background parse for later
    soon = time.monotonic() + 0.05
    found, _ = definitions.imported_definitions(text, text, here, str(tmp_path), deadline=soon)
    assert found == []
    outline.wait_warm()
    later = time.monotonic() + 5
    found, _ = definitions.imported_definitions(text, text, here, str(tmp_path), deadline=later)
    assert [s.name for s in found] == ["target"]


def test_unknown_language_gets_windows_only() -> None:
    other = "\n".join(
        f"(defun merge-headers-{i} (headers extra) (append headers extra))" for i in range(5)
    )
    text = "from pkg import thing\n(merge-headers-1 headers extra)\n"
    out = assembly.collect(
        text,
        text,
        "",
        "weird-lisp",
        "/w/main.wl",
        [_doc("/w/other.wl", other, "weird-lisp")],
        "/w",
        CrossfileOptions(budget_tokens=1000),
        chars,
    )
    assert out.snippets
    assert all(s.source == "window" for s in out.snippets)
    assert out.text.startswith("# Compare this snippet from other.wl:")


# -- through the pipeline --------------------------------------------------------------------


def test_pipeline_puts_blocks_first_and_reports_them(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    text = "from ..util import slugify\n\n\ndef name_of(r):\n    return "
    engine = FakeEngine(default="slugify(r)")
    other = Document(str(root / "notes.py"), RELATED)
    request = CompletionRequest(text, len(text), "python", views, (other,), str(root))
    result = complete(engine, request, CompletionOptions(**ON))
    prompt = engine.prompts[-1]
    assert prompt.startswith("\ue000\ue001\ue002# Compare this snippet from src/pkg/util.py:\n")
    assert "# def slugify(" in prompt
    assert "\nfrom ..util import slugify" in prompt  # the file's code right after the blocks
    assert any(d.startswith("src/pkg/util.py:1-") and "slugify" in d for d in result.crossfile)
    assert "crossfile" in result.timings_ms
    # switched off: the prompt is the file alone
    engine = FakeEngine(default="x")
    off = CompletionOptions(crossfile=False, imports=False)
    result = complete(engine, request, off)
    assert engine.prompts[-1].startswith("\ue000\ue001\ue002from ..util")
    assert result.crossfile == ()


def test_blocks_take_their_tokens_from_the_prefix_budget(tmp_path: Path) -> None:
    root = _project(tmp_path)
    views = str(root / "src/pkg/sub/views.py")
    text = "from ..util import slugify\n" + "".join(f"v{i} = {i}\n" for i in range(200)) + "x = "
    engine = FakeEngine(default="1")
    request = CompletionRequest(text, len(text), "python", views, (), str(root))
    options = CompletionOptions(prefix_tokens=400, suffix_tokens=200, **ON)
    complete(engine, request, options)
    prompt = engine.prompts[-1]
    assert "slugify" in prompt.split("\n")[1]  # a block came in
    prefix = prompt[prompt.index("\ue002") + 1 :]  # suffix-first: the prefix comes last
    # the lines above the checkpoint (200) and the blocks share the budget; one line is newer
    assert len(prefix) <= 400 + len("v199 = 199\nx =")
    assert len(prefix) - len(prefix.split("# ")[-1]) <= 0.25 * 600 + 5


def test_option_specs_read_floats() -> None:
    options = CompletionOptions().with_spec("crossfile_share=0.5,imports=1,crossfile=0")
    assert options.crossfile_share == 0.5
    assert options.imports
    assert not options.crossfile
    for removed in ("path_header=1", "crossfile_extra=1", "crossfile_format=repo"):
        # measured useless (issue 17): gone, not ignored
        with pytest.raises(ValueError, match="bad pipeline option"):
            CompletionOptions().with_spec(removed)


def test_long_signatures_are_cut_between_parameters() -> None:
    rows = (
        "def style(text: t.Any, fg: int | tuple[int, int, int] | str | None = None, "
        "bg: int | tuple[int, int, int] | str | None = None, bold: bool | None = None) -> str:",
    )
    line = outline._one_line(rows)
    assert line.startswith("def style(text: t.Any, fg: int | tuple[int, int, int] | str | None")
    assert line.endswith(", ...) -> str:")
    assert "tuple[int, int, ..." not in line
