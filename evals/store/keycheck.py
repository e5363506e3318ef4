"""The store's key check: a wrong ``EVALS_STORE_KEY`` is refused before anything is written or read.

The first time a process with a key uses a store, it seals a known token with the newest key and keeps it
in the ``store_key`` table (one row). From then on a process with a key must open that token: one whose
keys do not (another team's key, a typo'd secret) gets one line (``crypto.WRONG_KEY``) before it writes a
single value under the wrong key, where otherwise a run would have stored its text under a key nobody
else has and left the store unreadable as a whole. A key rotation (``NEW,OLD``) opens the token through
``OLD``, and the token is sealed again under ``NEW`` at once (so a process still holding only ``OLD`` is
refused from then on; ``evals store rekey`` moves the rest of the text).

A store encrypted before the check existed has no token: the key is checked against a sample of the
store's sealed values instead (refused when it opens none, or only some: text is then under another key
too, which ``evals store rekey`` sorts out), and the token is written when the store can be written.
Without a key nothing is checked: text reads ``(encrypted)`` (``evals.store.retention`` warns a writer).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from evals.errors import StoreError
from evals.store.crypto import KEY_ENV, PREFIX, WRONG_KEY, TextCodec

if TYPE_CHECKING:
    from evals.store.postgres import PostgresBackend
    from evals.store.sqlite import SqliteBackend

    Backend = SqliteBackend | PostgresBackend

NAME = "store"
"""The row of ``store_key`` holding the token."""
TOKEN = "lookingglass store key check v1"
"""What the token opens to."""
SAMPLE = 20
"""Sealed values per column read to check a key against a store that has no token yet."""
MIXED_KEYS = (
    f"{KEY_ENV} opens some of this store's encrypted text but not all of it (part of it is under another "
    "key): put that key after yours (EVALS_STORE_KEY=YOURS,OTHER), or run `evals store rekey`, which "
    "re-encrypts what it can read and names the runs it cannot"
)

_SAMPLED = (
    ("answers", "text"),
    ("answers", "error"),
    ("judgments", "rationale"),
    ("canary_anchors", "answer"),
)


def stored_token(backend: Backend) -> str | None:
    """The sealed token, or None (a store whose text was never written with a key, or from before the check)."""
    row = backend.execute("SELECT token FROM store_key WHERE name = ?", (NAME,)).fetchone()
    return None if row is None else str(row[0])


def opens_token(text: TextCodec, token: str) -> bool:
    """Whether the keys open the token, to the text it must hold."""
    return text.opens(token) and text.open(token) == TOKEN


def sample(backend: Backend, text: TextCodec) -> tuple[int, int]:
    """(opened, not opened) over a sample of the store's sealed values: the first ``SAMPLE`` of each text
    column that holds any, and of the items."""
    opened = closed = 0
    values: list[str] = []
    for table, column in _SAMPLED:
        rows = backend.execute(
            f"SELECT {column} FROM {table} WHERE {column} LIKE ? LIMIT {SAMPLE}", (PREFIX + "%",)
        ).fetchall()
        values += [str(r[0]) for r in rows]
    items = backend.execute(
        f"SELECT item_json FROM items WHERE item_json LIKE ? LIMIT {SAMPLE}", ('%"' + PREFIX + "%",)
    ).fetchall()
    for (item_json,) in items:
        question = json.loads(item_json).get("question")
        if isinstance(question, str) and question.startswith(PREFIX):
            values.append(question)
    for value in values:
        if text.opens(value):
            opened += 1
        else:
            closed += 1
    return opened, closed


def encrypts(backend: Backend) -> bool:
    """Whether the store encrypts its text (a key was used on it: its token; or it holds a sealed value);
    no key needed."""
    return stored_token(backend) is not None or holds_sealed(backend)


def holds_sealed(backend: Backend) -> bool:
    """Whether the store holds an encrypted value (a store a key was only checked on holds none); no key needed."""
    return sum(sample(backend, TextCodec(None))) > 0


def verify(backend: Backend, text: TextCodec, readonly: bool) -> None:
    """Refuse keys that are not the store's (``StoreError``, nothing written); record the token the first
    time a key is used on a store that can be written."""
    if text.fernet is None:
        return
    token = stored_token(backend)
    if token is not None:
        if not opens_token(text, token):
            raise StoreError(WRONG_KEY + "; nothing was written")
        if not text.under_newest(token):  # a rotation (NEW,OLD): the store's key is the new one from now on
            record(backend, text, readonly, replace=True)
        return
    opened, closed = sample(backend, text)
    if closed:
        raise StoreError((MIXED_KEYS if opened else WRONG_KEY) + "; nothing was written")
    record(backend, text, readonly)


def record(backend: Backend, text: TextCodec, readonly: bool, replace: bool = False) -> None:
    """Write the token sealed with the newest key (``replace``: over the one there, as ``rekey`` does),
    unless the store cannot be written here; then check what is there (another process may have been first)."""
    sealed = text.seal(TOKEN)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    conflict = "DO UPDATE SET token = excluded.token, set_at = excluded.set_at" if replace else "DO NOTHING"
    try:
        with backend.writer(readonly) as writer:
            if writer is not None:
                writer.execute(
                    f"INSERT INTO store_key (name, token, set_at) VALUES (?, ?, ?) ON CONFLICT (name) {conflict}",
                    (NAME, sealed, when),
                )
    except Exception as exc:
        if not backend.is_error(exc):
            raise
        return  # not allowed to write here: the sample check stands for this command
    token = stored_token(backend)
    if token is not None and not opens_token(text, token):
        raise StoreError(WRONG_KEY + "; nothing was written")
