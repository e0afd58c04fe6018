"""Bad settings from a real client over stdio: one bounded warning, not a popup per setting."""

from __future__ import annotations

import asyncio

from lsp_helpers import start_server
from lsprotocol import types

from completion.models.store import InstalledModel

HUGE = "v" * (64 << 10)


async def test_bad_settings_bring_one_short_popup(tiny_model: InstalledModel) -> None:
    """30 bad settings of 64 KiB each, at initialize and again in didChangeConfiguration."""
    bad = {f"bogus{i}": HUGE for i in range(28)} | {"maxTokens": HUGE, "debounceMs": -5}
    client = await start_server("--model", str(tiny_model.path), init_options=bad)
    try:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"offpilot": bad})
        )
        for _ in range(100):
            if len(client.messages) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # no third message comes after them
        warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
        assert len(warnings) == 2, [w[:200] for w in warnings]
        for warning in warnings:
            assert len(warning) < 2000, len(warning)
            assert warning.startswith("offpilot: 30 settings ignored, defaults kept: 'bogus0'")
            assert warning.endswith("; and 22 more")
    finally:
        await client.shutdown_session()
