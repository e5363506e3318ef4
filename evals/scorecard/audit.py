"""The audit head a scorecard carries: the run's audit chain's last hash and record count."""

from __future__ import annotations

from evals.outbound.audit import head
from evals.scorecard.sections import AuditHead
from evals.store import Store


def audit_head(store: Store, run_id: str) -> AuditHead | None:
    """The run's audit head now, or None when no outbound call of it was recorded."""
    found = head(store, run_id)
    return None if found is None else AuditHead(hash=found[0], records=found[1])
