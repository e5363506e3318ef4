"""Per-area aggregates of a run (table ``run_areas``): the sufficient statistics of its scorecard figures.

A run that has ended (finished, or interrupted) stores, per area and for the whole run (area ``(overall)``), the count, sum and sum of
squares of its item means, the sum of its items' pass fractions, error and token counts and latency
percentiles. ``area_aggregate`` is the ONE computation of these figures: the scorecard's area table
(``evals.scorecard.figures.area_stats``) is made from it too, so the history and the index, which read
the stored rows instead of every item of every run, show exactly the scorecard's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from evals import stats
from evals.results import ResultRow, by_area, scores_by_item

OVERALL = "(overall)"
"""The area name of the whole run's row."""
CONFIDENCE = 0.95
"""The confidence of the stored intervals (the scorecard's)."""


@dataclass(frozen=True)
class AreaAggregate:
    """One row of ``run_areas``: an area (or ``(overall)``) of one run."""

    run_id: str
    area: str
    pass_score: float
    """The lowest passing score the pass figures were counted with."""
    n_rows: int
    """Item × sample rows asked."""
    n_items: int
    """Items with at least one scored sample."""
    n_scores: int
    """Scored samples."""
    sum_means: float
    """Sum of the item means."""
    sumsq_means: float
    """Sum of the squared item means."""
    min_mean: float | None
    max_mean: float | None
    ci_low: float | None
    """The 95 % clustered t interval of the mean (``stats.mean_ci_of_sums``)."""
    ci_high: float | None
    pass_sum: float
    """Sum of the items' pass fractions (``stats.pass_fractions``)."""
    pass_ci_low: float | None
    """The 95 % Wilson interval of the pass rate (``stats.pass_rate_of_sums``)."""
    pass_ci_high: float | None
    answer_errors: int
    judge_errors: int
    truncated: int
    tokens_in: int
    """The model's tokens."""
    tokens_out: int
    judge_tokens_in: int
    """The judge's tokens of fresh (not cached) verdicts."""
    judge_tokens_out: int
    judge_calls: int
    latency_p50: float | None
    """The model's answer latency percentiles, ms."""
    latency_p95: float | None

    @property
    def sums(self) -> stats.ItemMeanSums:
        """The item-mean statistics, from which ``stats`` computes the mean and its interval."""
        return stats.ItemMeanSums(
            self.n_items, self.n_scores, self.sum_means, self.sumsq_means, self.min_mean, self.max_mean
        )

    @property
    def mean(self) -> float | None:
        """The mean of the item means: the scorecard's figure."""
        return self.sums.mean

    @property
    def pass_rate(self) -> float | None:
        """The mean of the items' pass fractions; None without a scored item."""
        return self.pass_sum / self.n_items if self.n_items else None

    def values(self) -> tuple[object, ...]:
        """The row of ``run_areas``, in ``COLUMNS`` order."""
        return astuple(self)


COLUMNS = tuple(f.name for f in fields(AreaAggregate))
"""The columns of ``run_areas``."""


def area_aggregate(run_id: str, area: str, rows: Sequence[ResultRow], pass_score: float) -> AreaAggregate:
    """The aggregate of the rows of one area (or of a whole run): the scorecard's figures come from here."""
    by_item = scores_by_item(rows)
    sums = stats.item_mean_sums(by_item)
    mean = stats.mean_ci_of_sums(sums, CONFIDENCE)
    fractions = stats.pass_fractions(by_item, pass_score)
    pass_sum = math.fsum(fractions)
    rate = stats.pass_rate_of_sums(len(fractions), pass_sum, CONFIDENCE)
    fresh = [r for r in rows if not r.cached]
    latency = stats.percentiles([r.answer_latency_ms for r in rows if r.answer_latency_ms], (50, 95))
    return AreaAggregate(
        run_id=run_id, area=area, pass_score=float(pass_score), n_rows=len(rows), n_items=sums.n_items,
        n_scores=sums.n_scores, sum_means=sums.total, sumsq_means=sums.total_sq, min_mean=sums.low,
        max_mean=sums.high, ci_low=mean.ci_low, ci_high=mean.ci_high, pass_sum=pass_sum,
        pass_ci_low=rate.ci_low, pass_ci_high=rate.ci_high,
        answer_errors=sum(1 for r in rows if r.error_kind == "answer"),
        judge_errors=sum(1 for r in rows if r.error_kind == "judge"),
        truncated=sum(1 for r in rows if r.truncated),
        tokens_in=sum(r.answer_tokens_in or 0 for r in rows),
        tokens_out=sum(r.answer_tokens_out or 0 for r in rows),
        judge_tokens_in=sum(r.judge_tokens_in or 0 for r in fresh),
        judge_tokens_out=sum(r.judge_tokens_out or 0 for r in fresh),
        judge_calls=sum(1 for r in fresh if r.judge_latency_ms),
        latency_p50=latency[50], latency_p95=latency[95],
    )  # fmt: skip


def run_aggregates(run_id: str, rows: Sequence[ResultRow], pass_score: float) -> list[AreaAggregate]:
    """Every area's aggregate of a run (areas sorted by name), then the whole run's (``OVERALL``)."""
    areas = [area_aggregate(run_id, area, area_rows, pass_score) for area, area_rows in by_area(rows).items()]
    return [*areas, area_aggregate(run_id, OVERALL, rows, pass_score)]


_INTS = frozenset(f.name for f in fields(AreaAggregate) if f.type == "int")
_FLOATS = frozenset(f.name for f in fields(AreaAggregate) if f.type in ("float", "float | None"))


def aggregate_of(row: Sequence[Any]) -> AreaAggregate:
    """An aggregate from a row of ``run_areas`` (``COLUMNS``); integers and floats as the record types them."""
    values = dict(zip(COLUMNS, row, strict=True))
    for name, v in values.items():
        if v is not None:
            if name in _INTS:
                values[name] = int(v)
            elif name in _FLOATS:
                values[name] = float(v)
    return AreaAggregate(**values)
