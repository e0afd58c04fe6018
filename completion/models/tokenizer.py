"""`ModelTokenizer`: an installed model's tokenizer and its family's stop-token ids.

Every engine of a real model reads them the same way (`TokenizedEngine`): `CT2Engine` and
`LlamaCppEngine` generate with them, and `RemoteEngine` builds its prompt text and turns the
server's text back into ids with them.
`tokenizers` is imported when a model is loaded, not before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from completion.models.store import InstalledModel, ModelCorruptError


class ModelTokenizer:
    """Encode and decode like the model; `stop_tokens` are the family's the vocabulary has."""

    def __init__(self, model: InstalledModel) -> None:
        from tokenizers import Tokenizer

        try:
            self.raw: Any = Tokenizer.from_file(str(model.path / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises plain Exception on a bad file
            raise ModelCorruptError(f"cannot read the tokenizer of {model.path}: {exc}") from exc
        ids = {token: self.token_id(token) for token in model.family.stop_tokens}
        self.stop_tokens = [token for token, i in ids.items() if i is not None]
        self.stop_ids = frozenset(i for i in ids.values() if i is not None)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        return list(self.raw.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], special: bool = False) -> str:
        """Text of ids; special tokens are skipped unless `special` (a prompt as sent)."""
        return str(self.raw.decode(list(ids), skip_special_tokens=not special))

    def token_id(self, token: str) -> int | None:
        """The id of a token, if the vocabulary has it."""
        result: int | None = self.raw.token_to_id(token)
        return result


class TokenizedEngine:
    """An engine's token methods, answered by the model's own tokenizer (`_tokens`)."""

    _tokens: ModelTokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        return self._tokens.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens skipped."""
        return self._tokens.decode(ids)

    def token_id(self, token: str) -> int | None:
        """The id of a token, if the vocabulary has it."""
        return self._tokens.token_id(token)
