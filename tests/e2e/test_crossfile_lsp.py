"""Cross-file context through the real server: other open documents and imported files reach
the prompt (the server logs the snippets each prompt carried), and the setting turns it off.
"""

from __future__ import annotations

import re
from pathlib import Path

from lsp_helpers import ask, open_doc, start_server

from completion.models.store import InstalledModel

HELPERS = (
    "def frobnicate_widget(widget_id, colour):\n"
    '    """Paint the widget."""\n'
    "    return paint(widget_id, colour)\n"
)
UTIL = "def normalise_gadget(gadget, *, strict=False):\n    return gadget.strip()\n"
MAIN = (
    "from pkg.util import normalise_gadget\n\n\n"
    "def handle(widget_id, colour, gadget):\n"
    "    name = normalise_gadget(gadget)\n"
    "    frobnicate_widget(widget_id, colour)\n"
    "    return \n"
)


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "util.py").write_text(UTIL)
    (tmp_path / "helpers.py").write_text(HELPERS)
    main = tmp_path / "main.py"
    main.write_text(MAIN)
    return tmp_path / "helpers.py", main


def _crossfile_lines(log: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"crossfile=\[([^\]]*)\]", log.read_text())]


async def _ask_in_workspace(tiny_model: InstalledModel, tmp_path: Path, cross_file: bool) -> Path:
    """Open helpers.py and main.py, ask at main.py's `return `; the server's log file."""
    helpers, main = _workspace(tmp_path)
    log = tmp_path / "server.log"
    client = await start_server(
        "--model", str(tiny_model.path), "--log-file", str(log),
        init_options={"contextTokens": 2048, "cache": False, "crossFile": cross_file},
    )  # fmt: skip
    try:
        open_doc(client, helpers.as_uri(), HELPERS)
        open_doc(client, main.as_uri(), MAIN)
        await ask(client, main.as_uri(), 6, 11)
    finally:
        await client.shutdown_session()
    return log


async def test_prompt_carries_open_documents_and_imported_definitions(
    tiny_model: InstalledModel, tmp_path: Path
) -> None:
    log = await _ask_in_workspace(tiny_model, tmp_path, cross_file=True)
    used = _crossfile_lines(log)
    assert used, log.read_text()[-2000:]
    assert "helpers.py:1-3" in used[-1]  # the open document's window
    assert "pkg/util.py:1-2 normalise_gadget" in used[-1]  # the imported definition


async def test_crossfile_setting_turns_it_off(tiny_model: InstalledModel, tmp_path: Path) -> None:
    log = await _ask_in_workspace(tiny_model, tmp_path, cross_file=False)
    text = log.read_text()
    assert "req 1:" in text
    assert _crossfile_lines(log) == []
