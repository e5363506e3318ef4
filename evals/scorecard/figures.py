"""Each figure of a scorecard computed once: an area's stats, a run's health, how two runs' items line up.

The scorecard, the decision (``evals.scorecard.decision``, which owns paired drift), the run table and the
index call these; nothing else averages scores. An area's
figures are made from its aggregate (``evals.store.aggregates``), as the history and the index make theirs
from the stored ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evals.results import ResultRow
from evals.scorecard.models import AreaStats, ItemChanges, RunHealth
from evals.store.aggregates import AreaAggregate, area_aggregate


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
