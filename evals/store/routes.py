"""The routing tables' history: each area's recommendation as decided, so a nightly table can say when it
changed and why (``route_decisions``). The tables themselves are ``evals.routing.route``'s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass

from evals.store.core import Store

_COLS = (
    "decided_at", "suite", "local_model", "frontier_model", "area", "local_run", "frontier_run",
    "recommendation", "reason",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decision:
    """One area's recommendation in a routing table, as ``route_decisions`` keeps it (fields in column order)."""

    decided_at: str
    suite: str
    local_model: str
    """The local run's model name in evals.yaml."""
    frontier_model: str
    area: str
    local_run: str
    frontier_run: str
    recommendation: str
    """``local``, ``frontier`` or ``not yet``."""
    reason: str
    """Why, in a few words, then the sentence with its figures: ``good enough and 38 % cheaper: non-inferior
    (Δ -0.10, bound -0.25 > -0.30); self-hosting 38 % cheaper at ...``."""


def save_decisions(store: Store, decisions: Iterable[Decision]) -> None:
    """Keep each decision."""
    marks = ",".join("?" for _ in _COLS)
    for decision in decisions:
        store._execute(f"INSERT INTO route_decisions ({','.join(_COLS)}) VALUES ({marks})", astuple(decision))


def previous_decisions(
    store: Store, suite: str, local_model: str, frontier_model: str, before: str
) -> dict[str, Decision]:
    """Per area, the latest decision made before ``before`` for the same suite and models."""
    rows = store._execute(
        f"SELECT {','.join(_COLS)} FROM route_decisions "
        "WHERE suite = ? AND local_model = ? AND frontier_model = ? AND decided_at < ? "
        "ORDER BY decided_at",
        (suite, local_model, frontier_model, before),
    ).fetchall()
    return {r[4]: Decision(*r) for r in rows}


def latest_for_local(store: Store, local_run: str) -> list[Decision]:
    """The areas of the latest routing table whose local side was ``local_run`` (empty when none was made)."""
    rows = store._execute(
        f"SELECT {','.join(_COLS)} FROM route_decisions "
        "WHERE local_run = ? AND decided_at = (SELECT max(decided_at) FROM route_decisions WHERE local_run = ?) "
        "ORDER BY area",
        (local_run, local_run),
    ).fetchall()
    return [Decision(*r) for r in rows]
