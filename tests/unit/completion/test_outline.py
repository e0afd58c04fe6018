"""The file's outline: imports and enclosing headers go back before a window that cut them."""

from __future__ import annotations

from completion.context import extract_context
from completion.engines.fake import FakeEngine
from completion.models.specs import PromptBudget
from completion.outline import outline
from completion.prompt import build_prompt

FILE = (
    "import os\n"
    "from typing import (\n"
    "    Any,\n"
    ")\n"
    "\n"
    "\n"
    "class Store:\n"
    '    """A store."""\n'
    "\n"
    + "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(40))
    + "    def total(self, items):\n"
    "        count = 0\n"
    "        for item in items:\n"
)


def test_outline_keeps_imports_whole_and_the_headers_around_the_cursor() -> None:
    lines = outline(FILE, "python")
    texts = [o.text.rstrip() for o in lines]
    assert texts == [
        "import os",
        "from typing import (",
        "    Any,",
        ")",
        "class Store:",
        "    def total(self, items):",
    ]
    assert [o.header for o in lines][-3:] == [False, True, True]
    assert outline(FILE, "javascript") == ()
    assert outline("", "python") == ()


def test_a_short_window_gets_the_outline_before_it_and_a_long_one_no_copy() -> None:
    engine = FakeEngine()  # a token a character
    context = extract_context(FILE, len(FILE))
    lines = outline(FILE, "python")
    prompt = build_prompt(context, engine, PromptBudget(400, 128), outline=lines)
    head, _, window = prompt.prefix.partition("class Store:\n")
    assert head == "import os\nfrom typing import (\n    Any,\n)\n\n"
    assert window.lstrip("\n").startswith("    def m")  # the window, right after the headers it cut
    assert "def m0(" not in window
    assert prompt.static_len <= 3 + 400 + 1  # markers, the budget, the blank after imports
    whole = build_prompt(context, engine, PromptBudget(4000, 128), outline=lines)
    assert whole.prefix == FILE  # everything fits: nothing is copied twice
