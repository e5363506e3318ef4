"""What goes where, and why: each area routed to the local model or kept on the frontier, from four
answers asked separately and weighed together (``evals.routing.weigh``).

- **Quality**: the local run and the frontier run are paired item by item (same item content, same judge,
  same rubric, or no table at all) and each area gets a one-sided non-inferiority test at margin δ on
  Δ = local − frontier: good enough when the one-sided 95 % lower bound of Δ is above −δ, not good enough
  when the one-sided 95 % upper bound is below −δ (worse by at least the margin, significantly), undecided
  otherwise, with the number of items that would tell at the observed variance.
- **Sensitivity**: an area holding ``restricted`` items is never answered by an external model, so there
  is nothing to pair: its local model must clear an absolute floor (default 4.0, one-sided lower bound).
- **Economics** (``evals.routing.economics``): the monthly cost each way at the area's volume, and the
  crossover.
- **Latency**: each side's p99 answer latency in the area, measured by its run, against the area's
  ``latency_slo_ms``.

The records every view reads live in ``evals.routing.records``; this module computes them, once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from evals import stats
from evals.config import Config
from evals.errors import EvalsError
from evals.records import RunManifest, Sensitivity
from evals.results import ResultRow, scores_by_item
from evals.routing.economics import AreaCost, Measured, api_price, area_cost, measure, monthly_requests
from evals.routing.records import (
    AreaRoute,
    Latency,
    Overall,
    Previous,
    Recommendation,
    RoutingTable,
    RunRef,
)
from evals.routing.weigh import Quality, overall, weigh
from evals.store import Store
from evals.store.redactions import redacted_items
from evals.store.routes import Decision, previous_decisions, save_decisions

DEFAULT_MARGIN = 0.3
"""δ: how much worse than the frontier (in points of the 1-5 scale) the local model may be."""
DEFAULT_FLOOR = 4.0
"""The absolute mean a restricted area's local model must clear (one-sided 95 % lower bound)."""
_LEVELS: tuple[Sensitivity, ...] = ("public", "internal", "restricted")
__all__ = [
    "AreaRoute", "Latency", "Overall", "Previous", "Recommendation", "RouteError", "RoutingTable", "RunRef",
    "check_comparable", "model_input", "route", "save_table", "with_changes",
]  # fmt: skip


class RouteError(EvalsError):
    """The two runs cannot be compared (judged differently, nothing in common, different redaction)."""


def _ref(m: RunManifest) -> RunRef:
    return RunRef(
        run_id=m.run_id, model_name=m.model_name, model=m.model, model_id=m.model_id, suite=m.suite_name,
        started_at=m.started_at,
    )  # fmt: skip


def model_input(m: RunManifest) -> str | None:
    """How the text a run's model saw was changed before it was sent: the redaction's version when the model
    was external and redacted (``redaction`` in the run's config, ``evals.outbound.gateway``), None when it went as
    written. Two runs are paired only when their models saw the same text."""
    redaction = m.config.redaction
    if redaction is not None and redaction.model_external and redaction.status == "redacted":
        return redaction.version or "redacted"
    return None


def check_comparable(store: Store, local: RunManifest, frontier: RunManifest) -> None:
    """Refuse two runs whose numbers cannot be set side by side: another suite, judge or rubric, or other text."""
    if local.run_id == frontier.run_id:
        raise RouteError("--local and --frontier are the same run; give the frontier model's run")
    if local.suite_name != frontier.suite_name:  # a suite is known by its name, as gate and baselines know it
        raise RouteError(
            f"runs {local.run_id} and {frontier.run_id} are of different suites ({local.suite_name!r} and "
            f"{frontier.suite_name!r}): a route compares two models on one suite; give a frontier run of "
            f"suite {local.suite_name!r} (evals run --suite ... --model <frontier>)"
        )
    a, b = store.judging_provenance(local.run_id), store.judging_provenance(frontier.run_id)
    if not a.fingerprints or not b.fingerprints:
        raise RouteError("one of the runs has no scored verdict; nothing to compare")
    if a.fingerprints != b.fingerprints or a.rubric_hashes != b.rubric_hashes:
        raise RouteError(
            f"runs {local.run_id} and {frontier.run_id} were judged differently (another judge or rubric): "
            f"their scores are not comparable. Judge one again with the other's judge: "
            f"evals judge rerun {local.run_id} --judge {frontier.judge_name}"
        )
    if model_input(local) != model_input(frontier):
        changed = {run.run_id: redacted_items(store, run.run_id, "model") for run in (local, frontier)}
        if any(changed.values()):  # redaction replaced something: the two models did not read the same text
            run_id, items = next((r, i) for r, i in changed.items() if i)
            raise RouteError(
                f"redaction changed what the model of run {run_id} read ({sum(items.values())} identifier(s) "
                f"in {len(items)} item(s), e.g. {next(iter(items))}) and the other run read the text as "
                "written: their scores on those items are not comparable. Pair runs whose models read the same "
                "text (mark identifiers out of the suite, or leave those items out with --area/--item-tag)"
            )


def _sensitivity(store: Store, run_id: str) -> dict[str, Sensitivity]:
    levels: dict[str, Sensitivity] = {}
    for item in store.items(run_id):
        level = item.sensitivity or "internal"
        if _LEVELS.index(level) >= _LEVELS.index(levels.get(item.area, "public")):
            levels[item.area] = level
    return levels


def _by_area(rows: Sequence[ResultRow]) -> dict[str, list[ResultRow]]:
    out: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        out[row.area].append(row)
    return out


Scores = dict[str, list[float]]
"""The scores of each item id (several with samples)."""


def _paired(local: list[ResultRow], frontier: list[ResultRow]) -> tuple[Scores, Scores]:
    """Scores of the items present, with the same content, in both runs."""
    hashes = {r.id: r.item_hash for r in frontier}
    same = [r for r in local if hashes.get(r.id) == r.item_hash]
    ids = {r.id for r in same}
    return scores_by_item(same), scores_by_item(r for r in frontier if r.id in ids)


def _changed_items(local: list[ResultRow], frontier: list[ResultRow]) -> list[str]:
    """Ids of the items in both runs whose content differs (the suite was edited between them)."""
    hashes = {r.id: r.item_hash for r in frontier}
    return sorted({r.id for r in local if r.id in hashes and hashes[r.id] != r.item_hash})


def _quality(d: stats.PairedDelta, margin: float) -> Quality:
    """The non-inferiority verdict of one area's paired scores, with its figures."""
    if d.n_pairs < 2 or d.delta is None or d.ci_low is None or d.ci_high is None:
        few = f"too few items scored in both runs ({d.n_pairs}) to test"
        return Quality("undecided", few, short=few)
    figures = f"Δ {d.delta:+.2f}, bound {d.ci_low:+.2f}"
    if d.ci_low > -margin:
        return Quality("good", f"non-inferior ({figures} > {-margin:+.2f})")
    if d.ci_high < -margin:
        worse = f"Δ {d.delta:+.2f}, upper bound {d.ci_high:+.2f} < {-margin:+.2f}"
        return Quality("worse", f"worse by more than the margin ({worse})")
    needed = stats.items_needed(d.sd, d.delta + margin)
    more = f"about {needed} items would tell" if needed else "no number of items can tell at Δ on the margin"
    text = f"undecided ({figures} ≤ {-margin:+.2f} with {d.n_pairs} items; {more})"
    return Quality("undecided", text, short=more, items_needed=needed)


def _route_pair(
    area: str, level: Sensitivity, local: Scores, frontier: Scores, margin: float, cost: AreaCost | None,
    latency: Latency,
) -> AreaRoute:  # fmt: skip
    d = stats.one_sided_delta(frontier, local)
    q = _quality(d, margin)
    w = weigh(q, restricted=False, cost=cost, latency=latency)
    return AreaRoute(
        area=area, sensitivity=level, n_pairs=d.n_pairs, local_mean=stats.mean_of_items(local),
        frontier_mean=stats.mean_of_items(frontier), delta=d.delta, bound_low=d.ci_low, bound_high=d.ci_high,
        items_needed=q.items_needed, recommendation=w.recommendation, because=w.because, reason=w.reason,
        cost=cost, latency=latency,
    )  # fmt: skip


def _floor_quality(local: Scores, floor: float) -> tuple[Quality, stats.MeanCI]:
    ci = stats.mean_ci(local, confidence=0.90)  # its lower end: the one-sided 95 % bound
    if ci.mean is None or ci.ci_low is None:
        text = f"restricted: never sent out, and too few local scores ({ci.n_items}) to clear the floor"
        return Quality("undecided", text, short="too few local scores"), ci
    figures = f"local mean {ci.mean:.2f}, bound {ci.ci_low:.2f}"
    if ci.ci_low >= floor:
        text = f"restricted: stays in the perimeter, and the local model clears the floor ({figures} ≥ {floor:.2f})"
        return Quality("good", text), ci
    needed = stats.items_needed(stats.item_mean_sums(local).sd, ci.mean - floor) if ci.mean > floor else None
    more = f"; about {needed} items would tell" if needed else "; the mean itself is below it"
    text = (
        f"restricted: never sent out, and the local model does not clear the floor yet "
        f"({figures} < {floor:.2f}{more})"
    )
    return Quality("undecided", text, short=more.lstrip("; "), items_needed=needed), ci


def _route_restricted(
    area: str, local: Scores, floor: float, cost: AreaCost | None, latency: Latency
) -> AreaRoute:
    q, ci = _floor_quality(local, floor)
    w = weigh(q, restricted=True, cost=cost, latency=latency)
    return AreaRoute(
        area=area, sensitivity="restricted", n_pairs=0, local_mean=ci.mean, frontier_mean=None, delta=None,
        bound_low=ci.ci_low, bound_high=None, items_needed=q.items_needed, recommendation=w.recommendation,
        because=w.because, reason=w.reason, cost=cost, latency=latency,
    )  # fmt: skip


def p99_latency(rows: Sequence[ResultRow]) -> dict[str, float]:
    """Per area, the p99 of the answers' latencies in milliseconds (every sample answered and timed)."""
    by_area: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.answer is not None and row.answer_error is None and row.answer_latency_ms is not None:
            by_area[row.area].append(row.answer_latency_ms)
    out = {}
    for area, values in by_area.items():
        p99 = stats.percentiles(values, (99,))[99]
        if p99 is not None:
            out[area] = p99
    return out


def latency_target(config: Config, area: str) -> float | None:
    """The p99 latency ``area`` needs: its ``latency_slo_ms`` under ``usage.areas``, else ``usage.latency_slo_ms``."""
    own = config.usage.areas.get(area)
    if own is not None and own.latency_slo_ms is not None:
        return own.latency_slo_ms
    return config.usage.latency_slo_ms


def route(
    store: Store,
    local_id: str,
    frontier_id: str,
    config: Config,
    margin: float = DEFAULT_MARGIN,
    floor: float = DEFAULT_FLOOR,
    decided_at: str = "",
) -> RoutingTable:
    """The routing table of a local run against a frontier run of the same suite (``evals route``)."""
    local, frontier = store.run(local_id), store.run(frontier_id)
    check_comparable(store, local, frontier)
    local_rows, frontier_rows = list(store.results(local_id)), list(store.results(frontier_id))
    levels = _sensitivity(store, local_id)
    local_by, frontier_by = _by_area(local_rows), _by_area(frontier_rows)
    measured_local, measured_frontier = measure(local_rows), measure(frontier_rows)
    p99_local, p99_frontier = p99_latency(local_rows), p99_latency(frontier_rows)
    volume = monthly_requests(config)
    prices = api_price(frontier.config)
    notes = []
    if prices is None:
        notes.append(
            f"the frontier model {frontier.model_name!r} has no prices in evals.yaml: API cost unknown"
        )
    if config.hosting is None:
        notes.append("no hosting: section in evals.yaml: self-hosted cost unknown")
    if not volume:
        notes.append("no usage: volumes in evals.yaml: monthly costs unknown")

    def cost_of(area: str) -> AreaCost | None:
        if area not in volume:
            return None
        frontier_side: Measured | None = measured_frontier.get(area)
        if frontier_side is None and area in measured_local:
            frontier_side = measured_local[
                area
            ]  # a restricted area: its tokens as the local model counts them
        return area_cost(volume[area], measured_local.get(area), frontier_side, prices, config.hosting)

    def latency_of(area: str, restricted: bool) -> Latency:
        return Latency(
            slo_ms=latency_target(config, area), local_p99_ms=p99_local.get(area),
            frontier_p99_ms=None if restricted else p99_frontier.get(area),
        )  # fmt: skip

    rows = []
    for area in sorted(set(local_by) | set(frontier_by)):
        level = levels.get(area, "internal")
        if level == "restricted":
            scores = scores_by_item(local_by.get(area, []))
            rows.append(_route_restricted(area, scores, floor, cost_of(area), latency_of(area, True)))
            continue
        if area not in local_by:
            continue  # asked of the frontier only: nothing to route
        paired = _paired(local_by[area], frontier_by.get(area, []))
        rows.append(
            _route_pair(area, level, paired[0], paired[1], margin, cost_of(area), latency_of(area, False))
        )
    changed = _changed_items(local_rows, frontier_rows)
    if not any(r.n_pairs for r in rows) and not any(r.sensitivity == "restricted" for r in rows):
        why = (
            f"{len(changed)} item(s) share an id but not their content (the suite changed between the runs)"
            if changed
            else "no item id is in both"
        )
        raise RouteError(
            f"runs {local_id} and {frontier_id} have no item in common (same id and content): {why}; give "
            f"runs of one version of suite {local.suite_name!r} (evals run --suite ... with both models)"
        )
    if changed:
        notes.append(
            f"{len(changed)} item(s) changed between the runs (same id, other content) and are not paired: "
            f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}; run both models on one version of "
            f"suite {local.suite_name!r} to pair them"
        )
    total = _total(rows)
    return RoutingTable(
        local=_ref(local), frontier=_ref(frontier), judge=local.judge_model, margin=margin, floor=floor,
        decided_at=decided_at, overall=overall(rows, total), areas=rows, total=total, notes=notes,
    )  # fmt: skip


def with_changes(store: Store, table: RoutingTable) -> RoutingTable:
    """``table`` with each area whose recommendation changed since the latest table of the same suite and
    models decided before it carrying the old one."""
    local, frontier = table.local, table.frontier
    before = previous_decisions(store, local.suite, local.model_name, frontier.model_name, table.decided_at)
    rows = []
    for row in table.areas:
        old = before.get(row.area)
        if old is not None and old.recommendation != row.recommendation:
            was = Previous.model_validate(
                {"recommendation": old.recommendation, "at": old.decided_at, "local_run": old.local_run,
                 "reason": old.reason}
            )  # fmt: skip
            row = row.model_copy(update={"previous": was})
        rows.append(row)
    return table.model_copy(update={"areas": rows})


def save_table(store: Store, table: RoutingTable) -> None:
    """Keep each area's recommendation of ``table`` (``route_decisions``), for the next table to compare."""
    local, frontier = table.local, table.frontier
    ours = {"decided_at": table.decided_at, "suite": local.suite, "local_model": local.model_name,
            "frontier_model": frontier.model_name, "local_run": local.run_id, "frontier_run": frontier.run_id}  # fmt: skip
    save_decisions(
        store,
        [
            Decision(area=r.area, recommendation=r.recommendation, reason=f"{r.because}: {r.reason}", **ours)
            for r in table.areas
        ],
    )


def _total(rows: Sequence[AreaRoute]) -> AreaCost | None:
    """The areas routed ``local`` moved together: their volumes and variable costs add, fixed costs once."""
    moved = [r.cost for r in rows if r.recommendation == "local" and r.cost is not None]
    if not moved:
        return None

    def total(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    fixed = moved[0].fixed_monthly
    requests = sum(c.requests_per_month for c in moved)
    api = total([c.api_monthly for c in moved])
    variable = total([None if c.self_monthly is None else c.self_monthly - c.fixed_monthly for c in moved])
    self_monthly = None if variable is None else fixed + variable
    api_per = None if api is None or requests == 0 else api / requests
    self_per = None if variable is None or requests == 0 else variable / requests
    crossover = None
    if api_per is not None and self_per is not None and api_per > self_per:
        crossover = fixed / (api_per - self_per)
    return AreaCost(
        requests_per_month=requests, tokens_per_month=total([c.tokens_per_month for c in moved]),
        api_per_request=api_per, self_per_request=self_per, fixed_monthly=fixed, api_monthly=api,
        self_monthly=self_monthly, crossover_requests=crossover,
    )  # fmt: skip
