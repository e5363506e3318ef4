"""Agreement between two graders on the 1-5 scale (a judge and people, or two judges), each a library call.

Every statistic takes two aligned sequences of scores (``a`` the judge, ``b`` the people, or any two
raters) and returns a float, or None when the data cannot give one (fewer than two rows, a rater who gave
one score to everything): ``why_none`` says which. None, never NaN and never an exception, so a report of
ten areas does not die on one degenerate area.

* exact agreement and agreement within one point: shares of rows (numpy);
* quadratic-weighted kappa: ``sklearn.metrics.cohen_kappa_score(weights="quadratic", labels=[1..5])``,
  chance-corrected and ordinal (a 4 against a 5 costs less than a 1 against a 5);
* Spearman's rho: ``evals.stats.spearman`` (scipy.stats.spearmanr's figures, without its import);
* mean bias: mean of (a - b), positive when the judge is more lenient than the people;
* the 5x5 confusion matrix: ``sklearn.metrics.confusion_matrix(labels=[1..5])``, rows ``b`` (people),
  columns ``a`` (judge);
* ordinal Krippendorff's alpha over a raters x units matrix with NaN gaps: ``krippendorff.alpha``;
* ``bootstrap``: a seeded percentile bootstrap over rows (same data, same interval) for any of them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from evals import stats

SCALE = (1, 2, 3, 4, 5)
"""The score scale every statistic here is computed on."""
RESAMPLES = 1000
"""Bootstrap resamples of an interval."""
SEED = 12
"""Seed of the bootstrap: the same data always gives the same interval."""
CONFIDENCE = 0.95
MIN_VALID_SHARE = 0.9
"""An interval is given only when at least this share of resamples had the statistic defined."""
DISAGREE_AT = 2.0
"""Scores of two judges (a panel's members) this far apart put an answer on the list for people to review
(the scorecard's panel section, ``evals review``)."""

Scores = Sequence[float] | np.ndarray
Statistic = Callable[[np.ndarray, np.ndarray], "float | None"]


class Estimate(BaseModel):
    """One figure with its bootstrap 95 % interval, or why there is none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None
    """The figure on all rows; None when the data cannot give one (``reason`` says why)."""
    low: float | None = None
    """Lower end of the 95 % percentile bootstrap interval (None when it could not be computed)."""
    high: float | None = None
    reason: str | None = None
    """Why ``value`` (or its interval) is missing: ``fewer than 2 rows``, ``one rater gave one score ...``."""


def _arrays(a: Scores, b: Scores) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"two aligned 1-d score arrays expected, got shapes {x.shape} and {y.shape}")
    return x, y


def why_none(a: Scores, b: Scores) -> str | None:
    """Why a two-rater statistic is undefined on ``a`` and ``b``, or None when it is defined."""
    x, y = _arrays(a, b)
    if len(x) < 2:
        return f"fewer than 2 rows ({len(x)})"
    if np.all(x == x[0]) or np.all(y == y[0]):
        return "a rater gave every row the same score: no variation to agree on"
    return None


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def exact_agreement(a: Scores, b: Scores) -> float | None:
    """Share of rows where both give the same score."""
    x, y = _arrays(a, b)
    return float(np.mean(x == y)) if len(x) else None


def within_one(a: Scores, b: Scores) -> float | None:
    """Share of rows where the scores differ by at most one point."""
    x, y = _arrays(a, b)
    return float(np.mean(np.abs(x - y) <= 1)) if len(x) else None


def mean_bias(a: Scores, b: Scores) -> float | None:
    """Mean of ``a - b``: positive when ``a`` (the judge) scores higher than ``b`` (the people)."""
    x, y = _arrays(a, b)
    return float(np.mean(x - y)) if len(x) else None


def quadratic_kappa(a: Scores, b: Scores) -> float | None:
    """Cohen's kappa with quadratic weights on the 1-5 scale (scikit-learn); None when undefined."""
    from sklearn.metrics import cohen_kappa_score

    x, y = _arrays(a, b)
    if why_none(x, y):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = cohen_kappa_score(x.astype(int), y.astype(int), weights="quadratic", labels=list(SCALE))
    return _finite(value)


def spearman(a: Scores, b: Scores) -> float | None:
    """Spearman's rank correlation (``evals.stats.spearman``, as scipy's); None when undefined."""
    x, y = _arrays(a, b)
    if why_none(x, y):
        return None
    found = stats.spearman(x, y)
    return None if found is None else _finite(found[0])


def confusion(a: Scores, b: Scores) -> list[list[int]]:
    """The 5x5 confusion matrix: ``matrix[i][j]`` counts rows that ``b`` (people) scored ``i+1`` and ``a``
    (the judge) scored ``j+1``."""
    from sklearn.metrics import confusion_matrix

    x, y = _arrays(a, b)
    if not len(x):
        return [[0] * len(SCALE) for _ in SCALE]
    matrix = confusion_matrix(y.astype(int), x.astype(int), labels=list(SCALE))
    return [[int(v) for v in row] for row in matrix]


def ordinal_alpha(matrix: Sequence[Sequence[float]] | np.ndarray) -> float | None:
    """Krippendorff's alpha, ordinal, on the 1-5 scale, of a raters x units matrix (NaN: not rated).

    None when fewer than two units are rated by two raters or more, or when every rating is the same.
    """
    import krippendorff

    data = np.asarray(matrix, dtype=float)
    if alpha_why_none(data):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = krippendorff.alpha(data, level_of_measurement="ordinal", value_domain=list(SCALE))
    return _finite(value)


def alpha_why_none(matrix: np.ndarray) -> str | None:
    """Why alpha is undefined for a raters x units matrix, or None when it is defined."""
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        return "fewer than 2 raters"
    pairable = np.sum(~np.isnan(matrix), axis=0) >= 2
    if int(pairable.sum()) < 2:
        return f"fewer than 2 answers rated by 2 raters or more ({int(pairable.sum())})"
    values = matrix[:, pairable]
    values = values[~np.isnan(values)]
    if np.all(values == values[0]):
        return "every rating is the same score: no variation to agree on"
    return None


def bootstrap(
    statistic: Callable[..., float | None],
    *columns: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    axis: int = 0,
) -> tuple[float | None, float | None]:
    """A seeded 95 % percentile bootstrap interval of ``statistic(*columns)``, resampling rows together.

    ``axis`` is the axis of the rows (1 for a raters x units matrix: units are resampled). Resamples on
    which the statistic is undefined are dropped; when more than ``1 - MIN_VALID_SHARE`` of them are, the
    interval is (None, None): the data is too thin for one.
    """
    n = columns[0].shape[axis]
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        value = statistic(*(np.take(c, index, axis=axis) for c in columns))
        if value is not None:
            values.append(value)
    if len(values) < MIN_VALID_SHARE * resamples:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def estimate(statistic: Statistic, a: Scores, b: Scores, resamples: int = RESAMPLES) -> Estimate:
    """``statistic(a, b)`` with its bootstrap interval over rows, or the reason there is none."""
    x, y = _arrays(a, b)
    value = statistic(x, y)
    if value is None:
        return Estimate(value=None, reason=why_none(x, y) or "undefined on these rows")
    low, high = bootstrap(statistic, x, y, resamples=resamples)
    reason = None if low is not None else "too few rows for an interval"
    return Estimate(value=value, low=low, high=high, reason=reason)


def alpha_estimate(matrix: Sequence[Sequence[float]] | np.ndarray, resamples: int = RESAMPLES) -> Estimate:
    """Ordinal alpha of a raters x units matrix with its bootstrap interval over units."""
    data = np.asarray(matrix, dtype=float)
    value = ordinal_alpha(data)
    if value is None:
        return Estimate(value=None, reason=alpha_why_none(data) or "undefined on these ratings")
    low, high = bootstrap(ordinal_alpha, data, resamples=resamples, axis=1)
    reason = None if low is not None else "too few answers for an interval"
    return Estimate(value=value, low=low, high=high, reason=reason)
