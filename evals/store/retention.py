"""The store's side of retention: which runs have lost their text, how much text a run holds, and removing
it in one transaction (``evals.store.purge`` decides which runs, ``evals.render.purge`` rewrites their exports).

A purge replaces the text columns (item text, answers, reasoning, rationales, raw verdicts, and the
error messages of answers and verdicts, which may echo the prompt) by ``(purged)`` and keeps every other
column: scores, tokens, latencies, the items' content hashes, the judgments' cache keys and the runs'
aggregates (``run_areas``); an error stays an error (it reads ``(purged)``), so error counts do not move.
No other table is touched. ``check_text`` refuses every command that would hand a run's text on (resume,
re-judge, review, export as training data, anchor a canary) when the text is not there: purged, or encrypted
and read without the key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from evals.errors import StoreError
from evals.records import Item
from evals.store.core import Store
from evals.store.crypto import KEY_ENV, PREFIX, TextCodec, codec
from evals.store.keycheck import stored_token
from evals.store.rows import PURGED, PURGED_HASH

log = logging.getLogger(__name__)

_TEXT = {
    "answers": ("text", "reasoning", "error"),
    "judgments": ("rationale", "raw", "error"),
    "items": ("item_json",),
}
"""The columns holding text, by table. ``item_json`` also holds id, area, rubric and tags, which stay."""


@dataclass(frozen=True)
class TextHeld:
    """How much text a run keeps in the store."""

    rows: int
    """Rows of items, answers and judgments holding text (not yet purged)."""
    bytes: int
    """Bytes of that text as stored (sealed text counts as stored, so larger than the plain text)."""


def is_purged(store: Store, run_id: str) -> bool:
    """Whether ``evals purge`` removed this run's text: it can be reported and gated, not resumed or re-judged."""
    row = store._execute("SELECT purged_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise StoreError(f"no run {run_id!r} in {store.path}")
    if row[0] is not None:
        return True
    # A purged run copied (evals store copy) or imported from its exports: its items say so.
    purged_item = store._execute(
        "SELECT 1 FROM items WHERE run_id = ? AND item_json LIKE ? LIMIT 1", (run_id, f'%"{PURGED_HASH}"%')
    ).fetchone()
    return purged_item is not None


def purged_runs(store: Store) -> set[str]:
    """The ids of every purged run."""
    return {r[0] for r in store._execute("SELECT run_id FROM runs WHERE purged_at IS NOT NULL").fetchall()}


def text_held(store: Store, run_id: str) -> TextHeld:
    """The rows and bytes of text a purge of this run would remove."""
    size = "octet_length({})" if store.dialect == "postgresql" else "length(CAST({} AS BLOB))"
    rows = total = 0
    for table, columns in _TEXT.items():
        held = " OR ".join(f"({c} IS NOT NULL AND {c} != ?)" for c in columns)
        sums = ", ".join(f"COALESCE(SUM({size.format(c)}), 0)" for c in columns)
        if table == "items":  # a purged item's JSON is not text any more; count only those not yet purged
            held = "item_json NOT LIKE ?"
        args = ("%" + PURGED_HASH + "%",) if table == "items" else (PURGED,) * len(columns)
        row = store._execute(
            f"SELECT count(*), {sums} FROM {table} WHERE run_id = ? AND ({held})", (run_id, *args)
        ).fetchone()
        rows += int(row[0])
        total += sum(int(v) for v in row[1:])
    return TextHeld(rows, total)


def _purged_item(item: Item, stored_hash: str) -> Item:
    """What is left of an item: id, area, rubric, tags, sensitivity, and the hash of what it asked."""
    return Item(
        id=item.id, area=item.area, question=PURGED, rubric=item.rubric, tags=item.tags,
        sensitivity=item.sensitivity, metadata={PURGED_HASH: stored_hash},
    )  # fmt: skip


def purge_text(store: Store, run_id: str, when: str) -> None:
    """Replace the run's text by ``(purged)`` and mark it purged at ``when``, all in one transaction.

    Works without ``EVALS_STORE_KEY`` on an encrypted store: nothing is decrypted, only overwritten.
    """
    # Only the fields that are never sealed (id, area, rubric, tags) are read; the key is not needed.
    items = store._execute(
        "SELECT item_id, content_hash, item_json FROM items WHERE run_id = ?", (run_id,)
    ).fetchall()
    blank = TextCodec(None)  # reads sealed text as "(encrypted)" whatever the key: never decrypts
    rewritten = []
    for item_id, stored_hash, item_json in items:
        item = Item.model_validate(blank.open_item(json.loads(item_json)))
        rewritten.append((_purged_item(item, stored_hash).model_dump_json(), run_id, item_id))
    with store.backend.transaction():
        for table, columns in _TEXT.items():
            if table == "items":
                continue
            sets = ", ".join(f"{c} = CASE WHEN {c} IS NULL THEN NULL ELSE ? END" for c in columns)
            store._execute(f"UPDATE {table} SET {sets} WHERE run_id = ?", (*(PURGED,) * len(columns), run_id))
        store.backend.executemany(
            "UPDATE items SET item_json = ? WHERE run_id = ? AND item_id = ?", rewritten
        )
        store._execute("UPDATE runs SET purged_at = ? WHERE run_id = ?", (when, run_id))


def has_sealed_text(store: Store, run_id: str) -> bool:
    """Whether any of the run's items or answers was stored encrypted (``EVALS_STORE_KEY``)."""
    row = store._execute(
        "SELECT 1 FROM items WHERE run_id = ? AND item_json LIKE ? LIMIT 1", (run_id, f'%"{PREFIX}%')
    ).fetchone()
    if row is None:  # items planned without the key, answered with it
        row = store._execute(
            "SELECT 1 FROM answers WHERE run_id = ? AND text LIKE ? LIMIT 1", (run_id, PREFIX + "%")
        ).fetchone()
    return row is not None


def check_text(store: Store, run_id: str, doing: str, purged: str) -> None:
    """Refuse to hand a run's stored text on (to a model, a judge, people, a training file, a canary's
    anchors) when it is not there to hand: ``StoreError`` for a purged run (``purged``: what it cannot be),
    or for an encrypted one read without ``EVALS_STORE_KEY`` (``doing``: what the key is needed for), where
    the text reads ``(purged)`` or ``(encrypted)`` and would be sent or written as if it were the text.
    """
    if is_purged(store, run_id):
        raise StoreError(
            f"run {run_id} was purged (its questions and answers were removed by evals purge): it can be "
            f"reported and gated on its stored scores, but not {purged}"
        )
    if codec().fernet is None and has_sealed_text(store, run_id):
        raise StoreError(
            f"run {run_id} is stored encrypted and {KEY_ENV} is not set: set the store's key to {doing}"
        )


def check_workable(store: Store, run_id: str) -> None:
    """Refuse to resume a run whose text is gone: purged, or encrypted and no key given (``check_text``)."""
    check_text(store, run_id, "resume it", "resumed or judged again; start a new run")


def warn_if_written_in_clear(store: Store, what: str = "this run's text") -> None:
    """Warn when a new run's text (``what``: imported or copied runs' too) is about to be stored in clear in
    a store that encrypts its text (it has a key check, ``evals.store.keycheck``, or its latest run was
    sealed) and ``EVALS_STORE_KEY`` is not set here: one process without the key would leave readable text
    among the encrypted."""
    if codec().fernet is not None:
        return
    latest = store._execute(
        "SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1"
    ).fetchone()
    encrypts = stored_token(store.backend) is not None
    if encrypts or (latest is not None and has_sealed_text(store, latest[0])):
        log.warning(
            "this store encrypts its text but %s is not set here: %s is stored in clear "
            "(set the key, or encrypt it afterwards with evals store rekey)",
            KEY_ENV,
            what,
        )
