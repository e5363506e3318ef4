"""Corrected means: what people would score an area on average, from a few of their scores and the judge's.

A judge's mean can be off by its bias (a +0.8 habit on one area), and no amount of judged answers removes
that. Where people scored a **random** sample of the area's answers, prediction-powered inference
(Angelopoulos, Bates, Fannjiang, Jordan, Zrnic 2023) corrects the judge's mean by the gap people and
judge show on that sample; PPI++ (Angelopoulos, Duchi, Zrnic 2023) weighs the judge's part by a power-tuning
weight λ in [0, 1], estimated from the data, so that the estimate is never much worse than the people's
own mean and is far better when the judge tracks them:

    estimate = mean over scored items (human − λ·judge) + λ · mean over the other items (judge)

with λ = Cov(human, judge) / ((1 + n/N_u) · Var(judge)) (Cov over the n scored items, Var over all items),
clipped to [0, 1], and a 95 % normal (CLT) interval from the two parts' variances. This is ``ppi-python``'s
``ppi_mean_ci(..., lam=None)`` (the tests check both agree), clipped to the score's scale.

**Assumption**: the n human scores were drawn at random from the run's answers (``evals review export
--random``), independently of how they scored; answers picked for being doubtful or urgent are no such
sample and must never be passed here. The unit is the item, as in ``evals.stats``: the judge's score of an
item is its item mean (over samples and repeats) on BOTH sides, the scored items and the others (the
judge's score of just the sampled answer would differ in spread from the other items' means and bias the
correction); a person's score of an item is the mean of the scores people gave its answers. The scored
items are left out of the judge-only part, so the two parts are independent samples, as PPI++ assumes.

The effective sample size says what the judge's scores are worth: the number of human scores that alone
would give an interval as narrow (the classical mean's variance over the corrected one, times n).

numpy and scipy are imported inside the functions (the CLI imports this module eagerly; see
``evals.stats``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from evals.stats import SCORE_RANGE

MIN_HUMAN = 20
"""Fewer human scores in an area than this: no correction (the normal interval needs a sample)."""
LEVEL = 0.95
"""The interval's coverage unless told otherwise."""
ASSUMPTION = "human scores drawn at random from the run's answers"
"""What every correction assumes, stated in its note."""
DELTA_RANGE = (-4.0, 4.0)
"""Where a difference of two 1–5 scores lies: a corrected Δ's interval never leaves it."""


class CorrectedMean(BaseModel):
    """The people's mean score of one area (or a Δ between two runs), corrected from the judge's, or why not.

    ``estimate`` and its interval are None when there are too few human scores; ``judge_mean`` is then the
    figure to show, and ``note`` says so. The note always states the assumption and the inputs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    estimate: float | None
    """The PPI++ estimate of the people's mean; None with fewer than ``min_human`` human scores."""
    ci_low: float | None
    """Lower end of the normal interval at ``level``, clipped to the scale."""
    ci_high: float | None
    """Upper end of that interval, clipped to the scale."""
    level: float
    """The interval's nominal coverage (0.95 unless asked otherwise)."""
    n_human: int
    """Items with a human score and a judge score: the n the correction uses."""
    n_judge: int
    """Items the judge scored (N, the scored items included)."""
    n_unjudged: int = 0
    """Human scores of items the judge did not score (errors): left out, and the note says how many."""
    judge_mean: float | None
    """The judge's mean over its N items, uncorrected; None when it scored nothing."""
    human_mean: float | None
    """The people's own mean over the n items they scored (the classical estimate); None without any."""
    lam: float | None
    """λ, the power-tuning weight of the judge's scores in [0, 1]: 0 ignores the judge (the people's mean),
    1 is plain PPI. None without an estimate."""
    effective_n: float | None
    """Human scores alone that would give an interval as narrow: n × Var(people's mean) / Var(estimate).
    None without an estimate, or when the people's scores do not vary."""
    gain: float | None
    """``effective_n / n_human``: how many human scores each one is worth with the judge's help (≥ about 1)."""
    note: str
    """One sentence for the scorecard: the method, its assumption and inputs, or why there is no estimate."""


class _Fit(NamedTuple):
    estimate: float
    se: float
    lam: float
    classical_var: float


def corrected_mean(
    judge: Mapping[str, float],
    human: Mapping[str, float],
    *,
    min_human: int = MIN_HUMAN,
    level: float = LEVEL,
) -> CorrectedMean:
    """The PPI++ mean of one area's people's scores.

    ``judge`` maps every item the judge scored (all N of the area) to its item mean; ``human`` maps the
    randomly drawn items people scored to their score (their mean over raters and samples). Human scores
    of items missing from ``judge`` cannot be corrected and are left out (counted in ``n_unjudged``).
    """
    return _correct(judge, human, min_human=min_human, level=level, scale=SCORE_RANGE, what="mean")


def corrected_delta(
    judge_baseline: Mapping[str, float],
    judge_candidate: Mapping[str, float],
    human_baseline: Mapping[str, float],
    human_candidate: Mapping[str, float],
    *,
    min_human: int = MIN_HUMAN,
    level: float = LEVEL,
) -> CorrectedMean:
    """The PPI++ estimate of the people's paired Δ (candidate − baseline) over one area's items.

    The same estimator on differences: an item counts for the judge when the judge scored it in both runs,
    for people when people scored it in both runs (the same items drawn at random in both). The interval
    lies in [−4, 4].
    """
    judge = {
        item: score - judge_baseline[item]
        for item, score in judge_candidate.items()
        if item in judge_baseline
    }
    human = {
        item: score - human_baseline[item]
        for item, score in human_candidate.items()
        if item in human_baseline
    }
    return _correct(judge, human, min_human=min_human, level=level, scale=DELTA_RANGE, what="Δ")


def _correct(
    judge: Mapping[str, float],
    human: Mapping[str, float],
    *,
    min_human: int,
    level: float,
    scale: tuple[float, float],
    what: str,
) -> CorrectedMean:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level!r}")
    if min_human < 2:
        raise ValueError(f"min_human must be at least 2, got {min_human!r}")
    labelled = [item for item in human if item in judge]
    unjudged = len(human) - len(labelled)
    others = [item for item in judge if item not in human]
    n, n_judge = len(labelled), len(judge)
    judge_mean = math.fsum(judge.values()) / n_judge if n_judge else None
    human_mean = math.fsum(human[item] for item in labelled) / n if n else None
    left_out = (
        f"; {unjudged} human score{'s' if unjudged != 1 else ''} of answers the judge did not score left out"
        if unjudged
        else ""
    )
    uncorrected = CorrectedMean(
        estimate=None,
        ci_low=None,
        ci_high=None,
        level=level,
        n_human=n,
        n_judge=n_judge,
        n_unjudged=unjudged,
        judge_mean=judge_mean,
        human_mean=human_mean,
        lam=None,
        effective_n=None,
        gain=None,
        note=(
            f"not corrected: {n} human score{'s' if n != 1 else ''} drawn at random in this area, fewer "
            f"than the {min_human} a correction needs; the judge's {what} is shown alone{left_out}"
        ),
    )
    if n < min_human:
        return uncorrected
    fit = _ppi_plus_plus(
        [human[item] for item in labelled], [judge[item] for item in labelled], [judge[i] for i in others]
    )
    z = _normal_quantile((1 + level) / 2)
    low, high = scale
    variance = fit.se**2
    effective_n = n * fit.classical_var / variance if variance > 0 and fit.classical_var > 0 else None
    worth = (
        f"; the judge's scores make them worth {effective_n:.0f} ({effective_n / n:.1f}×)"
        if effective_n is not None
        else ""
    )
    return CorrectedMean.model_validate(
        {
            **uncorrected.model_dump(),
            "estimate": min(high, max(low, fit.estimate)),
            "ci_low": min(high, max(low, fit.estimate - z * fit.se)),
            "ci_high": min(high, max(low, fit.estimate + z * fit.se)),
            "lam": fit.lam,
            "effective_n": effective_n,
            "gain": effective_n / n if effective_n is not None else None,
            "note": (
                f"PPI++ corrected {what} from {n} human scores and the judge's scores of {n_judge} items, "
                f"assuming {ASSUMPTION}; λ = {fit.lam:.2f}, {level * 100:g} % normal interval{worth}{left_out}"
            ),
        }
    )


def _ppi_plus_plus(human: list[float], judge_scored: list[float], judge_others: list[float]) -> _Fit:
    """PPI++ for a mean (power-tuned λ, clipped to [0, 1]) as ``ppi_py.ppi_mean_ci(lam=None)`` computes it."""
    import numpy as np

    y, f, f_other = (np.asarray(values, dtype=float) for values in (human, judge_scored, judge_others))
    n, n_other = len(y), len(f_other)
    classical_var = float(y.var()) / n
    if n_other == 0:  # people scored every judged item: their mean is the answer, the judge adds nothing
        return _Fit(float(y.mean()), math.sqrt(classical_var), 0.0, classical_var)
    # ppi_py's _calc_lam_glm for a mean: the covariance over the scored items (1/n), the judge's variance
    # over all items (ddof 1), the (1 + n/N) factor for the judge-only part's own noise.
    covariance = float(np.mean((y - y.mean()) * (f - f.mean())))
    spread = float(np.var(np.concatenate([f, f_other]), ddof=1))
    lam = covariance / ((1 + n / n_other) * spread) if spread > 0 else 0.0
    lam = min(1.0, max(0.0, lam))
    estimate = float(np.mean(y - lam * f) + lam * np.mean(f_other))
    variance = float(np.var(lam * f_other)) / n_other + float(np.var(y - lam * f)) / n
    return _Fit(estimate, math.sqrt(variance), lam, classical_var)


def _normal_quantile(p: float) -> float:
    from scipy import special  # half the import time of scipy.stats (see evals.stats)

    return float(special.ndtri(p))
