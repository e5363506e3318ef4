"""The store's record of redaction: how many identifiers of each kind were replaced in what each call of a
run sent to an external endpoint (table ``redactions``, one row per call's unit, role and kind)."""

from __future__ import annotations

from collections import defaultdict

from evals.store.core import Store


def save_redactions(
    store: Store, run_id: str, item_id: str, sample: int, role: str, counts: dict[str, int]
) -> None:
    """Record the counts of one item's sample in ``role`` (``model``, ``judge``), replacing earlier ones."""
    with store.backend.transaction():
        store._execute(
            "DELETE FROM redactions WHERE run_id = ? AND item_id = ? AND sample = ? AND role = ?",
            (run_id, item_id, sample, role),
        )
        for kind, n in sorted(counts.items()):
            store._execute(
                "INSERT INTO redactions (run_id, item_id, sample, role, kind, n) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, item_id, sample, role, kind, n),
            )


def redaction_counts(store: Store, run_id: str) -> dict[str, dict[str, int]]:
    """Identifiers replaced in a run, by area and kind (model and judge calls together)."""
    rows = store._execute(
        "SELECT i.area, r.kind, SUM(r.n) FROM redactions r JOIN items i "
        "ON i.run_id = r.run_id AND i.item_id = r.item_id WHERE r.run_id = ? GROUP BY i.area, r.kind "
        "ORDER BY i.area, r.kind",
        (run_id,),
    ).fetchall()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for area, kind, n in rows:
        out[area][kind] = int(n)
    return dict(out)
