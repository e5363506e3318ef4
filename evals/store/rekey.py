"""``evals store rekey``: every text of the store written again under the newest key of ``EVALS_STORE_KEY``.

Completes a key rotation (text sealed with an older key is re-encrypted, after which the older key can be
dropped) and closes gaps (text stored in clear, before encryption was turned on or by a process without
the key, is encrypted). Purged text (``(purged)``) stays as it is: there is nothing in it to protect.
"""

from __future__ import annotations

import json

from evals.errors import ConfigError
from evals.store.core import Store
from evals.store.crypto import KEY_ENV, TextCodec, codec
from evals.store.rows import PURGED, PURGED_HASH

_TABLES = {
    "answers": (("run_id", "item_id", "sample"), ("text", "reasoning")),
    "judgments": (("run_id", "item_id", "sample", "repeat", "judge"), ("rationale", "raw")),
}
"""Key and text columns of the tables whose text is sealed value by value."""


def _again(text: TextCodec, value: str | None) -> str | None:
    return value if value is None or value == PURGED else text.seal(text.open(value))


def rekey(store: Store) -> int:
    """Seal every text value under the newest key, run by run (one transaction each); the values written."""
    text = codec()
    if text.fernet is None:
        raise ConfigError(f"{KEY_ENV} is not set: set the key(s), newest first, to rekey the store")
    written = 0
    for m in store.runs():
        updates: list[tuple[str, list[tuple[object, ...]]]] = []
        for table, (key, columns) in _TABLES.items():
            rows = store._execute(
                f"SELECT {','.join(key + columns)} FROM {table} WHERE run_id = ?", (m.run_id,)
            ).fetchall()
            sets = ", ".join(f"{c} = ?" for c in columns)
            where = " AND ".join(f"{c} = ?" for c in key)
            values = [(*(_again(text, v) for v in r[len(key) :]), *r[: len(key)]) for r in rows]
            updates.append((f"UPDATE {table} SET {sets} WHERE {where}", values))
            written += sum(1 for r in rows for v in r[len(key) :] if v is not None and v != PURGED)
        items = store._execute("SELECT item_json, run_id, item_id FROM items WHERE run_id = ?", (m.run_id,))
        sealed: list[tuple[object, ...]] = []
        for item_json, run_id, item_id in items.fetchall():
            data = json.loads(item_json)
            if PURGED_HASH in (data.get("metadata") or {}):
                continue  # a purged item holds no text
            again = text.seal_item(text.open_item(data))
            sealed.append((json.dumps(again, ensure_ascii=False, separators=(",", ":")), run_id, item_id))
        updates.append(("UPDATE items SET item_json = ? WHERE run_id = ? AND item_id = ?", sealed))
        written += len(sealed)
        with store.backend.transaction():
            for sql, values in updates:
                if values:
                    store.backend.executemany(sql, values)
    return written
