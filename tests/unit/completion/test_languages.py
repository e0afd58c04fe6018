"""Languages: ids and extensions resolved once, a grammar each, and the stages' cost per language.

The per-language snippets are in tests/language_cases.py; each stage's file asks them its own
questions. Here an unknown language must answer every stage with the plain-text rules and never
raise.
"""

from __future__ import annotations

import time

import pytest
from cursor import at_cursor, context_at
from language_cases import BY_ID, CASES, MULTI, NO_COMMENTS, Case, complete_at, mode

from completion.context import extract_context
from completion.languages import SPECS, resolve_language
from completion.postprocess import PostOptions, postprocess, syntax_truncate
from completion.syntax import has_error, in_comment_or_string, parser_for
from completion.trigger import Mode, TriggerOptions, should_complete


def test_every_grammar_loads() -> None:
    assert sorted(SPECS) == sorted(
        ["python", "javascript", "typescript", "typescriptreact", "go", "rust", "java", "c", "cpp"]
    )
    for language in SPECS:
        assert parser_for(language) is not None, language


@pytest.mark.parametrize("case", CASES, ids=BY_ID)
def test_snippets_parse(case: Case) -> None:
    """The snippets are real code: each file parses before the completion."""
    for doc in (case.header, case.statement, case.single, case.hole, case.closed):
        assert has_error(at_cursor(doc)[0], case.language) is False, doc


@pytest.mark.parametrize(
    ("language", "path", "expected"),
    [
        ("python", None, "python"),
        ("javascriptreact", None, "javascript"),
        ("typescriptreact", None, "typescriptreact"),
        ("TypeScript", None, "typescript"),
        ("golang", None, "go"),
        ("c++", None, "cpp"),
        ("plaintext", "/src/main.go", "go"),
        ("", "/src/lib.rs", "rust"),
        ("plaintext", "/src/App.tsx", "typescriptreact"),
        ("plaintext", "/src/vec.HPP", "cpp"),
        ("plaintext", "/src/notes.txt", ""),
        ("plaintext", None, ""),
        ("cobol", "/src/main.go", ""),  # a language id the client knows wins
        ("", None, ""),
    ],
)
def test_language_ids_aliases_and_extensions(
    language: str, path: str | None, expected: str
) -> None:
    assert resolve_language(language, path) == expected


def test_language_from_the_path_when_the_id_is_plaintext() -> None:
    doc = "package main\n\nfunc area(r float64) float64 {\n\treturn |\n}\n"
    c = context_at(doc, "plaintext", "/src/area.go")
    assert postprocess("(r *", c, "end_token", PostOptions()) == ""
    assert postprocess("(r *", context_at(doc, "plaintext"), "end_token", PostOptions()) == "(r *"
    comment = "package main\n\nvar total = 1 // running sum|\n"
    assert should_complete(context_at(comment, "plaintext", "/src/a.go"), NO_COMMENTS) is Mode.NONE
    text, _ = complete_at(
        "package main\n\nfunc area(r float64) float64 {|",
        "plaintext",
        "\n\treturn 3.14 * r * r\n}\n\nfunc main() {\n",
        "/src/area.go",
    )
    assert text == "\n\treturn 3.14 * r * r\n}"


@pytest.mark.parametrize("language", ["cobol", "", "plaintext", "PYTHON2"])
def test_unknown_language_gets_plain_text_rules(language: str) -> None:
    assert resolve_language(language) == ""
    assert has_error("x = (", language) is None
    assert in_comment_or_string("# x", 3, language) is None
    assert mode("begin {|\nend\n", language, MULTI) is Mode.MULTI
    assert mode("when done:|\n", language, MULTI) is Mode.MULTI
    assert mode("some te|xt\n", language, MULTI) is Mode.NONE
    assert mode("* a comment|\n", language, NO_COMMENTS) is Mode.SINGLE
    c = context_at("x = 1\n|\ny = 2\n", language)
    assert syntax_truncate("z = (", c, keep_parse=True) == "z = ("
    assert postprocess("z = (", c, "end_token", PostOptions()) == "z = ("
    text, reason = complete_at("begin {|", language, "\n  step one\n}\nmore\n")
    assert (text, reason) == ("\n  step one\n}", "stop_rule")
    text, reason = complete_at("notes:\n  |\n", language, "first\n  second\nend\n")
    assert (text, reason) == ("first\n  second", "stop_rule")


# Per-language cost of the pipeline's own stages on a ~300-line file (docs/quality.md).
FUNCS = {
    "python": 'def area_{i}(r):\n    # the area\n    s = "r{i}"\n    return 3.14 * r * r\n\n',
    "javascript": "function area{i}(r) {{\n  // the area\n  const s = `r{i}`;\n"
    "  return Math.PI * r * r;\n}}\n\n",
    "typescript": "function area{i}(r: number): number {{\n  // the area\n"
    "  const s: string = `r{i}`;\n  return Math.PI * r * r;\n}}\n\n",
    "go": 'func area{i}(r float64) float64 {{\n\t// the area\n\ts := "r{i}"\n'
    "\t_ = s\n\treturn 3.14 * r * r\n}}\n\n",
    "rust": 'fn area{i}(r: f64) -> f64 {{\n    // the area\n    let _s = "r{i}";\n'
    "    3.14 * r * r\n}}\n\n",
    "java": "    double area{i}(double r) {{\n        // the area\n"
    '        String s = "r{i}";\n        return Math.PI * r * r;\n    }}\n\n',
    "c": 'double area{i}(double r) {{\n    /* the area */\n    const char *s = "r{i}";\n'
    "    return 3.14 * r * r;\n}}\n\n",
    "cpp": 'double area{i}(double r) {{\n    // the area\n    auto s = "r{i}";\n'
    "    return 3.14 * r * r;\n}}\n\n",
    "cobol": "       PROCEDURE DIVISION.\n       AREA-{i}.\n           COMPUTE A = R * R.\n\n",
}
HEADS = {"go": "package main\n\n", "java": "class Shapes {\n"}
TAILS = {"java": "}\n"}


def _cost_document(language: str, lines: int = 300) -> tuple[str, int]:
    """A file of about `lines` lines with the cursor on an empty line in its middle function."""
    funcs = []
    i = 0
    while sum(f.count("\n") for f in funcs) < lines:
        funcs.append(FUNCS[language].format(i=i))
        i += 1
    mid = len(funcs) // 2
    head = HEADS.get(language, "") + "".join(funcs[:mid])
    body = funcs[mid]
    line_end = body.index("\n") + 1  # after the header line
    indent = body[line_end : line_end + len(body[line_end:]) - len(body[line_end:].lstrip())]
    text = head + body[:line_end] + indent + "\n" + body[line_end:] + "".join(funcs[mid + 1 :])
    return text + TAILS.get(language, ""), len(head) + line_end + len(indent)


def stage_cost_ms(language: str, repeats: int = 20) -> tuple[float, float]:
    """Median ms of `should_complete` (comment check on: one parse) and multi-line `postprocess`.

    The completion is the language's runaway case, three lines whose last breaks the file:
    syntax truncation parses the file before, with all three lines, then with two.
    """
    text, offset = _cost_document(language)
    context = extract_context(text, offset, language)
    trigger = TriggerOptions(multiline=True, in_comments=False, mid_word_only=False)
    post = PostOptions(multiline=True)
    case = next((c for c in CASES if c.language == language), CASES[0])
    t_trigger, t_post = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        should_complete(context, trigger)
        t1 = time.perf_counter()
        postprocess(case.runaway, context, "end_token", post)
        t2 = time.perf_counter()
        t_trigger.append((t1 - t0) * 1000)
        t_post.append((t2 - t1) * 1000)
    return sorted(t_trigger)[repeats // 2], sorted(t_post)[repeats // 2]


@pytest.mark.parametrize("language", sorted(FUNCS))
def test_stage_cost_document_and_timing(language: str) -> None:
    text, offset = _cost_document(language)
    assert 300 <= text.count("\n") <= 330
    if language in SPECS:
        assert has_error(text, language) is False
    assert text[offset - 1 : offset + 1] == (" \n" if language != "go" else "\t\n")
    context = extract_context(text, offset, language)
    assert (
        should_complete(context, TriggerOptions(multiline=True, mid_word_only=False)) is Mode.MULTI
    )
    if language in SPECS:  # the cost is measured on the runaway case's truncation
        case = next(c for c in CASES if c.language == language)
        post = postprocess(case.runaway, context, "end_token", PostOptions(multiline=True))
        # Rust: `a` is no tail expression above the function's own: one line more goes
        assert post == (case.runaway_cut if language != "rust" else "let a = r * r;")
    trigger_ms, post_ms = stage_cost_ms(language, repeats=3)
    assert trigger_ms < 1000  # a sanity bound; figures: docs/quality.md
    assert post_ms < 1000


if (
    __name__ == "__main__"
):  # docs/quality.md: PYTHONPATH=tests python tests/unit/completion/test_languages.py
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for lang in sorted(FUNCS):
        t, p = stage_cost_ms(lang, repeats=200)
        logging.info("%-12s should_complete %.3f ms  postprocess %.3f ms", lang, t, p)
