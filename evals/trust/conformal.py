"""Per-answer intervals for the score a person would give, from the judge's score (split conformal).

On answers people labelled, the residuals |human − judge| say how far the judge strays. Split conformal
prediction (Vovk et al. 2005; Angelopoulos and Bates 2023, "A gentle introduction") turns them into one
width q: the ⌈(n + 1)(1 − α)⌉-th smallest of the n residuals (the finite-sample quantile at level
⌈(n + 1)(1 − α)⌉ / n). A new answer's interval is [judge − q, judge + q] on the 1–5 scale, and a person's
score of it lies inside with probability at least 1 − α.

**Assumption (exchangeability)**: the labelled answers and the new ones are alike: drawn from the same
answers (same suite areas, a similar model), scored by the same judge the same way (rubric, panel,
repeats), the people's scores given the same way. A judge biased on one area only breaks that for a
pooled width: compute one width per area when the area has enough labels. The guarantee is on average
over answers, not for each answer.

**The ordinal boundary**: people score whole numbers 1–5. The interval is cut to [1, 5] and its ends are
rounded outward to whole scores: with one whole-numbered verdict per answer, q is whole too and the
interval is exactly the scores within q of the judge's; a fractional judge score (a panel's mean, several
repeats) never gets an empty interval and covers at least as often. With too few residuals for the
quantile (n < 1/α − 1: under 9 at α = 0.1) every interval is the whole scale, and the width's note says
so. An answer whose interval holds both a passing and a failing score ``straddles`` the pass score: the
judge's verdict does not settle it, and people should see it first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from evals.stats import SCORE_RANGE

ALPHA = 0.1
"""Miscoverage unless told otherwise: a person's score lies in the interval for at least 90 % of answers."""
_SLACK = 1e-9
"""Float rounding allowed before a bound moves to the next whole score (10/3 − 1/3 is not quite 3)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConformalWidth(_Record):
    """The half-width of every answer's interval, from the calibration residuals."""

    n_residuals: int
    """Labelled answers the judge scored: the calibration set."""
    alpha: float
    """Miscoverage: intervals hold a person's score for at least 1 − alpha of new answers."""
    rank: int | None
    """k = ⌈(n + 1)(1 − alpha)⌉: the width is the k-th smallest residual; None when k > n (too few)."""
    width: float
    """q, the half-width in score points; the scale's whole span (4) when there are too few residuals."""
    note: str
    """One sentence: the inputs, the coverage, the assumption, or why the intervals are the whole scale."""


class AnswerInterval(_Record):
    """The whole scores a person's score of one answer lies among, at the width's coverage."""

    judge_score: float
    low: int
    """Lowest score in the interval (≥ 1)."""
    high: int
    """Highest score in the interval (≤ 5)."""


def residuals(human: Mapping[str, float], judge: Mapping[str, float]) -> list[float]:
    """|human − judge| for every answer with both scores (``human`` and ``judge`` map answer ids to scores)."""
    return [abs(score - judge[answer]) for answer, score in human.items() if answer in judge]


def conformal_width(calibration: Sequence[float], alpha: float = ALPHA) -> ConformalWidth:
    """The split-conformal width from the calibration residuals: the finite-sample (1 − alpha) quantile."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if any(value < 0 or not math.isfinite(value) for value in calibration):
        raise ValueError("residuals are distances |human − judge|: finite and not negative")
    n = len(calibration)
    rank = math.ceil((n + 1) * (1 - alpha) - _SLACK)
    coverage = f"{(1 - alpha) * 100:g} %"
    span = SCORE_RANGE[1] - SCORE_RANGE[0]
    if rank > n:
        return ConformalWidth(
            n_residuals=n,
            alpha=alpha,
            rank=None,
            width=span,
            note=(
                f"{n} labelled answers are too few for {coverage} intervals (at least "
                f"{math.ceil((1 - alpha) / alpha - _SLACK)} needed): every interval is the whole scale"
            ),
        )
    width = min(span, sorted(calibration)[rank - 1])
    return ConformalWidth(
        n_residuals=n,
        alpha=alpha,
        rank=rank,
        width=width,
        note=(
            f"split conformal from {n} labelled answers: the judge's score ± {width:g}, holding a person's "
            f"score for at least {coverage} of answers like them (exchangeable with the labelled ones)"
        ),
    )


def answer_interval(judge_score: float, width: ConformalWidth | float) -> AnswerInterval:
    """[judge − q, judge + q] cut to the 1–5 scale, its ends rounded outward to whole scores."""
    q = width.width if isinstance(width, ConformalWidth) else width
    if q < 0:
        raise ValueError(f"a width is not negative, got {q!r}")
    low, high = SCORE_RANGE
    return AnswerInterval(
        judge_score=judge_score,
        low=int(max(low, math.floor(judge_score - q + _SLACK))),
        high=int(min(high, math.ceil(judge_score + q - _SLACK))),
    )


def straddles(interval: AnswerInterval, pass_score: float) -> bool:
    """Whether the interval holds both a passing score (≥ ``pass_score``) and a failing one (below it)."""
    return interval.low < pass_score <= interval.high


def doubtful(judge: Mapping[str, float], width: ConformalWidth | float, pass_score: float) -> list[str]:
    """The answers (ids of ``judge``, in its order) whose interval straddles the pass score."""
    return [answer for answer, score in judge.items() if straddles(answer_interval(score, width), pass_score)]
