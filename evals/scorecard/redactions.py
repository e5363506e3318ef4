"""The scorecard's redaction section: the run's redaction snapshot and the per-area counts the store kept."""

from __future__ import annotations

from collections import Counter

from evals.records import RunManifest
from evals.scorecard.sections import AreaRedactions, RedactionInfo
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
