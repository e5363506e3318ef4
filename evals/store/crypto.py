"""Encryption at rest of the store's text: one codec that every text value passes through on its way in
and out (``evals.store.rows``).

With ``EVALS_STORE_KEY`` set (a Fernet key, ``evals store keygen``; several, comma-separated and newest
first, to rotate), item text, answers, reasoning, rationales and raw verdicts are written as
``fernet:<token>`` (AES-128-CBC with HMAC-SHA256, from ``cryptography``). Everything else stays clear:
scores, errors, tokens, latencies, hashes and cache keys, so history, gates and the judgment cache work
without the key. Reading a sealed value without the key gives ``(encrypted)``; with a key that opens none
of the store's values, a ``StoreError`` says so (the key itself is never shown).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from evals.errors import ConfigError, StoreError

KEY_ENV = "EVALS_STORE_KEY"
"""Environment variable holding the Fernet key(s): ``KEY`` or ``NEWEST,OLDER,...``."""
PREFIX = "fernet:"
"""Marks a stored value as sealed, so the reader knows to open it (and old clear rows still read)."""
ENCRYPTED = "(encrypted)"
"""What a sealed value reads as without the key."""
SEALED_METADATA = "sealed"
"""An item's metadata, sealed, is kept as ``{"sealed": "fernet:..."}``."""


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64), for ``EVALS_STORE_KEY``."""
    return Fernet.generate_key().decode()


class TextCodec:
    """Seals and opens text values with the keys of ``EVALS_STORE_KEY`` (none: values pass unchanged)."""

    def __init__(self, keys: str | None):
        self.fernet: MultiFernet | None = None
        if keys:
            try:
                self.fernet = MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
            except ValueError:  # never echo the value: it is a secret, even when malformed
                raise ConfigError(
                    f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes; several keys are "
                    "separated by commas, newest first); make one with: evals store keygen"
                ) from None

    def seal(self, text: str | None) -> str | None:
        """``text`` as it is stored: sealed when a key is set; None stays None."""
        if text is None or self.fernet is None:
            return text
        return PREFIX + self.fernet.encrypt(text.encode()).decode()

    def open(self, value: str | None) -> str | None:
        """A stored value as text: opened when sealed (``(encrypted)`` without a key)."""
        if value is None or not value.startswith(PREFIX):
            return value
        if self.fernet is None:
            return ENCRYPTED
        try:
            return self.fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise StoreError(
                f"{KEY_ENV} does not match the key this store's text was encrypted with; set the right key "
                f"(or, to read only scores and aggregates, unset {KEY_ENV})"
            ) from None

    def seal_item(self, data: dict[str, Any]) -> dict[str, Any]:
        """An item's JSON form with its text (question, reference, turns, metadata) sealed."""
        if self.fernet is None:
            return data
        out = {
            **data,
            "question": self.seal(data.get("question")),
            "reference": self.seal(data.get("reference")),
        }
        if data.get("messages"):
            out["messages"] = [{**m, "content": self.seal(m["content"])} for m in data["messages"]]
        if data.get("metadata"):
            out["metadata"] = {SEALED_METADATA: self.seal(json.dumps(data["metadata"], ensure_ascii=False))}
        return out

    def open_item(self, data: dict[str, Any]) -> dict[str, Any]:
        """An item's stored JSON form with its text opened (``(encrypted)`` without a key)."""
        out = {
            **data,
            "question": self.open(data.get("question")),
            "reference": self.open(data.get("reference")),
        }
        if data.get("messages"):
            out["messages"] = [{**m, "content": self.open(m["content"])} for m in data["messages"]]
        metadata = data.get("metadata")
        if isinstance(metadata, dict) and set(metadata) == {SEALED_METADATA}:
            opened = self.open(metadata[SEALED_METADATA])
            out["metadata"] = {} if opened in (None, ENCRYPTED) else json.loads(opened)
        return out


@lru_cache(maxsize=4)
def _codec(keys: str | None) -> TextCodec:
    return TextCodec(keys)


def codec() -> TextCodec:
    """The codec of the current ``EVALS_STORE_KEY`` (read at each call: a test or a process may change it)."""
    return _codec(os.environ.get(KEY_ENV) or None)


def is_sealed(value: str | None) -> bool:
    """Whether a stored value is encrypted."""
    return value is not None and value.startswith(PREFIX)
