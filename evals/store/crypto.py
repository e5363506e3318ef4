"""Encryption at rest of the store's text: one codec that every text value passes through on its way in
and out (``evals.store.rows``, ``evals.store.canary``).

With ``EVALS_STORE_KEY`` set (a Fernet key, ``evals store keygen``; several, comma-separated and newest
first, to rotate), every text a model, a judge or a suite brought is written as ``fernet:<token>``
(AES-128-CBC with HMAC-SHA256, from ``cryptography``): item text, answers, reasoning, rationales, raw
verdicts, and the error messages of answers, verdicts and canary re-judgings (a server's error body often
echoes the prompt). Everything else stays clear: scores, whether there was an error, tokens, latencies,
hashes, cache keys, model ids and finish reasons, so history, gates and the judgment cache work without
the key. Reading a sealed value without the key gives ``(encrypted)``; with a key that does not open it, a
``StoreError`` says so (the key itself is never shown). ``evals.store.keycheck`` refuses a wrong key before
anything is written.
"""

from __future__ import annotations

import base64
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
WRONG_KEY = (
    f"{KEY_ENV} does not match the key this store's text was encrypted with; set the right key "
    f"(or, to read only scores and aggregates, unset {KEY_ENV})"
)
"""The one message of a wrong key (it never shows a key)."""
SEALED_METADATA = "sealed"
"""An item's metadata, sealed, is kept as ``{"sealed": "fernet:..."}``."""


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64), for ``EVALS_STORE_KEY``."""
    return Fernet.generate_key().decode()


def _strict(key: str) -> str:
    """``key`` when it is exactly a Fernet key's text, else ``ValueError``. Fernet alone decodes leniently: it
    skips characters outside base64 and stops at the first padding, so ``NEW OLD`` or ``NEW;OLD`` (keys not
    separated by a comma) would silently be ``NEW`` alone, and a quote or a line break would pass unseen."""
    if len(base64.b64decode(key, altchars=b"-_", validate=True)) != 32:
        raise ValueError("not 32 bytes")
    return key


class Unreadable(Exception):
    """A sealed value none of the keys of ``EVALS_STORE_KEY`` opens."""


class TextCodec:
    """Seals and opens text values with the keys of ``EVALS_STORE_KEY`` (none: values pass unchanged)."""

    def __init__(self, keys: str | None):
        self.fernet: MultiFernet | None = None
        self.newest: Fernet | None = None
        if keys:
            try:
                each = [Fernet(_strict(k.strip())) for k in keys.split(",") if k.strip()]
                self.fernet, self.newest = MultiFernet(each), each[0]
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
        """A stored value as text: opened when sealed (``(encrypted)`` without a key; a ``StoreError`` when
        none of the keys opens it)."""
        try:
            return self.open_strictly(value)
        except Unreadable:
            raise StoreError(WRONG_KEY) from None

    def open_strictly(self, value: str | None) -> str | None:
        """Like ``open``, but ``Unreadable`` when none of the keys opens the value (``evals store rekey``
        counts those and goes on)."""
        if value is None or not value.startswith(PREFIX):
            return value
        if self.fernet is None:
            return ENCRYPTED
        try:
            return self.fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except (InvalidToken, UnicodeError):
            raise Unreadable from None

    def opens(self, value: str) -> bool:
        """Whether one of the keys opens this sealed value."""
        try:
            self.open_strictly(value)
        except Unreadable:
            return False
        return self.fernet is not None

    def under_newest(self, value: str) -> bool:
        """Whether a sealed value is sealed with the newest key (not only opened by an older one)."""
        if self.newest is None or not value.startswith(PREFIX):
            return False
        try:
            self.newest.decrypt(value[len(PREFIX) :].encode())
        except InvalidToken:
            return False
        return True

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

    def open_item(self, data: dict[str, Any], strictly: bool = False) -> dict[str, Any]:
        """An item's stored JSON form with its text opened (``(encrypted)`` without a key); ``strictly``:
        ``Unreadable`` instead of a ``StoreError`` when a key does not open it."""
        opening = self.open_strictly if strictly else self.open
        out = {
            **data,
            "question": opening(data.get("question")),
            "reference": opening(data.get("reference")),
        }
        if data.get("messages"):
            out["messages"] = [{**m, "content": opening(m["content"])} for m in data["messages"]]
        metadata = data.get("metadata")
        if isinstance(metadata, dict) and set(metadata) == {SEALED_METADATA}:
            opened = opening(metadata[SEALED_METADATA])
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
