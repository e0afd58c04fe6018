"""What each supported language means to the stages: grammar, block style, comments, strings.

A language id is the LSP `languageId` (`python`, `javascript`, `typescriptreact`, ...), a
common alias (`js`, `golang`, `c++`), or, when the id is missing or `plaintext`, the one the
file's extension names. Anything else resolves to `""`: plain text, which every stage
handles with its text-only rules, never an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LanguageSpec:
    """One supported language."""

    id: str
    grammar: tuple[str, str]  # (module, function returning the tree-sitter language)
    braces: bool  # blocks are `{ ... }` (else: indentation after a `:` header, Python)
    comment_types: frozenset[str]
    string_types: frozenset[str]
    # Strings and comments on one line, removed before counting brackets.
    lexemes: re.Pattern[str]
    # `if (x)`, `else`, `for (...)` may take one statement on the next line, without braces
    # (C, C++, Java, JavaScript; Go and Rust require the braces)
    braceless: bool = False


_DQ = r'"(?:\\.|[^"\\\n])*"'
_SQ = r"'(?:\\.|[^'\\\n])*'"
_BQ = r"`(?:\\.|[^`\\\n])*`"
_C_COMMENTS = r"//[^\n]*|/\*.*?(?:\*/|$)"
# A JavaScript regular expression literal, where an operand starts (`split(/\//)`): its
# slashes are no comment and its brackets none of the code's.
_JS_REGEX = (
    r"(?:(?<=[(,=:\[!&|?;{}])|(?<=[(,=:\[!&|?;{}] )|^)\s*"  # where an operand starts
    r"/(?![/*])(?:\\.|\[(?:\\.|[^\]\\\n])*\]|[^/\\\n\[])+/[a-z]*"
)


def _lexemes(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.MULTILINE)


_C_FAMILY_COMMENTS = frozenset({"comment"})
_SPLIT_COMMENTS = frozenset({"line_comment", "block_comment"})
_JS_STRINGS = frozenset({"string", "string_fragment", "template_string"})

SPECS: dict[str, LanguageSpec] = {
    spec.id: spec
    for spec in (
        LanguageSpec(
            "python",
            ("tree_sitter_python", "language"),
            braces=False,
            comment_types=frozenset({"comment"}),
            string_types=frozenset({"string", "string_content", "string_start", "string_end"}),
            lexemes=_lexemes(_DQ, _SQ, r"#[^\n]*"),
        ),
        LanguageSpec(
            "javascript",
            ("tree_sitter_javascript", "language"),
            braces=True,
            comment_types=_C_FAMILY_COMMENTS,
            string_types=_JS_STRINGS,
            lexemes=_lexemes(_DQ, _SQ, _BQ, _JS_REGEX, _C_COMMENTS),
            braceless=True,
        ),
        LanguageSpec(
            "typescript",
            ("tree_sitter_typescript", "language_typescript"),
            braces=True,
            comment_types=_C_FAMILY_COMMENTS,
            string_types=_JS_STRINGS,
            lexemes=_lexemes(_DQ, _SQ, _BQ, _JS_REGEX, _C_COMMENTS),
            braceless=True,
        ),
        LanguageSpec(
            "typescriptreact",
            ("tree_sitter_typescript", "language_tsx"),
            braces=True,
            comment_types=_C_FAMILY_COMMENTS,
            string_types=_JS_STRINGS,
            lexemes=_lexemes(_DQ, _SQ, _BQ, _JS_REGEX, _C_COMMENTS),
            braceless=True,
        ),
        LanguageSpec(
            "go",
            ("tree_sitter_go", "language"),
            braces=True,
            comment_types=_C_FAMILY_COMMENTS,
            string_types=frozenset(
                {
                    "interpreted_string_literal",
                    "interpreted_string_literal_content",
                    "raw_string_literal",
                    "raw_string_literal_content",
                    "rune_literal",
                }
            ),
            lexemes=_lexemes(_DQ, _SQ, _BQ, _C_COMMENTS),
        ),
        LanguageSpec(
            "rust",
            ("tree_sitter_rust", "language"),
            braces=True,
            comment_types=_SPLIT_COMMENTS,
            string_types=frozenset(
                {"string_literal", "raw_string_literal", "string_content", "char_literal"}
            ),
            # a char literal holds one character or escape; a lone quote is a lifetime
            lexemes=_lexemes(_DQ, r"'(?:\\u\{[0-9a-fA-F]*\}|\\.|[^'\\\n])'", _C_COMMENTS),
        ),
        LanguageSpec(
            "java",
            ("tree_sitter_java", "language"),
            braces=True,
            comment_types=_SPLIT_COMMENTS,
            string_types=frozenset(
                {
                    "string_literal",
                    "string_fragment",
                    "multiline_string_fragment",
                    "character_literal",
                }
            ),
            lexemes=_lexemes(_DQ, _SQ, _C_COMMENTS),
            braceless=True,
        ),
        LanguageSpec(
            "c",
            ("tree_sitter_c", "language"),
            braces=True,
            comment_types=_C_FAMILY_COMMENTS,
            string_types=frozenset(
                {"string_literal", "string_content", "char_literal", "system_lib_string"}
            ),
            lexemes=_lexemes(_DQ, _SQ, _C_COMMENTS),
            braceless=True,
        ),
        LanguageSpec(
            "cpp",
            ("tree_sitter_cpp", "language"),
            braces=True,
            comment_types=_C_FAMILY_COMMENTS,
            string_types=frozenset(
                {
                    "string_literal",
                    "string_content",
                    "raw_string_literal",
                    "raw_string_content",
                    "char_literal",
                    "system_lib_string",
                }
            ),
            lexemes=_lexemes(_DQ, _SQ, _C_COMMENTS),
            braceless=True,
        ),
    )
}

ALIASES: dict[str, str] = {
    "python3": "python",
    "py": "python",
    "javascriptreact": "javascript",  # the JavaScript grammar parses JSX
    "js": "javascript",
    "jsx": "javascript",
    "ts": "typescript",
    "tsx": "typescriptreact",
    "golang": "go",
    "rs": "rust",
    "c++": "cpp",
    "cuda-cpp": "cpp",
}

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
}

# Ids that say "no language": the file's extension decides instead.
_NO_LANGUAGE = frozenset({"", "plaintext", "plain", "text", "unknown"})

# Without a known language: strings and `#` comments (the rules before languages existed).
PLAIN_LEXEMES = _lexemes(_DQ, _SQ, r"#[^\n]*")


def resolve_language(language: str | None, path: str | None = None) -> str:
    """The supported language id for an LSP id (or alias) and path; `""` for plain text."""
    key = (language or "").strip().lower()
    key = ALIASES.get(key, key)
    if key in SPECS:
        return key
    if key in _NO_LANGUAGE and path:
        return EXTENSIONS.get(os.path.splitext(path)[1].lower(), "")
    return ""


def spec_for(language: str | None, path: str | None = None) -> LanguageSpec | None:
    """The spec of a language id (alias, or extension of `path`); None for plain text."""
    return SPECS.get(resolve_language(language, path))


def strip_lexemes(code: str, language: str | None) -> str:
    """`code` without its one-line strings and comments, for counting brackets."""
    spec = spec_for(language)
    return (spec.lexemes if spec else PLAIN_LEXEMES).sub("", code)


# Line comment syntax per language id; (start, end) for languages with block comments only.
_LINE_COMMENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "python",
            "shellscript",
            "bash",
            "sh",
            "zsh",
            "fish",
            "ruby",
            "perl",
            "r",
            "yaml",
            "toml",
            "dockerfile",
            "makefile",
            "powershell",
            "elixir",
            "julia",
            "nim",
            "coffeescript",
            "cmake",
            "nix",
            "crystal",
            "gdscript",
        ],
        "#",
    ),
    **dict.fromkeys(
        [
            "javascript",
            "javascriptreact",
            "typescript",
            "typescriptreact",
            "go",
            "rust",
            "java",
            "c",
            "cpp",
            "csharp",
            "swift",
            "kotlin",
            "scala",
            "php",
            "dart",
            "zig",
            "objective-c",
            "objective-cpp",
            "groovy",
            "jsonc",
            "proto",
            "solidity",
            "hlsl",
            "glsl",
            "cuda",
            "verilog",
            "d",
        ],
        "//",
    ),
    **dict.fromkeys(["lua", "sql", "haskell", "elm", "ada", "purescript"], "--"),
    **dict.fromkeys(["clojure", "lisp", "scheme", "racket", "commonlisp"], ";"),
    **dict.fromkeys(["latex", "tex", "erlang", "matlab", "prolog"], "%"),
    **dict.fromkeys(["vim", "viml"], '"'),
    "fortran": "!",
}


_BLOCK_COMMENT: dict[str, tuple[str, str]] = {
    **dict.fromkeys(["html", "xml", "vue", "svelte", "markdown"], ("<!--", "-->")),
    **dict.fromkeys(["css", "scss", "less"], ("/*", "*/")),
}


def comment(line: str, language: str) -> str:
    """`line` as a comment of `language` (`#` when the language is unknown)."""
    if language in _BLOCK_COMMENT:
        start, end = _BLOCK_COMMENT[language]
        return f"{start} {line.replace(end, '')} {end}" if line else f"{start} {end}"
    mark = _LINE_COMMENT.get(language, "#")
    return f"{mark} {line}" if line else mark
