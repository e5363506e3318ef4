"""The scorecard of a run: per-area scores with intervals, weak areas, drift against a baseline, history.

``build_scorecard`` returns one typed ``Scorecard`` (``scorecard.json``), from which the HTML, Markdown
and terminal renderings are all made. Answer and judge errors are counted, never averaged in as scores.
Drift pairs items by id over the items both runs share with the same content hash and both scored;
items added, removed or changed are listed, not compared. Each figure is computed once, in
``evals.scorecard.figures``; every status and the verdict in ``evals.scorecard.decision``; the baseline
is chosen, with its reasons, in ``evals.scorecard.baselines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from evals import stats
from evals.config import GateSettings, ScorecardSettings
from evals.errors import StoreError
from evals.judge.grader_attacks import kinds_of
from evals.judge.provenance import judged_differently
from evals.records import Judgment, RunManifest
from evals.results import ResultRow, by_area, scores_by_item
from evals.routing.economics import run_busy_seconds
from evals.scorecard.audit import audit_head
from evals.scorecard.baselines import choose_baseline, is_excluded, resolve_baseline, unlike
from evals.scorecard.bias import same_family
from evals.scorecard.calibration import calibration_note
from evals.scorecard.canary import canary_report
from evals.scorecard.corrected import corrected_areas
from evals.scorecard.decision import decide_rows, drift
from evals.scorecard.figures import area_stats, compare_items, health
from evals.scorecard.models import (
    OFFLINE_JUDGE_MODEL,
    AreaStats,
    Cost,
    HistoryPoint,
    ItemRow,
    ItemStatus,
    RegressedItem,
    RouteDecision,
    RunInfo,
    Scorecard,
    SelectionInfo,
    SideCost,
)
from evals.scorecard.panel import build_panel, members_cost, verdicts_cost
from evals.scorecard.redactions import inhouse_info, redaction_info
from evals.scorecard.signals import with_signals
from evals.store import Store
from evals.store.aggregates import OVERALL, AreaAggregate
from evals.store.routes import latest_for_local
from evals.store.rows import panel_aggregation
from evals.trust.noise import combined_se, run_noise

__all__ = [
    "OFFLINE_JUDGE_MODEL",
    "Scorecard",
    "build_scorecard",
    "choose_baseline",
    "compare_items",
    "drift",
    "history",
    "history_point",
    "latest_run",
    "resolve_baseline",
    "run_changes",
    "scores_by_item",
]


def latest_run(store: Store) -> RunManifest:
    """The most recently started finished run of the store (``evals report`` and ``evals gate`` default to
    it); the latest run of any status when none finished, so a first interrupted run still has a report."""
    runs = store.runs()
    if not runs:
        raise StoreError(f"no runs in {store.path}; run `evals run` first")
    finished = [m for m in runs if m.status == "finished"]
    return (finished or runs)[-1]


def _rank_areas(areas: list[AreaStats], settings: ScorecardSettings) -> tuple[list[str], list[str]]:
    def weak(a: AreaStats) -> bool:
        low_mean = a.mean is not None and a.mean < settings.weak_mean
        low_rate = a.pass_rate is not None and a.pass_rate < settings.weak_pass_rate
        return low_mean or low_rate

    def strong(a: AreaStats) -> bool:
        return (
            a.mean is not None
            and a.mean >= settings.strong_mean
            and (a.pass_rate or 0) >= settings.strong_pass_rate
        )

    by_mean = sorted((a for a in areas if a.mean is not None), key=lambda a: (a.mean, a.area))
    return [a.area for a in by_mean if weak(a)], [a.area for a in reversed(by_mean) if strong(a)]


def _item_rows(
    rows: Sequence[ResultRow],
    base_rows: Sequence[ResultRow],
    paired: frozenset[str],
    pass_score: int,
) -> list[ItemRow]:
    """Every answer of the run with its status against the baseline, for the filterable table."""
    base_means = {
        k: stats.mean_of_items({k: v})
        for k, v in scores_by_item(r for r in base_rows if r.id in paired).items()
    }
    out = []
    for r in rows:
        base = base_means.get(r.id)
        status: ItemStatus
        if r.score is None:
            status = "error"
        elif base is None:
            status = "new" if r.id not in paired else "unchanged"
        elif r.score - base <= -1:
            status = "regressed"
        elif r.score - base >= 1:
            status = "improved"
        else:
            status = "unchanged"
        out.append(
            ItemRow(
                id=r.id, sample=r.sample, area=r.area, question=r.question, reference=r.reference,
                answer=r.answer, score=r.score, rationale=r.rationale, error=r.error, truncated=r.truncated,
                reasoning=r.reasoning, baseline_score=base, status=status,
                passed=None if r.score is None else r.score >= pass_score, flags=kinds_of(r.flags),
            )
        )  # fmt: skip
    return out


def _regressed_items(
    rows: Sequence[ResultRow], base_rows: Sequence[ResultRow], paired: frozenset[str], limit: int = 20
) -> list[RegressedItem]:
    """The items that lost the most, baseline and new answer side by side (first sample of each)."""
    first = {r.id: r for r in rows if r.sample == 0}
    base_first = {r.id: r for r in base_rows if r.sample == 0}
    worst = []
    for item_id in paired:
        new, old = first.get(item_id), base_first.get(item_id)
        if new and old and new.score is not None and old.score is not None and new.score < old.score:
            worst.append(
                RegressedItem(
                    id=item_id, area=new.area, question=new.question, reference=new.reference,
                    baseline_answer=old.answer, answer=new.answer, baseline_score=old.score, score=new.score,
                    baseline_rationale=old.rationale, rationale=new.rationale, delta=new.score - old.score,
                )
            )  # fmt: skip
    worst.sort(key=lambda w: (w.delta, w.area, w.id))
    return worst[:limit]


def _cost(run: RunManifest, rows: Sequence[ResultRow], verdicts: Sequence[Judgment]) -> Cost:
    """Tokens, latency percentiles, throughput and (when priced) money, for the model and the judge (every
    verdict asked: each member of a panel, each repeat; those reused from the cache cost nothing)."""
    sides = {}
    for side in ("model", "judge"):
        if side == "model":
            fresh = list(rows)
            tin = sum(r.answer_tokens_in or 0 for r in fresh)
            tout = sum(r.answer_tokens_out or 0 for r in fresh)
            lat = [r.answer_latency_ms for r in fresh if r.answer_latency_ms]
        else:
            asked = [v for v in verdicts if not v.cached]
            tin = sum(v.tokens_in or 0 for v in asked)
            tout = sum(v.tokens_out or 0 for v in asked)
            lat = [v.latency_ms for v in asked if v.latency_ms]
        config = run.config.model if side == "model" else run.config.judge
        money = None
        if side == "judge" and panel_aggregation(run) is not None:
            money = members_cost(run, asked)  # each member at its own prices
        elif side == "judge" and (
            config.price_in_per_mtok is not None or config.price_out_per_mtok is not None
        ):
            money = verdicts_cost(run.config.judge, asked)  # batched verdicts at the judge's batch_discount
        elif config.price_in_per_mtok is not None or config.price_out_per_mtok is not None:
            money = tin / 1e6 * (config.price_in_per_mtok or 0) + tout / 1e6 * (
                config.price_out_per_mtok or 0
            )
        elif config.price_per_hour is not None and side == "model":
            # The server's time is charged for the time it was busy with this run: the union of its
            # answers' in-flight intervals (runs stored before answers kept their times: wall time).
            seconds = run_busy_seconds(fresh)
            if seconds is None and run.ended_at:
                seconds = (
                    datetime.fromisoformat(run.ended_at) - datetime.fromisoformat(run.started_at)
                ).total_seconds()
            money = None if seconds is None else config.price_per_hour * seconds / 3600
        sides[side] = SideCost(
            tokens_in=tin,
            tokens_out=tout,
            calls=len(lat),
            latency_ms={f"p{q}": v for q, v in stats.percentiles(lat).items()},
            tokens_per_s=(tout / (sum(lat) / 1000)) if lat and sum(lat) > 0 else None,
            cost=money,
        )
    return Cost(model=sides["model"], judge=sides["judge"])


def _routing(store: Store, run_id: str) -> list[RouteDecision]:
    """The areas of the latest routing table this run was the local side of (``evals route``)."""
    return [RouteDecision.model_validate(d, from_attributes=True) for d in latest_for_local(store, run_id)]


def history_point(m: RunManifest, aggregates: Sequence[AreaAggregate], changes: list[str]) -> HistoryPoint:
    """One run in the history: its overall and per-area means of item means (the scorecard's figures),
    read from the run's aggregates."""
    overall = next((a.mean for a in aggregates if a.area == OVERALL), None)
    return HistoryPoint(
        run_id=m.run_id,
        started_at=m.started_at,
        model=m.model_id or m.model,
        judge_model=m.judge_model,
        rubric_hash=m.rubric_hash,
        changes=changes,
        overall=overall,
        areas={a.area: a.mean for a in aggregates if a.area != OVERALL and a.mean is not None},
    )


def history(store: Store, run: RunManifest, limit: int, pass_score: float = 4) -> list[HistoryPoint]:
    """Each area's mean over the last ``limit`` runs of this run's line up to it, marking changes.

    A line holds the runs of one kind (``baselines.unlike``): the suite, model name, judge (name and model)
    and rubrics of this run; runs of another model or judge draw their own line, never joined into this
    one. What may still change along it is marked: the model behind the name (an upgrade), the rubrics
    added. Read from the runs' stored aggregates (one query), never from their items. Runs excluded with
    ``evals runs exclude`` are left out.
    """
    runs = [
        m
        for m in store.runs(run.suite_name)
        if (m.started_at, m.run_id) <= (run.started_at, run.run_id)
        and (m.run_id == run.run_id or not is_excluded(m))
        and unlike(run, m) is None
    ][-limit:]
    aggregates = store.aggregates([m.run_id for m in runs], pass_score)
    return [
        history_point(m, aggregates[m.run_id], run_changes(runs[i - 1] if i else None, m))
        for i, m in enumerate(runs)
    ]


def run_changes(previous: RunManifest | None, run: RunManifest) -> list[str]:
    """What changed since the previous run of a history: ``model``, ``judge``, ``rubric`` (none for the first)."""
    if previous is None:
        return []
    changes = []
    if (previous.model_id or previous.model) != (run.model_id or run.model):
        changes.append("model")
    if previous.judge_model != run.judge_model:
        changes.append("judge")
    if previous.rubric_hash != run.rubric_hash:
        changes.append("rubric")
    return changes


def _selection(run: RunManifest) -> SelectionInfo | None:
    """The subset of the suite the run asked (``--area``, ``--item-tag``, ``--limit``), or None: all of it."""
    selection = run.selection()
    if selection.whole:
        return None
    return SelectionInfo(
        areas=list(selection.areas),
        item_tags=list(selection.item_tags),
        limit=selection.limit,
        description=selection.describe(),
    )


def build_scorecard(
    store: Store,
    run_id: str,
    baseline_id: str | None = None,
    settings: ScorecardSettings | None = None,
    gate: GateSettings | None = None,
) -> Scorecard:
    """The whole scorecard of a run (``scorecard.json``), with the one decision against its baseline.

    ``gate`` (evals.yaml's ``gate:``, or ``--policy``) decides every status; its ``max_error_rate`` also
    bounds the errors of a run chosen as default baseline.
    """
    settings = settings or ScorecardSettings()
    gate = gate or GateSettings()
    run = store.run(run_id)
    baseline, choice = choose_baseline(store, run, baseline_id, gate.max_error_rate)
    rows = list(store.results(run_id))
    verdicts = store.verdicts(run_id)
    base_rows = list(store.results(baseline.run_id)) if baseline else []
    noise = run_noise(store, run_id, gate.pass_score)
    verdict = decide_rows(store, run, baseline, rows, base_rows, gate) if baseline else None
    drifted = verdict.report if verdict else None
    if verdict is not None and drifted is None:  # the baseline is the run itself: its drift is nothing
        drifted = drift(rows, base_rows, gate, combined_se(noise, noise))
    areas = []
    for area, area_rows in by_area(rows).items():
        stats_ = area_stats(area, area_rows, gate.pass_score).model_copy(
            update={"judge_noise": noise.areas.get(area)}
        )
        areas.append(stats_.model_copy(update={"drift": drifted.areas[area]}) if drifted else stats_)
    # The baseline's own mean of each area (over all its scored items), from its stored aggregates.
    base_aggregates = (
        store.aggregates([baseline.run_id], gate.pass_score)[baseline.run_id] if baseline else []
    )
    base_means = {a.area: a.mean for a in base_aggregates}
    areas = [a.model_copy(update={"baseline_mean": base_means.get(a.area)}) for a in areas]
    corrected = corrected_areas(store, run_id, rows)  # people's scores of a random draw, where there are any
    areas = [a.model_copy(update={"corrected": corrected.get(a.area)}) for a in areas]
    weak, strong = _rank_areas(areas, settings)
    areas = [a.model_copy(update={"weak": a.area in weak}) for a in areas]
    overall = area_stats(OVERALL, rows, gate.pass_score).model_copy(update={"judge_noise": noise.overall})
    overall = overall.model_copy(update={"baseline_mean": base_means.get(OVERALL)})
    if drifted:
        overall = overall.model_copy(update={"drift": drifted.overall})
    areas, overall = with_signals(areas, overall, rows)  # answers addressing the grader; length bias
    paired = drifted.scored_pairs if drifted else frozenset()
    return Scorecard(
        run=RunInfo.of(run, health(rows)),
        selection=_selection(run),
        baseline=RunInfo.of(baseline, health(base_rows)) if baseline else None,
        baseline_choice=choice,
        same_family=same_family(store, run),
        judged_differently=judged_differently(store, run, baseline) if baseline else [],
        settings=settings,
        gate=gate,
        decision=verdict.decision if verdict else None,
        overall=overall,
        areas=areas,
        weak_areas=weak,
        strong_areas=strong,
        item_changes=drifted.items if drifted else None,
        regressed_items=_regressed_items(rows, base_rows, paired) if baseline else [],
        items=_item_rows(rows, base_rows, paired, gate.pass_score),
        history=history(store, run, settings.history, gate.pass_score),
        cost=_cost(run, rows, verdicts),
        routing=_routing(store, run_id),
        audit=audit_head(store, run_id),
        calibration=calibration_note(store, run, rows, gate.pass_score),
        redaction=redaction_info(store, run),
        inhouse=inhouse_info(run, rows),
        panel=build_panel(run, rows, verdicts),
        canary=canary_report(store, run_id),
    )
