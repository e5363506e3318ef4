"""Weighing an area's four answers into one recommendation, and the table's answer in one line.

The answers and the order they are weighed in:

1. **Sensitivity.** A ``restricted`` area may not leave the perimeter: ``local`` when the local model clears
   the floor and meets the latency target, else ``not yet``; never ``frontier``, whatever it costs (the
   reason says when self-hosting it is dearer).
2. **Latency.** A side whose measured p99 is above the area's ``latency_slo_ms`` is not recommended: the
   local model missing it leaves ``frontier`` ("only it meets the latency target"), both missing it leaves
   ``not yet``. The frontier missing it makes ``local`` the answer only when the local model is good enough.
3. **Quality.** Worse than the frontier by more than the margin: ``frontier`` ("local not good enough");
   unsettled: ``not yet``, with the items that would tell.
4. **Cost at the stated volume.** Good enough and cheaper self-hosted: ``local``. Good enough but dearer:
   ``frontier``, and the reason says by how much and above which volume self-hosting pays, so that no
   ``local`` ever stands beside a cost column saying local is dearer without the reason saying it. Without a
   volume, prices or ``hosting:``, the cost is not weighed and the reason says so: ``local`` on quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from evals.routing.economics import AreaCost, money_text, volume_text
from evals.routing.records import AreaRoute, Latency, Overall, Recommendation

Verdict = Literal["good", "worse", "undecided"]


@dataclass(frozen=True)
class Quality:
    """The quality answer of one area: the test's verdict, with its figures."""

    verdict: Verdict
    """``good``: non-inferior (restricted: clears the floor); ``worse``: worse by more than the margin;
    ``undecided``: neither yet, or too few items."""
    text: str
    """The verdict with its figures: ``non-inferior (Δ +0.02, bound -0.21 > -0.30)``."""
    short: str = ""
    """For ``undecided``: what it lacks, in a few words (``about 80 items would tell``)."""
    items_needed: int | None = None


@dataclass(frozen=True)
class Weighed:
    """One area's recommendation and why, in a few words and in one sentence with the figures."""

    recommendation: Recommendation
    because: str
    reason: str


def _pct(saving: float) -> str:
    return f"{abs(saving) * 100:.0f} %"


def _crossover(cost: AreaCost) -> str:
    if cost.crossover_requests is None:
        return "never cheaper at these prices"
    return f"cheaper above {volume_text(cost.crossover_requests)} requests a month"


def cost_clause(cost: AreaCost | None) -> str:
    """The cost answer as a clause of the reason, with its figures, or why there is none."""
    if cost is None:
        return "cost not weighed: no volume configured for it (usage: in evals.yaml)"
    missing = []
    if cost.api_monthly is None:
        missing.append("the frontier model's prices (price_in_per_mtok, price_out_per_mtok)")
    if cost.self_monthly is None:
        missing.append("hosting: in evals.yaml and a local run that kept its call times")
    if missing:
        return f"cost not weighed: it needs {' and '.join(missing)}"
    saving = cost.saving
    figures = f"{money_text(cost.self_monthly)} against {money_text(cost.api_monthly)} on the API"
    volume = f"{volume_text(cost.requests_per_month)} requests a month"
    if saving is None:
        return f"cost not weighed: the API side costs nothing at these prices ({figures})"
    if saving >= 0:
        return f"self-hosting {_pct(saving)} cheaper at {volume} ({figures})"
    never = ": a request costs more self-hosted than on the API" if cost.crossover_requests is None else ""
    return f"self-hosting {_pct(saving)} dearer at {volume} ({figures}), {_crossover(cost)}{never}"


def _ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.0f} ms"


def latency_clause(latency: Latency, restricted: bool) -> str:
    """The latency answer as a clause of the reason; empty without a target."""
    if latency.slo_ms is None:
        return ""
    sides = f"p99 local {_ms(latency.local_p99_ms)}"
    if not restricted:
        sides += f", frontier {_ms(latency.frontier_p99_ms)}"
    return f"{sides} against a target of {latency.slo_ms:,.0f} ms"


def _dearer(cost: AreaCost | None) -> str | None:
    """``self-hosting costs N % more at your volume, cheaper above V requests a month`` when it does, else None."""
    saving = None if cost is None else cost.saving
    if cost is None or saving is None or saving >= 0:
        return None
    return f"self-hosting costs {_pct(saving)} more at your volume, {_crossover(cost)}"


def _decide(q: Quality, restricted: bool, cost: AreaCost | None, lat: Latency) -> tuple[Recommendation, str]:
    dearer = _dearer(cost)
    if restricted:
        if q.verdict != "good":
            return "not yet", "restricted, and the local model does not clear the floor yet"
        if lat.local_misses:
            return "not yet", "restricted, and the local model misses the latency target"
        return "local", "restricted: it may not leave" + (f", though {dearer}" if dearer else "")
    if lat.local_misses and lat.frontier_misses:
        return "not yet", "neither side meets the latency target"
    if lat.local_misses:
        worse = " (and local is not good enough)" if q.verdict == "worse" else ""
        return "frontier", f"only it meets the latency target{worse}"
    if q.verdict == "worse":
        if lat.frontier_misses:
            return "not yet", "local not good enough, and the frontier misses the latency target"
        return "frontier", "local not good enough"
    if q.verdict == "undecided":
        slow = "; the frontier misses the latency target" if lat.frontier_misses else ""
        return "not yet", f"quality not settled: {q.short}{slow}"
    if lat.frontier_misses:
        return "local", "only it meets the latency target" + (f", though {dearer}" if dearer else "")
    if cost is None or cost.saving is None:
        return "local", "good enough; cost not weighed (" + (
            "no volume" if cost is None else "cost unknown"
        ) + ")"
    if dearer:
        return "frontier", f"good enough, but {dearer}"
    return "local", f"good enough and {_pct(cost.saving)} cheaper"


def weigh(quality: Quality, restricted: bool, cost: AreaCost | None, latency: Latency) -> Weighed:
    """One area's recommendation from its quality answer, sensitivity, cost and latency (the module's order)."""
    recommendation, because = _decide(quality, restricted, cost, latency)
    clauses = (quality.text, cost_clause(cost), latency_clause(latency, restricted))
    return Weighed(recommendation, because, "; ".join(c for c in clauses if c))


def _areas(n: int) -> str:
    return f"{n} area" if n == 1 else f"{n} areas"


def _saving(rows: Sequence[AreaRoute], total: AreaCost | None) -> tuple[float | None, str]:
    """What moving the ``local`` areas together saves a month, and how to say it."""
    local = [r for r in rows if r.recommendation == "local"]
    if not local:
        return None, ""
    if total is None or total.api_monthly is None or total.self_monthly is None:
        return None, "saving not known (it needs usage: volumes, the frontier model's prices and hosting:)"
    saving = total.api_monthly - total.self_monthly
    said = (
        f"saves {money_text(saving)} a month" if saving >= 0 else f"costs {money_text(-saving)} more a month"
    )
    unknown = [r.area for r in local if r.cost is None or r.cost.saving is None]
    if unknown:
        said += f" (without {', '.join(unknown)}: no cost known)"
    return saving, said


def overall(rows: Sequence[AreaRoute], total: AreaCost | None) -> Overall:
    """The table's answer in one line: areas and traffic moved, areas kept and why, the monthly saving."""
    by: dict[Recommendation, list[AreaRoute]] = {"local": [], "frontier": [], "not yet": []}
    for row in rows:
        by[row.recommendation].append(row)
    volumes = {r.area: r.cost.requests_per_month for r in rows if r.cost is not None}
    stated = sum(volumes.values())
    share = None
    text = f"route {len(by['local'])} of {_areas(len(rows))} to local"
    if stated > 0:
        share = sum(volumes.get(r.area, 0.0) for r in by["local"]) / stated
        of = "traffic" if len(volumes) == len(rows) else "the stated traffic"
        text += f" ({share * 100:.0f} % of {of})"
    if by["frontier"]:
        kept = ", ".join(f"{r.area} ({r.because})" for r in by["frontier"])
        text += f", keep {len(by['frontier'])} on frontier: {kept}"
    parts = [text]
    if by["not yet"]:
        parts.append(
            f"not yet for {len(by['not yet'])}: "
            + ", ".join(f"{r.area} ({r.because})" for r in by["not yet"])
        )
    saving, said = _saving(rows, total)
    if said:
        parts.append(said)
    return Overall(
        local=[r.area for r in by["local"]], frontier=[r.area for r in by["frontier"]],
        not_yet=[r.area for r in by["not yet"]], local_traffic=share, monthly_saving=saving, text="; ".join(parts),
    )  # fmt: skip
