"""pygls' language-server protocol, hardened, and the plain form of a custom method's params.

A request it cannot parse gets an error reply, not silence; what is not JSON-RPC is dropped
after one log line. After `shutdown` the server only answers: a request gets InvalidRequest,
and nothing the server would start itself (a notification, a request) is sent.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from lsp_server.documents import LspWorkspace

log = logging.getLogger("offpilot.server")


class OffpilotProtocol(LanguageServerProtocol):
    """pygls' protocol, hardened: a request it cannot parse gets an error reply, not silence.

    Its documents end lines where LSP does and take edits cheaply (lsp_server/documents.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing = False  # `shutdown` arrived: pygls sets `_shutdown` only after its handler

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
        """Ignore what is not a JSON-RPC message (after one log line).

        A request after `shutdown` is answered InvalidRequest, as LSP asks (pygls drops it,
        and the client would wait forever).
        """
        if not hasattr(message, "jsonrpc"):
            if message is not None:
                log.warning("ignoring a message that is not JSON-RPC: %.200r", message)
            return
        method = getattr(message, "method", None)
        if self._shutdown and method != types.EXIT and getattr(message, "id", None) is not None:
            if method is not None:  # a request, not a reply to one of ours
                error = JsonRpcInvalidRequest("the server is shutting down")
                self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)

    def _send_data(self, data: Any) -> None:
        """Send, except what the server would start by itself once `shutdown` was answered.

        A generation, a prefetch or the model load may still end after `shutdown`; their
        notifications must not reach a client that is closing (or a closed stdout).
        """
        if (self.closing or self._shutdown) and hasattr(data, "method"):
            log.debug("after shutdown, not sent: %s", data.method)
            return
        super()._send_data(data)


def plain(obj: Any) -> Any:
    """Turn pygls' parsed params of a custom method -> plain dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj
