"""The routing tables' history: each area's recommendation as decided, so a nightly table can say when it
changed and why (``route_decisions``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evals.routing.route import Previous, RoutingTable
from evals.scorecard.sections import RouteDecision

if TYPE_CHECKING:
    from evals.store import Store

_COLS = (
    "decided_at", "suite", "local_model", "frontier_model", "area", "local_run", "frontier_run",
    "recommendation", "reason",
)  # fmt: skip


def save_decisions(store: Store, table: RoutingTable) -> None:
    """Keep each area's recommendation of ``table``."""
    marks = ",".join("?" for _ in _COLS)
    for row in table.areas:
        store._execute(
            f"INSERT INTO route_decisions ({','.join(_COLS)}) VALUES ({marks})",
            (
                table.decided_at, table.local.suite, table.local.model_name, table.frontier.model_name,
                row.area, table.local.run_id, table.frontier.run_id, row.recommendation, row.reason,
            ),
        )  # fmt: skip


def previous_decisions(store: Store, table: RoutingTable) -> dict[str, Previous]:
    """Per area, the latest recommendation decided before ``table`` for the same suite and models."""
    rows = store._execute(
        "SELECT area, recommendation, decided_at, local_run, reason FROM route_decisions "
        "WHERE suite = ? AND local_model = ? AND frontier_model = ? AND decided_at < ? "
        "ORDER BY decided_at",
        (table.local.suite, table.local.model_name, table.frontier.model_name, table.decided_at),
    ).fetchall()
    return {r[0]: Previous(recommendation=r[1], at=r[2], local_run=r[3], reason=r[4]) for r in rows}


def latest_for_local(store: Store, local_run: str) -> list[RouteDecision]:
    """The areas of the latest routing table whose local side was ``local_run`` (empty when none was made)."""
    rows = store._execute(
        "SELECT area, recommendation, reason, frontier_run, decided_at FROM route_decisions "
        "WHERE local_run = ? AND decided_at = (SELECT max(decided_at) FROM route_decisions WHERE local_run = ?) "
        "ORDER BY area",
        (local_run, local_run),
    ).fetchall()
    return [
        RouteDecision(area=r[0], recommendation=r[1], reason=r[2], frontier_run=r[3], decided_at=r[4])
        for r in rows
    ]


def with_changes(table: RoutingTable, previous: dict[str, Previous]) -> RoutingTable:
    """``table`` with each area whose recommendation changed since ``previous`` carrying the old one."""
    rows = [
        r.model_copy(update={"previous": previous[r.area]})
        if r.area in previous and previous[r.area].recommendation != r.recommendation
        else r
        for r in table.areas
    ]
    return table.model_copy(update={"areas": rows})
