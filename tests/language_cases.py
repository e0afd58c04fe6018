"""Each language's snippets and what each stage must make of them, for the stage tests.

A `|` in a document marks the cursor. Every language has the same questions asked of it, in
the stage files that own each question (test_trigger, test_postprocess, test_stops, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from cursor import at_cursor, context_at

from completion.engines.fake import FakeEngine
from completion.options import CompletionOptions
from completion.pipeline import CompletionRequest, complete
from completion.trigger import Mode, TriggerOptions, should_complete

MULTI = TriggerOptions(multiline=True, mid_word_only=False)
NO_COMMENTS = TriggerOptions(
    in_comments=False, mid_line_rule=False, multiline=False, mid_word_only=False
)
MID_LINE_OFF = TriggerOptions(mid_line_rule=False, multiline=False, mid_word_only=False)


def mode(doc: str, language: str = "python", options: TriggerOptions = MULTI) -> Mode:
    """The trigger's answer at the marked cursor."""
    return should_complete(context_at(doc, language), options)


@dataclass(frozen=True)
class Case:
    """One language's snippets and what each stage must make of them."""

    language: str
    header: str  # a block opener at the cursor, its body empty
    statement: str  # the end of a statement: never multi-line
    mid_line: str  # code right of the cursor
    comment: str  # inside a comment, at the end of the line
    string: str  # inside a string
    code: str  # code that looks like a comment or string to a naive check
    single: str  # a single-line hole in a file that parses
    single_ok: str  # a completion that keeps it parsing
    single_bad: str  # one that breaks it
    hole: str  # an empty line in a block
    runaway: str  # a multi-line completion whose last line breaks the file
    runaway_cut: str  # what syntax truncation keeps
    open_end: str  # a block opener at the end of the file (no closer anywhere)
    model: str  # what the model writes there: the block, then more
    block: str  # the completion: the block with its closer, nothing after
    closed: str  # the same opener with the closer already below
    closed_block: str  # the completion there: the body only


CASES = [
    Case(
        "python",
        header="def area(r):|\n\n\nprint(area(2))\n",
        statement="total = 1|\nprint(total)\n",
        mid_line="total = are|a(1)\n",
        comment="total = 1  # running sum|\nprint(total)\n",
        string='name = "ab|c"\n',
        code='name = f"{tot|al}"\n',
        single="def area(r):\n    return |\n",
        single_ok="r * r",
        single_bad="(r *",
        hole="def area(r):\n    |\n\n\nprint(area(2))\n",
        runaway="a = r * r\n    return a\n    b = (",
        runaway_cut="a = r * r\n    return a",
        open_end="def area(r):|",
        model="\n    return 3.14 * r * r\n\n\nprint(area(2))\n",
        block="\n    return 3.14 * r * r",
        closed="def area(r):|\n\n\nprint(area(2))\n",
        closed_block="\n    return 3.14 * r * r",
    ),
    Case(
        "javascript",
        header="function area(r) {|\n}\n",
        statement="const total = 1;|\n",
        mid_line="const total = are|a(1);\n",
        comment="const total = 1; // running sum|\n",
        string='const name = "ab|c";\n',
        code="const name = `a${tot|al}`;\n",
        single="function area(r) {\n  return |\n}\n",
        single_ok="r * r;",
        single_bad="(r *",
        hole="function area(r) {\n  |\n}\n",
        runaway="const a = r * r;\n  return a;\n  const b = (",
        runaway_cut="const a = r * r;\n  return a;",
        open_end="function area(r) {|",
        model="\n  return Math.PI * r * r;\n}\n\nconsole.log(area(2));\n",
        block="\n  return Math.PI * r * r;\n}",
        closed="function area(r) {|\n}\n",
        closed_block="\n  return Math.PI * r * r;",
    ),
    Case(
        "typescript",
        header="function area(r: number): number {|\n}\n",
        statement="const total: number = 1;|\n",
        mid_line="const total = are|a(1);\n",
        comment="const total = 1; /* running| sum */\n",
        string="const name = `ab|c`;\n",
        code="let name: stri|ng;\n",  # `string` the type keyword, not a string
        single="function area(r: number): number {\n  return |\n}\n",
        single_ok="r * r;",
        single_bad="(r *",
        hole="function area(r: number): number {\n  |\n}\n",
        runaway="const a = r * r;\n  return a;\n  const b = (",
        runaway_cut="const a = r * r;\n  return a;",
        open_end="function area(r: number): number {|",
        model="\n  return Math.PI * r * r;\n}\n\nconsole.log(area(2));\n",
        block="\n  return Math.PI * r * r;\n}",
        closed="function area(r: number): number {|\n}\n",
        closed_block="\n  return Math.PI * r * r;",
    ),
    Case(
        "go",
        header="package main\n\nfunc area(r float64) float64 {|\n}\n",
        statement="package main\n\nvar total = 1|\n",
        mid_line="package main\n\nvar total = are|a(1)\n",
        comment="package main\n\nvar total = 1 // running sum|\n",
        string="package main\n\nvar name = `ab|c`\n",
        code="package main\n\nvar name = `abc`|\n",
        single="package main\n\nfunc area(r float64) float64 {\n\treturn |\n}\n",
        single_ok="r * r",
        single_bad="(r *",
        hole="package main\n\nfunc area(r float64) float64 {\n\t|\n}\n",
        runaway="a := r * r\n\treturn a\n\tb := (",
        runaway_cut="a := r * r\n\treturn a",
        open_end="package main\n\nfunc area(r float64) float64 {|",
        model="\n\treturn 3.14 * r * r\n}\n\nfunc main() {\n\tarea(2)\n}\n",
        block="\n\treturn 3.14 * r * r\n}",
        closed="package main\n\nfunc area(r float64) float64 {|\n}\n",
        closed_block="\n\treturn 3.14 * r * r",
    ),
    Case(
        "rust",
        header="fn first<'a>(s: &'a str) -> &'a str {|\n}\n",
        statement="fn main() {\n    let total = 1;|\n}\n",
        mid_line="fn main() {\n    let total = are|a(1);\n}\n",
        comment="fn main() {\n    let total = 1; // running sum|\n}\n",
        string='fn main() {\n    let name = "ab|c";\n}\n',
        code="fn main() {\n    let c = 'a';|\n}\n",
        single="fn area(r: f64) -> f64 {\n    |\n}\n",
        single_ok="r * r",
        single_bad="(r *",
        hole="fn area(r: f64) -> f64 {\n    |\n}\n",
        runaway="let a = r * r;\n    a\n    let b = (",
        runaway_cut="let a = r * r;\n    a",
        open_end="fn first<'a>(s: &'a str) -> &'a str {|",
        model="\n    &s[..1]\n}\n\nfn main() {}\n",
        block="\n    &s[..1]\n}",
        closed="fn first<'a>(s: &'a str) -> &'a str {|\n}\n",
        closed_block="\n    &s[..1]",
    ),
    Case(
        "java",
        header="class Shapes {\n    double area(double r) {|\n    }\n}\n",
        statement="class Shapes {\n    int total = 1;|\n}\n",
        mid_line="class Shapes {\n    int total = are|a(1);\n}\n",
        comment="class Shapes {\n    int total = 1; // running sum|\n}\n",
        string='class Shapes {\n    String name = "ab|c";\n}\n',
        code="class Shapes {\n    /* running sum */|\n}\n",
        single="class Shapes {\n    double area(double r) {\n        |\n    }\n}\n",
        single_ok="return r * r;",
        single_bad="return (r *",
        hole="class Shapes {\n    double area(double r) {\n        |\n    }\n}\n",
        runaway="double a = r * r;\n        return a;\n        double b = (",
        runaway_cut="double a = r * r;\n        return a;",
        open_end="class Shapes {\n    double area(double r) {|",
        model="\n        return Math.PI * r * r;\n    }\n\n    double square(double s) {\n",
        block="\n        return Math.PI * r * r;\n    }",
        closed="class Shapes {\n    double area(double r) {|\n    }\n}\n",
        closed_block="\n        return Math.PI * r * r;",
    ),
    Case(
        "c",
        header="double area(double r) {|\n}\n",
        statement="int total = 1;|\n",
        mid_line="int total = are|a(1);\n",
        comment="int total = 1; // running sum|\n",
        string='const char *name = "ab|c";\n',
        code="#include <stdio.h>|\n",
        single="double area(double r) {\n    |\n}\n",
        single_ok="return r * r;",
        single_bad="return (r *",
        hole="double area(double r) {\n    |\n}\n",
        runaway="double a = r * r;\n    return a;\n    double b = (",
        runaway_cut="double a = r * r;\n    return a;",
        open_end="double area(double r) {|",
        model="\n    return 3.14 * r * r;\n}\n\nint main(void) {\n",
        block="\n    return 3.14 * r * r;\n}",
        closed="double area(double r) {|\n}\n",
        closed_block="\n    return 3.14 * r * r;",
    ),
    Case(
        "cpp",
        header="namespace geo {\ndouble area(double r) {|\n}\n}\n",
        statement="int total = 1;|\n",
        mid_line="int total = are|a(1);\n",
        comment="int total = 1; /* running| sum */\n",
        string='auto name = R"(ab|c)";\n',
        code='auto name = "abc";  /* sum */|\n',
        single="double area(double r) {\n    |\n}\n",
        single_ok="return r * r;",
        single_bad="return (r *",
        hole="double area(double r) {\n    |\n}\n",
        runaway="double a = r * r;\n    return a;\n    double b = (",
        runaway_cut="double a = r * r;\n    return a;",
        open_end="auto area = [](double r) {|",
        model="\n    return 3.14 * r * r;\n};\n\nint main() {\n",
        block="\n    return 3.14 * r * r;\n};",
        closed="auto area = [](double r) {|\n};\n",
        closed_block="\n    return 3.14 * r * r;",
    ),
]
BY_ID = [case.language for case in CASES]


def complete_at(doc: str, language: str, model: str, path: str | None = None) -> tuple[str, str]:
    """`complete()` at the marked cursor, multi-line on, the model writing `model`."""
    engine = FakeEngine(default=model)
    request = CompletionRequest(*at_cursor(doc), language, path)
    result = complete(engine, request, CompletionOptions(trigger=TriggerOptions(multiline=True)))
    return result.text, result.stop_reason
