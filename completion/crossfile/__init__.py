"""Cross-file context: snippets of other files for the top of the prompt.

Two sources, both bounded in tokens and time:

- **windows**: other open documents are cut into ~60-line windows (stride half a window);
  the windows whose identifier sets are most Jaccard-similar to the lines above the cursor
  are kept (Copilot's "neighboring tabs", Cody's Jaccard retriever).
- **definitions** (Python): the names the file imports from workspace files (`from pkg.mod
  import name`, `import pkg.mod as m` + `m.name`, relative imports) are resolved to files
  under the workspace root, parsed with tree-sitter, and their definitions are summarised:
  a short function whole, a long one as its signature and docstring summary, a class as its
  header, `__init__` and method signatures, a constant as its assignment.

Both become comment blocks with a path header (`# Compare this snippet from pkg/mod.py:`),
deduplicated against the prompt and against each other, within a token budget and a time
budget (collection stops when it is spent; what was found so far is used). A language without
a grammar gets windows only, never an error. Parsed files are cached by (path, mtime, size).

Parts: `common` (limits, types), `windows`, `imports` (parsing and module resolution),
`outline` (a file's definitions, parsed and cached, and how one is shown), `definitions`
(what to show of the imported names), `assembly` (the budget and the blocks). `Document` lives in
completion/document.py, the comment syntax in completion/languages.py.
"""

__all__ = [
    "MAX_DOCUMENTS",
    "Crossfile",
    "CrossfileOptions",
    "Snippet",
    "collect",
    "display_path",
    "parse_imports",
    "resolve_module",
    "wait_warm",
]
from completion.crossfile.assembly import collect
from completion.crossfile.common import (
    MAX_DOCUMENTS,
    Crossfile,
    CrossfileOptions,
    Snippet,
    display_path,
)
from completion.crossfile.imports import parse_imports, resolve_module
from completion.crossfile.outline import wait_warm
