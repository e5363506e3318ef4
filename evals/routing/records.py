"""The routing table as typed records: what ``evals route`` computes once and every view (terminal,
Markdown, HTML, JSON, the stored history) reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from evals.records import Sensitivity
from evals.routing.economics import AreaCost

Recommendation = Literal["local", "frontier", "not yet"]
"""Where an area's traffic should go at the stated volume: the local model, the frontier API, or no side
yet (quality unsettled, or no side both good enough and fast enough)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRef(_Record):
    """One of the two runs a routing table compares."""

    run_id: str
    model_name: str
    model: str | None
    model_id: str | None
    suite: str
    started_at: str


class Previous(_Record):
    """The recommendation the last routing table of the same suite and models gave an area."""

    recommendation: Recommendation
    at: str
    local_run: str
    reason: str


class Latency(_Record):
    """An area's latency target and each side's measured p99 answer latency."""

    slo_ms: float | None
    """``latency_slo_ms`` of the area in evals.yaml (else ``usage.latency_slo_ms``); None: no target."""
    local_p99_ms: float | None
    """p99 of the local run's answer latencies in the area (all samples); None when none was timed."""
    frontier_p99_ms: float | None
    """The same of the frontier run; None for a restricted area (it has no frontier run)."""

    @property
    def local_misses(self) -> bool:
        """The local side was measured above the target."""
        return self.slo_ms is not None and self.local_p99_ms is not None and self.local_p99_ms > self.slo_ms

    @property
    def frontier_misses(self) -> bool:
        """The frontier side was measured above the target."""
        return (
            self.slo_ms is not None
            and self.frontier_p99_ms is not None
            and self.frontier_p99_ms > self.slo_ms
        )


class AreaRoute(_Record):
    """One row of the routing table."""

    area: str
    sensitivity: Sensitivity
    """The most restrictive level among the area's items."""
    n_pairs: int
    """Items scored in both runs (0 for a restricted area: it has no frontier run)."""
    local_mean: float | None
    frontier_mean: float | None
    delta: float | None
    """Mean over paired items of (local − frontier)."""
    bound_low: float | None
    """One-sided 95 % lower bound of Δ (for a restricted area: of the local mean)."""
    bound_high: float | None
    """One-sided 95 % upper bound of Δ."""
    items_needed: int | None
    """For ``not yet``: items that would tell at the observed variance (80 % power); None when none can."""
    recommendation: Recommendation
    because: str
    """Why, in a few words: "good enough and cheaper", "local not good enough", "restricted"..."""
    reason: str
    """The recommendation in one sentence with its figures: quality, then cost, then latency."""
    cost: AreaCost | None
    """None without a volume for the area."""
    latency: Latency
    previous: Previous | None = None
    """The last table's recommendation, when it differs from this one."""


class Overall(_Record):
    """The table's answer in one line, shown above it: what moves, what stays, what it saves."""

    local: list[str]
    """Areas routed to the local model."""
    frontier: list[str]
    """Areas kept on the frontier."""
    not_yet: list[str]
    """Areas no side can be recommended for yet."""
    local_traffic: float | None
    """Share of the stated monthly requests that the ``local`` areas carry; None without volumes."""
    monthly_saving: float | None
    """API cost minus self-hosted cost a month of the ``local`` areas moved together (negative: moving them
    costs more); None when unknown."""
    text: str
    """``route 3 of 5 areas to local (62 % of traffic), keep 2 on frontier: ...; saves $X a month``."""


class RoutingTable(_Record):
    """``evals route``: one row per area, the settings it was decided with, and the two runs."""

    local: RunRef
    frontier: RunRef
    judge: str
    margin: float
    floor: float
    decided_at: str
    overall: Overall
    areas: list[AreaRoute]
    total: AreaCost | None
    """Every area routed ``local`` moved together (fixed costs paid once); None without volumes."""
    notes: list[str] = []
