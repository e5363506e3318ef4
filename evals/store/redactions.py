"""The store's record of redaction: how many identifiers of each kind were replaced in what each call of a
run sent to an external endpoint (table ``redactions``: one row per item, sample and role, the counts by
kind as JSON). One statement per write: the runner saves from worker threads sharing the connection."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from evals.store.core import Store
from evals.store.rows import upsert_sql

_COLS = ("run_id", "item_id", "sample", "role", "counts_json")
_KEY = ("run_id", "item_id", "sample", "role")


def save_redactions(
    store: Store, run_id: str, item_id: str, sample: int, role: str, counts: dict[str, int]
) -> None:
    """Record the counts of one item's sample in ``role`` (``model``, ``judge``), replacing earlier ones."""
    values = (run_id, item_id, sample, role, json.dumps(dict(sorted(counts.items()))))
    store._execute(upsert_sql("redactions", _COLS, _KEY), values)


def redaction_counts(store: Store, run_id: str) -> dict[str, dict[str, int]]:
    """Identifiers replaced in a run, by area and kind (model and judge calls together), areas sorted."""
    rows = store._execute(
        "SELECT i.area, r.counts_json FROM redactions r JOIN items i "
        "ON i.run_id = r.run_id AND i.item_id = r.item_id WHERE r.run_id = ?",
        (run_id,),
    ).fetchall()
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for area, counts in rows:
        out[area].update(json.loads(counts))
    return {area: dict(sorted(out[area].items())) for area in sorted(out)}


def redacted_items(store: Store, run_id: str, role: str) -> dict[str, int]:
    """Items of a run whose ``role`` calls had identifiers replaced, with how many (all samples)."""
    rows = store._execute(
        "SELECT item_id, counts_json FROM redactions WHERE run_id = ? AND role = ?", (run_id, role)
    ).fetchall()
    out: Counter[str] = Counter()
    for item_id, counts in rows:
        out[item_id] += sum(json.loads(counts).values())
    return {item_id: n for item_id, n in sorted(out.items()) if n}
