"""Statistics the scorecard and the gate stand on: intervals, paired tests, corrections, and a
simulation showing that the gate's decision rule keeps its promises on realistic judge scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from evals import stats
from evals.stats import PairedDelta

# --- mean_ci ------------------------------------------------------------------------------------------


def test_mean_ci_matches_a_hand_computation():
    # Item means 2, 4, 3, 5: mean 3.5, sd sqrt(5/3), t(0.975, df=3) = 3.182446 from a table.
    ci = stats.mean_ci({"a": [2], "b": [4], "c": [3], "d": [5]})
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    assert (ci.n_items, ci.n_scores) == (4, 4)
    assert ci.mean == pytest.approx(3.5)
    assert ci.ci_low == pytest.approx(3.5 - half, abs=1e-6)
    assert ci.ci_high == 5.0  # 3.5 + 2.05 leaves the 1–5 scale: cut at its end, losing no coverage
    wide = stats.mean_ci({"a": [2], "b": [4], "c": [3], "d": [5]}, scale=(-10, 10))
    assert wide.ci_high == pytest.approx(3.5 + half, abs=1e-6)


def test_no_mean_interval_leaves_the_scale():
    # The index once showed 4.33 [2.62, 6.05] and 3.00 [0.70, 5.30]: three items far apart.
    for scores in (
        {"a": [5], "b": [5], "c": [3]},
        {"a": [1], "b": [5], "c": [3]},
        {"a": [1], "b": [1], "c": [2]},
    ):
        ci = stats.mean_ci(scores)
        assert 1.0 <= ci.ci_low <= ci.mean <= ci.ci_high <= 5.0


def test_mean_ci_matches_scipy_t_interval_at_other_confidence():
    rng = np.random.default_rng(7)
    scores = {f"q{i}": rng.integers(1, 6, size=1).tolist() for i in range(25)}
    x = np.array([v[0] for v in scores.values()], dtype=float)
    low, high = sp.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=sp.sem(x))
    ci = stats.mean_ci(scores, confidence=0.9)
    assert (ci.ci_low, ci.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_mean_ci_is_clustered_by_item_not_by_sample():
    rng = np.random.default_rng(11)
    item_means = rng.integers(1, 6, size=10).astype(float)
    once = stats.mean_ci({f"q{i}": [m] for i, m in enumerate(item_means)})
    thrice = stats.mean_ci({f"q{i}": [m, m, m] for i, m in enumerate(item_means)})
    assert thrice.n_items == 10 and thrice.n_scores == 30
    # Three identical samples carry no more information than one: the interval must not narrow.
    assert (thrice.mean, thrice.ci_low, thrice.ci_high) == pytest.approx(
        (once.mean, once.ci_low, once.ci_high)
    )


def test_mean_ci_averages_items_first_when_sample_counts_differ():
    # One failed-and-dropped sample must not give the other item more weight.
    ci = stats.mean_ci({"a": [1], "b": [5, 5, 5]})
    assert ci.mean == pytest.approx(3.0)
    assert ci.n_scores == 4


def test_mean_of_items_is_the_mean_of_item_means_and_mean_ci_is_around_it():
    # item a scored [5, 5, 5], item b [1] (its other samples failed): (5 + 1) / 2, not (5+5+5+1) / 4
    by_item = {"a": [5.0, 5.0, 5.0], "b": [1.0], "c": []}
    assert stats.mean_of_items(by_item) == 3.0
    assert stats.mean_ci(by_item).mean == 3.0
    assert stats.mean_of_items({"x": []}) is None
    assert stats.mean_of_items({"a": [4.5, 3.5], "b": [2.25]}) == pytest.approx(3.125)  # fractional scores


def test_mean_ci_degenerate_cases():
    assert stats.mean_ci({}) == stats.MeanCI(0, 0, None, None, None)
    assert stats.mean_ci({"a": []}) == stats.MeanCI(0, 0, None, None, None)
    assert stats.mean_ci({"a": [4, 5], "b": []}) == stats.MeanCI(1, 2, 4.5, None, None)
    same = stats.mean_ci({"a": [4], "b": [4], "c": [2, 6]})
    assert (same.mean, same.ci_low, same.ci_high) == (4.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        stats.mean_ci({"a": [1], "b": [2]}, confidence=95)


# --- pass_rate ----------------------------------------------------------------------------------------


def test_pass_rate_wilson_7_of_10_by_hand_and_by_scipy():
    scores = {f"q{i}": [5 if i < 7 else 2] for i in range(10)}
    r = stats.pass_rate(scores)
    assert (r.n, r.successes, r.rate) == (10, 7, pytest.approx(0.7))
    z, n, p = 1.959963985, 10, 0.7
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert r.ci_low == pytest.approx(centre - half, abs=1e-6) == pytest.approx(0.3968, abs=1e-4)
    assert r.ci_high == pytest.approx(centre + half, abs=1e-6) == pytest.approx(0.8922, abs=1e-4)
    ref = sp.binomtest(7, 10).proportion_ci(method="wilson")
    assert (r.ci_low, r.ci_high) == (pytest.approx(ref.low), pytest.approx(ref.high))


def test_pass_rate_threshold_is_inclusive_and_configurable():
    scores = {"a": [3], "b": [4], "c": [5]}
    assert stats.pass_rate(scores).successes == 2
    assert stats.pass_rate(scores, threshold=3).successes == 3
    ref = sp.binomtest(3, 3).proportion_ci(confidence_level=0.9, method="wilson")
    r = stats.pass_rate(scores, threshold=3, confidence=0.9)
    assert (r.rate, r.ci_low, r.ci_high) == (1.0, pytest.approx(ref.low), pytest.approx(ref.high))


def test_pass_rate_with_samples_uses_per_item_fractions():
    r = stats.pass_rate({"a": [5, 5, 1, 1], "b": [4, 4, 4, 4], "c": [1, 2, 3, 1], "d": []})
    assert r.n == 3  # "d" has no scored sample
    assert r.rate == pytest.approx(0.5)  # (0.5 + 1 + 0) / 3
    assert r.successes == 2  # 1.5 effective passes, rounded half up
    ref = sp.binomtest(2, 3).proportion_ci(method="wilson")
    assert (r.ci_low, r.ci_high) == (pytest.approx(ref.low), pytest.approx(ref.high))
    # Identical samples are not extra trials: same interval as one sample per item.
    once = stats.pass_rate({f"q{i}": [5 if i % 3 else 1] for i in range(12)})
    thrice = stats.pass_rate({f"q{i}": [5 if i % 3 else 1] * 3 for i in range(12)})
    assert thrice == once


def test_pass_rate_without_items():
    assert stats.pass_rate({}) == stats.RateCI(0, 0, None, None, None)
    assert stats.pass_rate({"a": []}) == stats.RateCI(0, 0, None, None, None)


# --- paired_delta -------------------------------------------------------------------------------------


def _random_run(rng: np.random.Generator, ids: list[str], k: int) -> dict[str, list[float]]:
    return {i: rng.integers(1, 6, size=k).astype(float).tolist() for i in ids}


def test_paired_delta_matches_scipy_ttest_rel_on_item_means():
    rng = np.random.default_rng(3)
    ids = [f"q{i}" for i in range(30)]
    base, cand = _random_run(rng, ids, 3), _random_run(rng, ids, 3)
    d = stats.paired_delta(base, cand)
    b = np.array([np.mean(base[i]) for i in ids])
    c = np.array([np.mean(cand[i]) for i in ids])
    ref = sp.ttest_rel(c, b)
    low, high = sp.t.interval(0.95, len(ids) - 1, loc=(c - b).mean(), scale=sp.sem(c - b))
    assert d.n_pairs == 30
    assert d.delta == pytest.approx((c - b).mean())
    assert d.p_value == pytest.approx(ref.pvalue)
    assert (d.ci_low, d.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_paired_delta_ignores_unpaired_items():
    rng = np.random.default_rng(5)
    ids = [f"q{i}" for i in range(12)]
    base, cand = _random_run(rng, ids, 1), _random_run(rng, ids, 1)
    plain = stats.paired_delta(base, cand)
    extra_base = {**base, "only-base": [1.0], "failed-in-cand": [5.0]}
    extra_cand = {**cand, "only-cand": [5.0], "failed-in-cand": []}
    assert stats.paired_delta(extra_base, extra_cand) == plain


def test_paired_delta_degenerate_cases():
    assert stats.paired_delta({}, {"a": [3]}) == PairedDelta(0, None, None, None, None)
    assert stats.paired_delta({"a": [3]}, {"b": [3]}) == PairedDelta(0, None, None, None, None)
    assert stats.paired_delta({"a": [3], "b": [1]}, {"a": [5]}) == PairedDelta(1, 2.0, None, None, None)
    ids = "abcde"
    up = stats.paired_delta({i: [3] for i in ids}, {i: [4] for i in ids})
    assert up == PairedDelta(5, 1.0, 1.0, 1.0, 0.0, 0.0)
    flat = stats.paired_delta({i: [3] for i in ids}, {i: [3] for i in ids})
    assert flat == PairedDelta(5, 0.0, 0.0, 0.0, 1.0, 0.0)
    # Differences equal up to float rounding (13/3 - 10/3 vs 7/3 - 4/3) are equal, not a scipy warning.
    rounding = stats.paired_delta(
        {"a": [3, 3, 4], "b": [1, 1, 2], "c": [2, 2, 3]}, {"a": [4, 4, 5], "b": [2, 2, 3], "c": [3, 3, 4]}
    )
    assert rounding.p_value == 0.0 and rounding.ci_low == rounding.ci_high == pytest.approx(1.0)


# --- corrections --------------------------------------------------------------------------------------


def test_bonferroni_multiplies_by_the_family_size_and_caps_at_one():
    assert stats.bonferroni([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert stats.bonferroni([0.5, 0.6]) == [1.0, 1.0]


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(19)
    p = rng.uniform(0, 0.1, size=9).tolist()
    assert stats.benjamini_hochberg(p) == pytest.approx(sp.false_discovery_control(p).tolist())
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@pytest.mark.parametrize("correct", [stats.bonferroni, stats.benjamini_hochberg])
def test_corrections_pass_none_through_and_leave_it_out_of_the_family(correct):
    assert correct([0.01, None, 0.04, None]) == [
        *correct([0.01, 0.04])[:1],
        None,
        correct([0.01, 0.04])[1],
        None,
    ]
    assert correct([None, None]) == [None, None]
    assert correct([]) == []
    with pytest.raises(ValueError):
        correct([0.01, float("nan")])


# --- percentiles --------------------------------------------------------------------------------------


def test_percentiles():
    got = stats.percentiles(list(range(1, 101)))
    assert got == {50: pytest.approx(50.5), 95: pytest.approx(95.05), 99: pytest.approx(99.01)}
    assert stats.percentiles([120.0], qs=(50, 90)) == {50: 120.0, 90: 120.0}
    assert stats.percentiles([]) == {50: None, 95: None, 99: None}
    with pytest.raises(ValueError):
        stats.percentiles([1.0], qs=(101,))


def test_paired_delta_sd_is_the_differences_standard_deviation():
    d = stats.paired_delta({"a": [3], "b": [2], "c": [5]}, {"a": [4], "b": [4], "c": [5]})
    assert d.sd == pytest.approx(np.std([1, 2, 0], ddof=1))


def test_items_needed_is_the_normal_approximation_of_a_one_sided_test():
    from scipy.stats import norm

    z = norm.ppf(0.95) + norm.ppf(0.8)
    assert stats.items_needed(1.2, 0.3) == math.ceil((z * 1.2 / 0.3) ** 2)
    assert stats.items_needed(1.2, -0.3) == stats.items_needed(1.2, 0.3)
    assert stats.items_needed(None, 0.3) is None and stats.items_needed(1.0, 0) is None


@pytest.mark.parametrize("seed", range(40))
def test_spearman_is_scipys_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 80))
    lengths = rng.integers(1, 400, n) if seed % 2 else rng.integers(1, 4, n)  # many ties on odd seeds
    scores = rng.integers(1, 6, n)
    expected = sp.spearmanr(lengths, scores)
    got = stats.spearman(lengths.tolist(), scores.tolist())
    if len(set(lengths)) < 2 or len(set(scores)) < 2:
        assert got is None
        return
    assert got is not None
    assert got[0] == pytest.approx(expected.statistic, abs=1e-12)
    assert got[1] == pytest.approx(expected.pvalue, abs=1e-10)


def test_spearman_is_undefined_without_ranks_to_correlate():
    assert stats.spearman([1, 2], [2, 1]) is None  # two pairs: no degrees of freedom
    assert stats.spearman([3, 3, 3, 3], [1, 2, 3, 4]) is None
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == (-1.0, 0.0)
