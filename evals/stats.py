"""Intervals, paired tests and multiple-comparison corrections for judge scores.

Everything here is a pure function over plain Python data (mappings of item id to the scores of that
item's samples), so the scorecard, the gate and a notebook all compute the same numbers.

The unit of independence is the *item*: the K samples of one item share its difficulty, so they are
averaged first and the item means are the observations. Treating K samples as K independent scores
would make every interval about sqrt(K) times too narrow. Errors (answers without a score) are never
averaged in: callers pass only scored values; an item whose sequence is empty counts as absent.

numpy and scipy are imported inside the functions that use them: ``import scipy.stats`` costs over a
second (numpy about 150 ms) and the CLI imports this module on every start. Intervals and tests take
their distributions from ``scipy.special`` (half the import time); the tests check them against
``scipy.stats``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SCORE_RANGE = (1.0, 5.0)
"""The scale of every score: a mean's interval never leaves it."""

# Differences this close count as equal: scipy's t-test warns (an error under pytest) and returns
# nonsense on data that differ only by float rounding, e.g. 13/3 - 10/3 against 7/3 - 4/3.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class MeanCI:
    """The mean score of a set of items with a t interval clustered by item."""

    n_items: int
    """Items with at least one scored sample: the number of independent observations."""
    n_scores: int
    """Scored samples over all items (n_items * K when nothing failed)."""
    mean: float | None
    """Mean of the item means (None without items). Equals the plain mean of scores when K is constant."""
    ci_low: float | None
    """Lower bound of the t interval over item means (df = n_items - 1); None with fewer than 2 items."""
    ci_high: float | None
    """Upper bound of that interval; None with fewer than 2 items."""


@dataclass(frozen=True)
class RateCI:
    """The share of answers at or above a pass threshold, with a Wilson interval."""

    n: int
    """Items with at least one scored sample (the effective number of trials)."""
    successes: int
    """Effective passes: the sum of per-item pass fractions, rounded half up; exact when K = 1."""
    rate: float | None
    """Mean over items of the fraction of that item's samples that passed; None without items."""
    ci_low: float | None
    """Lower bound of the Wilson interval on (successes, n); None without items."""
    ci_high: float | None
    """Upper bound of the Wilson interval on (successes, n); None without items."""


@dataclass(frozen=True)
class PairedDelta:
    """The change of mean score from a baseline run to a candidate run, paired by item."""

    n_pairs: int
    """Items scored at least once in both runs; only these enter the comparison."""
    delta: float | None
    """Mean over paired items of (candidate item mean - baseline item mean); None without pairs."""
    ci_low: float | None
    """Lower bound of the t interval on delta (df = n_pairs - 1); None with fewer than 2 pairs."""
    ci_high: float | None
    """Upper bound of that interval; None with fewer than 2 pairs."""
    p_value: float | None
    """Two-sided paired t-test p-value against no change, uncorrected; None with fewer than 2 pairs."""
    sd: float | None = None
    """Standard deviation of the paired differences (ddof 1); None with fewer than 2 pairs."""


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")


def _item_means(scores_by_item: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Mean of each item's samples, leaving out items with no scored sample."""
    return {item: math.fsum(s) / len(s) for item, s in scores_by_item.items() if len(s) > 0}


@dataclass(frozen=True)
class ItemMeanSums:
    """Sufficient statistics of a set of item means: what a run stores per area (``run_areas``), so the
    history and the index get the scorecard's mean and interval without reading any item."""

    n_items: int
    """Items with at least one scored sample."""
    n_scores: int
    """Scored samples over all items."""
    total: float
    """Sum of the item means."""
    total_sq: float
    """Sum of the squared item means."""
    low: float | None
    """Smallest item mean (None without items): tells an interval of identical means from rounding."""
    high: float | None
    """Largest item mean."""

    @property
    def mean(self) -> float | None:
        """The mean of the item means; None without a scored item."""
        return self.total / self.n_items if self.n_items else None

    @property
    def sd(self) -> float | None:
        """The sample standard deviation of the item means; None with fewer than two items."""
        if self.n_items < 2:
            return None
        return math.sqrt(
            max(0.0, (self.total_sq - self.total * self.total / self.n_items) / (self.n_items - 1))
        )


def item_mean_sums(scores_by_item: Mapping[str, Sequence[float]]) -> ItemMeanSums:
    """The sufficient statistics of the item means of ``scores_by_item``."""
    means = list(_item_means(scores_by_item).values())
    return ItemMeanSums(
        n_items=len(means),
        n_scores=sum(len(s) for s in scores_by_item.values()),
        total=math.fsum(means),
        total_sq=math.fsum(m * m for m in means),
        low=min(means) if means else None,
        high=max(means) if means else None,
    )


def mean_of_items(scores_by_item: Mapping[str, Sequence[float]]) -> float | None:
    """The mean of the item means (each item's samples averaged first); None without a scored item.

    The one definition of an area's (and a run's) mean score: the run table, the scorecard, the history,
    the index and the gate all take it from here (through ``ItemMeanSums.mean``), and the clustered
    interval of ``mean_ci`` is around it.
    """
    return item_mean_sums(scores_by_item).mean


def _t_quantile(df: int, q: float) -> float:
    """Student's t quantile, as ``scipy.stats.t.ppf``; ``scipy.special`` loads in about half the time of
    ``scipy.stats``, which ``evals report`` then never needs."""
    from scipy import special

    return float(special.stdtrit(df, q))


def _all_equal(values: np.ndarray) -> bool:
    """True when the values differ by no more than float rounding."""
    spread = float(values.max() - values.min())
    return spread <= _REL_TOL * max(1.0, float(abs(values).max()))


def mean_ci(
    scores_by_item: Mapping[str, Sequence[float]],
    confidence: float = 0.95,
    scale: tuple[float, float] = SCORE_RANGE,
) -> MeanCI:
    """Mean score with a t interval over item means (samples of one item averaged first), within 1–5.

    One item gives the mean without an interval; no items give all None. When every item mean is the
    same the interval collapses to the mean rather than becoming NaN.
    """
    return mean_ci_of_sums(item_mean_sums(scores_by_item), confidence, scale)


def mean_ci_of_sums(
    sums: ItemMeanSums, confidence: float = 0.95, scale: tuple[float, float] = SCORE_RANGE
) -> MeanCI:
    """``mean_ci`` from the sufficient statistics of the item means (stored aggregates, or fresh ones)."""
    _check_confidence(confidence)
    mean = sums.mean
    if mean is None or sums.low is None or sums.high is None:
        return MeanCI(0, sums.n_scores, None, None, None)
    n = sums.n_items
    if n == 1:
        return MeanCI(1, sums.n_scores, mean, None, None)
    if sums.high - sums.low <= _REL_TOL * max(1.0, abs(sums.low), abs(sums.high)):
        return MeanCI(n, sums.n_scores, mean, mean, mean)
    # The sample variance of the item means from their sums; clamped, as rounding may push it below 0.
    variance = max(0.0, (sums.total_sq - sums.total * sums.total / n) / (n - 1))
    sem = math.sqrt(variance) / math.sqrt(n)
    if sem == 0:
        return MeanCI(n, sums.n_scores, mean, mean, mean)
    half = _t_quantile(n - 1, (1 + confidence) / 2) * sem
    # The true mean lies on the scale, so cutting the interval to it loses no coverage: a few items far
    # apart give [2.62, 5.00], never [2.62, 6.05].
    low, high = scale
    return MeanCI(n, sums.n_scores, mean, max(low, mean - half), min(high, mean + half))


def pass_rate(
    scores_by_item: Mapping[str, Sequence[float]], threshold: float = 4, confidence: float = 0.95
) -> RateCI:
    """Share of answers scoring at least ``threshold``, with a Wilson score interval.

    With one sample per item this is the ordinary Wilson interval on passes out of items. With K > 1
    samples the samples of one item are not independent trials, so each item contributes its pass
    fraction: ``rate`` is the mean of those fractions, and the interval is the Wilson interval on the
    effective counts ``n`` = items and ``successes`` = sum of fractions rounded half up. Rounding moves
    the count by at most half a trial; the bounds are widened, if needed, to contain ``rate``.
    """
    _check_confidence(confidence)
    fractions = pass_fractions(scores_by_item, threshold)
    return pass_rate_of_sums(len(fractions), math.fsum(fractions), confidence)


def pass_fractions(scores_by_item: Mapping[str, Sequence[float]], threshold: float = 4) -> list[float]:
    """Each scored item's share of samples scoring at least ``threshold`` (what ``pass_rate`` averages)."""
    return [sum(1 for v in s if v >= threshold) / len(s) for s in scores_by_item.values() if len(s) > 0]


def pass_rate_of_sums(n: int, total: float, confidence: float = 0.95) -> RateCI:
    """``pass_rate`` from ``n`` items and the sum of their pass fractions (stored aggregates, or fresh)."""
    _check_confidence(confidence)
    if n == 0:
        return RateCI(0, 0, None, None, None)
    from scipy import special

    rate = total / n
    successes = min(n, math.floor(total + 0.5))
    # Wilson's score interval, as scipy.stats.binomtest(...).proportion_ci(method="wilson") gives it.
    z = float(special.ndtri((1 + confidence) / 2))
    p, z2 = successes / n, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low, high = max(0.0, center - half), min(1.0, center + half)
    return RateCI(n, successes, rate, min(low, rate), max(high, rate))


def paired_delta(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    confidence: float = 0.95,
) -> PairedDelta:
    """Candidate minus baseline, paired by item id, with a paired t interval and two-sided p-value.

    Only items with at least one score in both runs are paired; each side is reduced to item means
    first. When every difference is the same the interval collapses to it and p is 0.0 for a nonzero
    difference (a change with no noise at all) and 1.0 for none. Fewer than two pairs give delta only.
    """
    _check_confidence(confidence)
    base, cand = _item_means(baseline), _item_means(candidate)
    common = sorted(base.keys() & cand.keys())
    if not common:
        return PairedDelta(0, None, None, None, None)
    import numpy as np

    diffs = np.array([cand[i] - base[i] for i in common], dtype=float)
    delta = float(diffs.mean())
    if len(diffs) == 1:
        return PairedDelta(1, delta, None, None, None)
    if _all_equal(diffs):
        if abs(delta) <= _REL_TOL:
            return PairedDelta(len(diffs), 0.0, 0.0, 0.0, 1.0, 0.0)
        return PairedDelta(len(diffs), delta, delta, delta, 0.0, 0.0)
    from scipy import special

    # The paired t-test of scipy.stats.ttest_rel, on the differences of the item means.
    df = len(diffs) - 1
    sd = float(diffs.std(ddof=1))
    se = sd / math.sqrt(len(diffs))
    t = delta / se
    p_value = min(1.0, float(2 * special.stdtr(df, -abs(t))))
    half = _t_quantile(df, (1 + confidence) / 2) * se
    return PairedDelta(len(diffs), delta, delta - half, delta + half, p_value, sd)


def _present(p_values: Sequence[float | None]) -> list[tuple[int, float]]:
    """(position, p) of the p-values that are not None, checked to lie in [0, 1]."""
    present = [(i, float(p)) for i, p in enumerate(p_values) if p is not None]
    for i, p in present:
        if not 0 <= p <= 1:  # also rejects NaN
            raise ValueError(f"p-value at position {i} is not in [0, 1]: {p!r}")
    return present


def bonferroni(p_values: Sequence[float | None]) -> list[float | None]:
    """Bonferroni adjusted p-values (``min(1, m·p)``), in input order; controls the family-wise error.

    The correction whose simultaneous intervals (each at 1 − α/m) agree with its tests area by area.
    None entries (no test possible) stay None and do not count in the family size.
    """
    present = _present(p_values)
    out: list[float | None] = [None] * len(p_values)
    for i, p in present:
        out[i] = min(1.0, len(present) * p)
    return out


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), in input order.

    None entries stay None and do not count in the family size.
    """
    present = _present(p_values)
    out: list[float | None] = [None] * len(p_values)
    if not present:
        return out
    from scipy import stats

    adjusted = stats.false_discovery_control([p for _, p in present], method="bh")
    for (i, _), q in zip(present, adjusted, strict=True):
        out[i] = float(q)
    return out


def one_sided_delta(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    confidence: float = 0.95,
) -> PairedDelta:
    """``paired_delta`` whose ``ci_low`` is the one-sided ``confidence`` lower bound of Δ.

    Non-inferiority is a one-sided question (is the candidate worse by more than the margin?), so its
    95 % bound is the lower end of the two-sided 90 % interval: a test at 5 %.
    """
    return paired_delta(baseline, candidate, confidence=2 * confidence - 1)


def items_needed(sd: float | None, distance: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Items a one-sided test at ``alpha`` needs to tell, with ``power``, a mean ``distance`` points from
    its margin when the item-level standard deviation is ``sd``: ``((z[1-alpha] + z[power]) sd / d)^2``.

    The normal approximation of the t-test's sample size (a few items optimistic below about 10). None
    when it cannot be told: no spread measured, or a mean sitting on the margin (``distance`` 0).
    """
    if sd is None or distance == 0:
        return None
    if sd == 0:
        return 2  # no spread: two items already tell (the interval collapses)
    from scipy import special

    z = float(special.ndtri(1 - alpha) + special.ndtri(power))
    return max(2, math.ceil((z * sd / abs(distance)) ** 2))


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[int, float | None]:
    """Percentiles (linear interpolation, numpy's default) of e.g. latencies; None for each q without values."""
    for q in qs:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be between 0 and 100, got {q!r}")
    if len(values) == 0:
        return {q: None for q in qs}
    import numpy as np

    found = np.percentile(np.asarray(values, dtype=float), list(qs))
    return {q: float(v) for q, v in zip(qs, found, strict=True)}


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span (as ``scipy.stats.rankdata``)."""
    import numpy as np

    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # the last rank of each distinct value
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[float, float] | None:
    """Spearman's rho of paired values and its two-sided p-value, as ``scipy.stats.spearmanr`` gives them
    (Pearson's r of the average ranks; p from Student's t with n - 2 degrees of freedom); None when it is
    undefined (fewer than 3 pairs, or a side without two distinct values)."""
    import numpy as np

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"spearman needs pairs: {len(a)} values against {len(b)}")
    if len(a) < 3 or _all_equal(a) or _all_equal(b):
        return None
    ra, rb = _average_ranks(a), _average_ranks(b)
    rho = float(np.clip(np.corrcoef(ra, rb)[0, 1], -1.0, 1.0))
    df = len(a) - 2
    if abs(rho) == 1.0:
        return rho, 0.0
    from scipy import special

    t = rho * math.sqrt(df / ((1.0 - rho) * (1.0 + rho)))
    return rho, float(2 * special.stdtr(df, -abs(t)))
