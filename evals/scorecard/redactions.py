"""The scorecard's perimeter sections: the run's redaction snapshot and the per-area counts the store kept,
and the restricted items an in-house judge graded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from evals.records import RunManifest
from evals.results import ResultRow
from evals.scorecard.sections import AreaRedactions, InHouse, RedactionInfo
from evals.store import Store
from evals.store.redactions import redaction_counts


def redaction_info(store: Store, run: RunManifest) -> RedactionInfo | None:
    """How the run's external calls were redacted, per area and kind; None for runs from before."""
    snapshot = run.config.redaction
    if snapshot is None:
        return None
    outside = {"model": snapshot.model_external, "judge": snapshot.judge_external}
    counts = redaction_counts(store, run.run_id)
    total: Counter[str] = Counter()
    for by_kind in counts.values():
        total.update(by_kind)
    return RedactionInfo(
        status=snapshot.status,
        external=[role for role, out in outside.items() if out],
        version=snapshot.version,
        note=snapshot.note,
        areas=[AreaRedactions(area=a, counts=c, total=sum(c.values())) for a, c in counts.items()],
        total=dict(sorted(total.items())),
    )


def inhouse_info(run: RunManifest, rows: Sequence[ResultRow]) -> InHouse | None:
    """Which items the run's in-house judge graded (its restricted ones); None when it has none."""
    name = run.config.judge.restricted_judge
    if name is None:
        return None
    graded = [r for r in rows if r.judge is not None and r.judge.partition(" (")[0] == name]
    areas: dict[str, int] = {}
    for row in graded:
        areas[row.area] = areas.get(row.area, 0) + 1
    return InHouse(judge=name, areas=areas, items=list(dict.fromkeys(r.id for r in graded)))
