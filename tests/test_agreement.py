"""Every agreement figure against scikit-learn, scipy, krippendorff or a hand computation on fixed data."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from evals.trust import agreement

JUDGE = [5, 4, 4, 3, 1, 2, 5, 3, 2, 1, 4, 5]
PEOPLE = [5, 5, 4, 2, 1, 1, 4, 3, 3, 1, 4, 4]


def test_exact_within_one_and_bias_by_hand():
    # equal on rows 0, 2, 4, 7, 9, 10: 6 of 12; every row differs by at most 1
    assert agreement.exact_agreement(JUDGE, PEOPLE) == pytest.approx(6 / 12)
    assert agreement.within_one(JUDGE, PEOPLE) == 1.0
    assert agreement.within_one([1, 5], [3, 5]) == 0.5
    # judge - people: 0,-1,0,1,0,1,1,0,-1,0,0,1 -> sum 2
    assert agreement.mean_bias(JUDGE, PEOPLE) == pytest.approx(2 / 12)


def test_quadratic_kappa_is_scikit_learns():
    expected = cohen_kappa_score(JUDGE, PEOPLE, weights="quadratic", labels=[1, 2, 3, 4, 5])
    assert agreement.quadratic_kappa(JUDGE, PEOPLE) == pytest.approx(expected)
    assert agreement.quadratic_kappa(PEOPLE, PEOPLE) == pytest.approx(1.0)


def test_quadratic_kappa_by_hand_on_a_small_table():
    # a = [1, 2, 3], b = [1, 3, 3]: observed weighted disagreement sum w*O = (1/16)/3 over rows;
    # expected from the margins. Weights w_ij = (i-j)^2 / 16.
    a, b = [1, 2, 3], [1, 3, 3]
    observed = (0 + 1 / 16 + 0) / 3
    pa = {1: 1 / 3, 2: 1 / 3, 3: 1 / 3}
    pb = {1: 1 / 3, 3: 2 / 3}
    expected = sum(pa[i] * pb[j] * (i - j) ** 2 / 16 for i in pa for j in pb)
    assert agreement.quadratic_kappa(a, b) == pytest.approx(1 - observed / expected)


def test_spearman_is_scipys():
    assert agreement.spearman(JUDGE, PEOPLE) == pytest.approx(spearmanr(JUDGE, PEOPLE).statistic)


def test_confusion_matrix_rows_are_people_columns_the_judge():
    matrix = agreement.confusion(JUDGE, PEOPLE)
    expected = confusion_matrix(PEOPLE, JUDGE, labels=[1, 2, 3, 4, 5])
    assert matrix == expected.tolist()
    # people gave 5 on rows 0 and 1... row 1: people 5, judge 4
    assert matrix[4][3] == 1
    assert sum(map(sum, matrix)) == len(JUDGE)


def test_ordinal_alpha_is_krippendorffs_with_gaps():
    matrix = np.array([
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    ])  # fmt: skip
    expected = krippendorff.alpha(matrix, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5])
    assert agreement.ordinal_alpha(matrix) == pytest.approx(expected)
    assert agreement.ordinal_alpha([[1, 2, 3, 4], [1, 2, 3, 4]]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [([3], [4], "fewer than 2 rows"), ([4, 4, 4], [1, 3, 5], "same score"), ([], [], "fewer than 2 rows")],
)
def test_degenerate_data_gives_none_with_a_reason(a, b, why):
    assert agreement.quadratic_kappa(a, b) is None
    assert agreement.spearman(a, b) is None
    estimate = agreement.estimate(agreement.quadratic_kappa, a, b)
    assert estimate.value is None and why in (estimate.reason or "")


def test_alpha_of_one_rated_answer_or_one_value_is_none():
    assert agreement.ordinal_alpha([[3, np.nan], [4, 2]]) is None  # one answer with two ratings
    assert agreement.ordinal_alpha([[3, 3, 3], [3, 3, 3]]) is None
    assert "fewer than 2 answers" in (agreement.alpha_estimate([[3, np.nan], [4, 2]]).reason or "")


def test_bootstrap_interval_is_seeded_and_brackets_the_value():
    first = agreement.estimate(agreement.quadratic_kappa, JUDGE, PEOPLE, resamples=300)
    again = agreement.estimate(agreement.quadratic_kappa, JUDGE, PEOPLE, resamples=300)
    assert first == again  # same data, same interval
    assert first.low is not None and first.high is not None
    assert first.low <= first.value <= first.high
    assert -1 <= first.low < first.high <= 1


def test_bootstrap_percentiles_by_hand_on_the_mean():
    # The percentile interval of the bias is the 2.5th/97.5th percentile of resampled means: recompute it
    # with the same seeded generator, independently of the module's loop.
    x, y = np.array(JUDGE, float), np.array(PEOPLE, float)
    rng = np.random.default_rng(agreement.SEED)
    means = [np.mean((x - y)[rng.integers(0, 12, 12)]) for _ in range(400)]
    low, high = np.percentile(means, [2.5, 97.5])
    got = agreement.estimate(agreement.mean_bias, x, y, resamples=400)
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_no_nan_ever():
    for a, b in (([1, 1], [1, 1]), ([1, 5], [5, 1]), ([2, 3, 2, 3], [2, 3, 3, 2])):
        for statistic in (agreement.quadratic_kappa, agreement.spearman, agreement.exact_agreement):
            value = statistic(a, b)
            assert value is None or math.isfinite(value)
