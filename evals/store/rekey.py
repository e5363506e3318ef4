"""``evals store rekey``: every text of the store written again under the newest key of ``EVALS_STORE_KEY``.

Completes a key rotation (text sealed with an older key is re-encrypted, after which the older key can be
dropped) and closes gaps (text stored in clear, before encryption was turned on or by a process without
the key, is encrypted). It works on any mix it can read: clear text, text under any of the given keys.
A value none of the keys opens is left exactly as it is, counted, and named by its run (or canary set),
so the key it needs can be added and rekey run again. Purged text (``(purged)``) stays as it is: there is
nothing in it to protect. The store's key check (``evals.store.keycheck``) is sealed again under the newest
key before any text is moved; each run (and canary set) is moved in one transaction, so an interrupted
rekey leaves every run whole under one key or the other, and running it again finishes the job.

A key that is not the store's is refused before anything changes: one that does not open the store's key
check, or (a store from before the check) that opens none of a sample of its sealed values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from evals.errors import ConfigError, StoreError
from evals.store.core import Store
from evals.store.crypto import KEY_ENV, WRONG_KEY, TextCodec, Unreadable, codec
from evals.store.keycheck import opens_token, record, sample, stored_token
from evals.store.rows import PURGED, PURGED_HASH

_RUN_TABLES = {
    "answers": (("run_id", "item_id", "sample"), ("text", "reasoning", "error")),
    "judgments": (("run_id", "item_id", "sample", "repeat", "judge"), ("rationale", "raw", "error")),
}
"""Key and text columns of a run's tables whose text is sealed value by value (items are sealed whole)."""
_CANARY_TABLES = {
    "canary_anchors": (("set_id", "item_id"), ("answer",)),
    "canary_scores": (("set_id", "run_id", "item_id"), ("error",)),
    "canary_observations": (("set_id", "run_id"), ("error",)),
}
"""The same for an anchor set's tables (``evals.store.canary``)."""
_NAMED = 20
"""Runs named in the message about values that could not be read; the rest are counted."""


@dataclass
class Rekeyed:
    """What a rekey did."""

    written: int = 0
    """Text values written under the newest key."""
    unreadable: dict[str, int] = field(default_factory=dict)
    """Values none of the keys opens, left as they were, by where they are (``run ID``, ``canary set ID``)."""

    def problem(self) -> str | None:
        """One line naming what could not be read, or None."""
        if not self.unreadable:
            return None
        places = [f"{where} ({n})" for where, n in sorted(self.unreadable.items())]
        more = len(places) - _NAMED
        named = ", ".join(places[:_NAMED]) + (f" and {more} more" if more > 0 else "")
        return (
            f"{sum(self.unreadable.values())} value(s) could not be decrypted with {KEY_ENV} and were left as "
            f"they were: {named}; add the key they were written with after the newest "
            f"({KEY_ENV}=NEW,OLD) and run evals store rekey again"
        )


def _again(text: TextCodec, value: str | None) -> str | None:
    """``value`` sealed under the newest key (``Unreadable`` when no key opens it)."""
    return value if value is None or value == PURGED else text.seal(text.open_strictly(value))


def _rekey_rows(
    store: Store, text: TextCodec, table: str, key: tuple[str, ...], columns: tuple[str, ...], where: str,
    arg: str, done: Rekeyed, place: str,
) -> tuple[str, list[tuple[object, ...]]]:  # fmt: skip
    """The update of one table's rows of a run (or set): values re-sealed, unreadable ones written back as
    they are (and counted under ``place``)."""
    rows = store._execute(
        f"SELECT {','.join(key + columns)} FROM {table} WHERE {where} = ?", (arg,)
    ).fetchall()
    values: list[tuple[object, ...]] = []
    for row in rows:
        out = []
        for value in row[len(key) :]:
            try:
                out.append(_again(text, value))
                if value is not None and value != PURGED:
                    done.written += 1
            except Unreadable:
                out.append(value)
                done.unreadable[place] = done.unreadable.get(place, 0) + 1
        values.append((*out, *row[: len(key)]))
    sets = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {table} SET {sets} WHERE {' AND '.join(f'{c} = ?' for c in key)}", values


def _rekey_items(
    store: Store, text: TextCodec, table: str, key: str, arg: str, done: Rekeyed, place: str
) -> tuple[str, list[tuple[object, ...]]]:
    """The update of the items (their JSON sealed whole) of a run (``items``) or set (``canary_anchors``)."""
    rows = store._execute(f"SELECT item_json, {key}, item_id FROM {table} WHERE {key} = ?", (arg,))
    sealed: list[tuple[object, ...]] = []
    for item_json, owner, item_id in rows.fetchall():
        data = json.loads(item_json)
        if PURGED_HASH in (data.get("metadata") or {}):
            continue  # a purged item holds no text
        try:
            again = text.seal_item(text.open_item(data, strictly=True))
        except Unreadable:
            done.unreadable[place] = done.unreadable.get(place, 0) + 1
            continue
        sealed.append((json.dumps(again, ensure_ascii=False, separators=(",", ":")), owner, item_id))
        done.written += 1
    return f"UPDATE {table} SET item_json = ? WHERE {key} = ? AND item_id = ?", sealed


def _write(store: Store, updates: list[tuple[str, list[tuple[object, ...]]]]) -> None:
    with store.backend.transaction():
        for sql, values in updates:
            if values:
                store.backend.executemany(sql, values)


def _refuse_a_foreign_key(store: Store, text: TextCodec) -> None:
    token = stored_token(store.backend)
    if token is not None:
        if not opens_token(text, token):
            raise StoreError(WRONG_KEY + "; nothing was changed")
        return
    opened, closed = sample(store.backend, text)
    if closed and not opened:
        raise StoreError(WRONG_KEY + "; nothing was changed")


def rekey_store(store: Store) -> Rekeyed:
    """Seal every text value it can read under the newest key, run by run and set by set (one transaction
    each); what was written and what could not be read."""
    text = codec()
    if text.fernet is None:
        raise ConfigError(f"{KEY_ENV} is not set: set the key(s), newest first, to rekey the store")
    _refuse_a_foreign_key(store, text)
    # The newest key is the store's from the first value moved: a rekey interrupted half way (each run and
    # set is one transaction) leaves text under both keys, which a process with the old key alone would
    # read only in part; it is refused instead, and the same rekey run again finishes the job.
    record(store.backend, text, readonly=False, replace=True)
    done = Rekeyed()
    for m in store.runs():
        place = f"run {m.run_id}"
        updates = [
            _rekey_rows(store, text, t, k, c, "run_id", m.run_id, done, place)
            for t, (k, c) in _RUN_TABLES.items()
        ]
        _write(store, [*updates, _rekey_items(store, text, "items", "run_id", m.run_id, done, place)])
    for (set_id,) in store._execute("SELECT set_id FROM canary_sets ORDER BY set_id").fetchall():
        place = f"canary set {set_id}"
        updates = [
            _rekey_rows(store, text, t, k, c, "set_id", set_id, done, place)
            for t, (k, c) in _CANARY_TABLES.items()
        ]
        _write(store, [*updates, _rekey_items(store, text, "canary_anchors", "set_id", set_id, done, place)])
    return done


def rekey(store: Store) -> int:
    """``rekey_store``, for a caller that wants all or an error: the values written; a ``StoreError`` naming
    what could not be read (after writing everything that could)."""
    done = rekey_store(store)
    problem = done.problem()
    if problem:
        raise StoreError(problem)
    return done.written
