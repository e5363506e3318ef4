"""Each figure of a scorecard computed once: an area's stats, paired drift, a run's health.

The scorecard, the gate, the run table and the index call these; nothing else averages scores. An area's
figures are made from its aggregate (``evals.store.aggregates``), as the history and the index make theirs
from the stored ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evals import stats
from evals.config import ScorecardSettings
from evals.results import ResultRow, by_area, scores_by_item
from evals.scorecard.models import AreaStats, Drift, ItemChanges, RunHealth
from evals.store.aggregates import OVERALL, AreaAggregate, area_aggregate


def area_stats(area: str, rows: Sequence[ResultRow], pass_score: float) -> AreaStats:
    """n, mean of item means and its clustered interval, pass rate and its interval, error counts, and the
    answers at each score level."""
    figures = stats_of(area_aggregate("", area, rows, pass_score))
    return figures.model_copy(update={"distribution": score_distribution(rows)})


def score_distribution(rows: Sequence[ResultRow]) -> list[int]:
    """How many scored answers (item × sample) got each score 1–5; a panel's mean score counts at its
    nearest level, halves up (3.5 counts as 4)."""
    counts = [0] * 5
    for r in rows:
        if r.score is not None:
            counts[min(max(math.floor(r.score + 0.5), 1), 5) - 1] += 1
    return counts


def stats_of(agg: AreaAggregate) -> AreaStats:
    """The scorecard's figures of an area from its aggregate (stored, or just computed): one computation."""
    return AreaStats(
        area=agg.area,
        n=agg.n_items,
        n_scores=agg.n_scores,
        mean=agg.mean,
        ci_low=agg.ci_low,
        ci_high=agg.ci_high,
        pass_rate=agg.pass_rate,
        pass_ci_low=agg.pass_ci_low,
        pass_ci_high=agg.pass_ci_high,
        answer_errors=agg.answer_errors,
        judge_errors=agg.judge_errors,
        truncated=agg.truncated,
        rows=agg.n_rows,
    )


def health(rows: Sequence[ResultRow]) -> RunHealth:
    """How many of a run's rows are scored, and how many failed at the answer or at the judge."""
    return RunHealth(
        rows=len(rows),
        scored=sum(1 for r in rows if r.score is not None),
        answer_errors=sum(1 for r in rows if r.error_kind == "answer"),
        judge_errors=sum(1 for r in rows if r.error_kind == "judge"),
    )


def health_of(overall: AreaAggregate) -> RunHealth:
    """A run's health from its whole-run aggregate (the same counts as ``health`` of its rows)."""
    return RunHealth(
        rows=overall.n_rows,
        scored=overall.n_scores,
        answer_errors=overall.answer_errors,
        judge_errors=overall.judge_errors,
    )


def compare_items(rows: Sequence[ResultRow], base_rows: Sequence[ResultRow]) -> ItemChanges:
    """Which item ids both runs share unchanged (``paired``), and which were added, removed or changed."""
    hashes = {r.id: r.item_hash for r in rows}
    base_hashes = {r.id: r.item_hash for r in base_rows}
    common = hashes.keys() & base_hashes.keys()
    return ItemChanges(
        paired=sorted(i for i in common if hashes[i] == base_hashes[i]),
        changed=sorted(i for i in common if hashes[i] != base_hashes[i]),
        added=sorted(hashes.keys() - base_hashes.keys()),
        removed=sorted(base_hashes.keys() - hashes.keys()),
    )


@dataclass(frozen=True)
class DriftReport:
    """Paired drift of a run against its baseline: per area, overall, and how the items line up."""

    items: ItemChanges
    areas: dict[str, Drift]
    overall: Drift
    scored_pairs: frozenset[str]
    """Item ids scored on both sides with the same content: the only ones any paired figure uses."""


def _drift(
    delta: stats.PairedDelta,
    p_adjusted: float | None,
    settings: ScorecardSettings,
    judge_se: float | None = None,
) -> Drift:
    status = stats.classify(delta, p_adjusted, settings.alpha, settings.min_effect)
    if status == "regressed" and judge_se is not None and within_judge_noise(delta.delta, judge_se):
        status = "within-judge-noise"
    return Drift(
        n_pairs=delta.n_pairs,
        delta=delta.delta,
        delta_ci_low=delta.ci_low,
        delta_ci_high=delta.ci_high,
        p_value=delta.p_value,
        p_adjusted=p_adjusted,
        status=status,
        judge_se=judge_se,
    )


def within_judge_noise(delta: float | None, judge_se: float) -> bool:
    """The regression rule where repeats exist: a drop (−Δ) of at most 2 × SE_judge may be the judge's."""
    return delta is not None and -delta <= 2 * judge_se


def drift(
    rows: Sequence[ResultRow],
    base_rows: Sequence[ResultRow],
    settings: ScorecardSettings,
    judge_se: Mapping[str, float] | None = None,
) -> DriftReport:
    """Paired drift of every area and overall, corrected across areas; the gate uses it too.

    ``judge_se`` (``evals.trust.noise.combined_se``, by area and ``(overall)``): where the runs were judged with
    repeats, a significant drop no larger than twice it is ``within-judge-noise``, not ``regressed``.

    Pairs are items of the same content with at least one score on BOTH sides; items scored on one side
    only (an error, an unfinished run) are in no count and no statistic.
    """
    items = compare_items(rows, base_rows)
    same = set(items.paired)
    cand_scores = {k: v for k, v in scores_by_item(rows).items() if k in same}
    base_scores = {k: v for k, v in scores_by_item(base_rows).items() if k in same}
    both = frozenset(cand_scores.keys() & base_scores.keys())
    cand_scores = {k: v for k, v in cand_scores.items() if k in both}
    base_scores = {k: v for k, v in base_scores.items() if k in both}
    area_of = {r.id: r.area for r in rows}
    areas = list(by_area(rows))
    deltas = {
        area: stats.paired_delta(
            {k: v for k, v in base_scores.items() if area_of[k] == area},
            {k: v for k, v in cand_scores.items() if area_of[k] == area},
        )
        for area in areas
    }
    correct = stats.holm if settings.correction == "holm" else stats.benjamini_hochberg
    adjusted = dict(zip(areas, correct([deltas[a].p_value for a in areas]), strict=True))
    overall = stats.paired_delta(base_scores, cand_scores)
    ni_low = stats.one_sided_delta(base_scores, cand_scores).ci_low
    return DriftReport(
        items=items,
        areas={a: _drift(deltas[a], adjusted[a], settings, (judge_se or {}).get(a)) for a in areas},
        overall=_drift(overall, overall.p_value, settings, (judge_se or {}).get(OVERALL)).model_copy(
            update={"ni_low": ni_low}
        ),
        scored_pairs=both,
    )
