"""Tasks as editor documents, programs, and the CLI wiring."""

from __future__ import annotations

import pytest

from eval import data

LINE_TASK = data.Task.from_json(
    {
        "task_id": "t/0",
        "prompt": "def f(x):\n",
        "suffix": "    return y\n",
        "canonical_solution": "    y = x + 1\n",
        "test": "def check(c):\n    assert c(1) == 2\n",
        "entry_point": "f",
    }
)


def test_whole_line_hole_is_an_empty_line_in_the_editor() -> None:
    text, offset = data.document(LINE_TASK)
    assert text == "def f(x):\n\n    return y\n"
    assert text[offset:].startswith("\n")
    # a single-line completion (no newline) and the reference both give the original file
    original = LINE_TASK.prompt + LINE_TASK.canonical_solution + LINE_TASK.suffix
    assert data.filled(LINE_TASK, "    y = x + 1") == original
    assert data.filled(LINE_TASK, LINE_TASK.canonical_solution) == original


def test_span_hole_is_the_cursor_between_prompt_and_suffix() -> None:
    span = data.Task.from_json(
        {**LINE_TASK.to_json(), "prompt": "def f(x):\n    y = x ", "suffix": "1\n"}
        | {"canonical_solution": "+ "}
    )
    assert data.document(span) == ("def f(x):\n    y = x 1\n", len(span.prompt))
    assert data.filled(span, "+ ") == "def f(x):\n    y = x + 1\n"


def test_program_appends_the_check() -> None:
    prog = data.program(LINE_TASK, "    y = x + 1")
    assert prog.endswith("check(f)\n")
    exec(compile(prog, "<task>", "exec"), {})


def test_task_round_trip_keeps_unknown_fields() -> None:
    obj = {**LINE_TASK.to_json(), "source": "somewhere"}
    task = data.Task.from_json(obj)
    assert task.extra == {"source": "somewhere"}
    assert task.to_json() == obj


def test_kind_from_the_size_of_the_middle() -> None:
    assert data.lines_kind("    x = 1\n") == "1 line"
    assert data.lines_kind("a\nb\n") == "2-3 lines"
    assert data.lines_kind("a\nb\nc\nd\n") == "4+ lines"


def test_missing_suite_is_explained(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match="humaneval-single-line"):
        data.load_suite(str(tmp_path / "nope.jsonl"))


def test_cli_has_the_eval_commands() -> None:
    from offpilot.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["eval", "run", "--suite", "humaneval", "--limit", "3", "--samples", "2", "--workers", "1"]
    )
    assert (args.suite, args.limit, args.samples, args.workers) == ("humaneval", 3, 2, 1)
    args = parser.parse_args(["eval", "make-tasks", "proj", "--out", "t.jsonl"])
    assert (args.project, args.out) == ("proj", "t.jsonl")
