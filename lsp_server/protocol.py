"""pygls' language-server protocol, hardened, and the plain form of a custom method's params.

A request it cannot parse gets an error reply, not silence; what is not JSON-RPC is dropped
after one log line.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from lsp_server.documents import LspWorkspace

log = logging.getLogger("offpilot.server")


class OffpilotProtocol(LanguageServerProtocol):
    """pygls' protocol, hardened: a request it cannot parse gets an error reply, not silence.

    Its documents end lines where LSP does and take edits cheaply (lsp_server/documents.py).
    """

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        """Initialize as pygls does, with a workspace that holds `LspDocument`s."""
        result = yield from super().lsp_initialize(params)
        self._workspace = LspWorkspace.like(self.workspace, self._server._text_document_sync_kind)
        return result

    def structure_message(self, data: Any) -> Any:
        """Parse a message; a request with bad params is answered with its JSON-RPC error."""
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                log.warning("bad %s request %r: %s", data["method"], data["id"], exc)
                self._send_response(data["id"], error=exc.to_response_error())
            return None

    def handle_message(self, message: Any) -> None:
        """Ignore what is not a JSON-RPC message (after one log line)."""
        if not hasattr(message, "jsonrpc"):
            if message is not None:
                log.warning("ignoring a message that is not JSON-RPC: %.200r", message)
            return
        super().handle_message(message)


def plain(obj: Any) -> Any:
    """Turn pygls' parsed params of a custom method -> plain dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj
