"""Statistics the scorecard and the gate stand on: intervals, paired tests, corrections, and a
simulation showing that the gate's decision rule keeps its promises on realistic judge scores."""

from __future__ import annotations

import functools
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
    assert ci.ci_high == pytest.approx(3.5 + half, abs=1e-6)


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


def test_holm_worked_example():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_bounded_and_at_least_the_raw_p():
    rng = np.random.default_rng(17)
    p = rng.uniform(0, 0.2, size=15).tolist()
    adj = stats.holm(p)
    order = np.argsort(p)
    assert all(adj[order[k]] <= adj[order[k + 1]] for k in range(len(p) - 1))
    assert all(a >= r and a <= 1 for a, r in zip(adj, p, strict=True))
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0]


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(19)
    p = rng.uniform(0, 0.1, size=9).tolist()
    assert stats.benjamini_hochberg(p) == pytest.approx(sp.false_discovery_control(p).tolist())
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@pytest.mark.parametrize("correct", [stats.holm, stats.benjamini_hochberg])
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


# --- classify and non_inferior ------------------------------------------------------------------------


def _delta(value: float, n: int = 20) -> PairedDelta:
    return PairedDelta(n, value, value - 0.2, value + 0.2, 0.001)


def test_classify_each_status():
    assert stats.classify(None, None) == "new"
    assert stats.classify(PairedDelta(0, None, None, None, None), None) == "new"
    assert stats.classify(_delta(-0.8), 0.01) == "regressed"
    assert stats.classify(_delta(-0.5), 0.01) == "regressed"  # the threshold itself counts
    assert stats.classify(_delta(0.8), 0.01) == "improved"
    assert stats.classify(_delta(0.1), 0.5) == "unchanged"


def test_classify_a_lower_mean_alone_is_unchanged():
    assert stats.classify(_delta(-0.2), 0.001) == "unchanged"  # significant but too small to matter
    assert stats.classify(_delta(-0.8), 0.2) == "unchanged"  # large but could be noise
    assert stats.classify(_delta(-0.8), 0.05) == "unchanged"  # alpha is strict
    assert stats.classify(PairedDelta(1, -3.0, None, None, None), None) == "unchanged"  # one pair, no test
    assert stats.classify(_delta(-0.8), 0.01, min_effect=1.0) == "unchanged"


def test_non_inferior():
    assert stats.non_inferior(PairedDelta(50, -0.1, -0.25, 0.05, 0.2)) is True
    assert stats.non_inferior(PairedDelta(50, -0.1, -0.35, 0.15, 0.4)) is False
    assert stats.non_inferior(PairedDelta(50, -0.1, -0.3, 0.1, 0.3)) is False  # must be above the margin
    assert stats.non_inferior(PairedDelta(50, -0.1, -0.35, 0.15, 0.4), margin=0.5) is True
    assert stats.non_inferior(PairedDelta(1, -0.1, None, None, None)) is None


# --- percentiles --------------------------------------------------------------------------------------


def test_percentiles():
    got = stats.percentiles(list(range(1, 101)))
    assert got == {50: pytest.approx(50.5), 95: pytest.approx(95.05), 99: pytest.approx(99.01)}
    assert stats.percentiles([120.0], qs=(50, 90)) == {50: 120.0, 90: 120.0}
    assert stats.percentiles([]) == {50: None, 95: None, 99: None}
    with pytest.raises(ValueError):
        stats.percentiles([1.0], qs=(101,))


# --- simulation: the gate's decision rule on realistic judge scores -----------------------------------
#
# A suite of 6 areas x 20 items, one sample per item. Each item has a fixed integer level (its
# difficulty for this model), drawn around an area mean; areas differ (strong to weak). In each run
# the judge's score is the level plus noise of -1, 0 or +1 (probabilities 1/4, 1/2, 1/4), clipped to
# 1..5, independently per run: the same item scores alike across runs without scoring identically.
# The rule is the gate's: per-area paired delta, Holm across areas, regressed = adjusted p < 0.05 and
# delta <= -0.5; plus overall non-inferiority at margin 0.3 on the 95 % interval.

AREAS, ITEMS = 6, 20
AREA_MEANS = np.array([4.5, 4.2, 3.9, 3.5, 3.0, 2.5])  # area 0 is strong, so a 2-point drop fits


def _levels(rng: np.random.Generator, reps: int) -> np.ndarray:
    raw = rng.normal(AREA_MEANS[None, :, None], 0.8, size=(reps, AREAS, ITEMS))
    return np.clip(np.rint(raw), 1, 5)


def _judge(rng: np.random.Generator, levels: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    noise = rng.choice([-1, 0, 1], p=[0.25, 0.5, 0.25], size=levels.shape)
    return np.clip(levels + shift + noise, 1, 5)


def _by_item(run: np.ndarray, areas: range) -> dict[str, list[float]]:
    return {f"a{a}-q{i}": [float(run[a, i])] for a in areas for i in range(ITEMS)}


def _area_statuses(base: np.ndarray, cand: np.ndarray) -> list[str]:
    """Status of every area in one comparison, as the gate computes them (Holm across areas)."""
    deltas = [
        stats.paired_delta(_by_item(base, range(a, a + 1)), _by_item(cand, range(a, a + 1)))
        for a in range(AREAS)
    ]
    adjusted = stats.holm([d.p_value for d in deltas])
    return [stats.classify(d, p, alpha=0.05, min_effect=0.5) for d, p in zip(deltas, adjusted, strict=True)]


def _overall_non_inferior(base: np.ndarray, cand: np.ndarray) -> bool | None:
    overall = stats.one_sided_delta(_by_item(base, range(AREAS)), _by_item(cand, range(AREAS)))
    return stats.non_inferior(overall, margin=0.3)


@functools.cache
def _same_distribution_rates(reps: int = 400) -> tuple[float, float, float]:
    """(any area regressed, non-inferiority failed, either) over ``reps`` seeds of identical models."""
    rng = np.random.default_rng(20240601)
    levels = _levels(rng, reps)
    base, cand = _judge(rng, levels), _judge(rng, levels)
    regressed = np.array(["regressed" in _area_statuses(base[r], cand[r]) for r in range(reps)])
    ni_failed = np.array([_overall_non_inferior(base[r], cand[r]) is not True for r in range(reps)])
    rates = float(regressed.mean()), float(ni_failed.mean()), float((regressed | ni_failed).mean())
    print(
        f"\nsame distribution, {reps} seeds: gate fails {rates[2]:.1%} "
        f"(an area regressed {rates[0]:.1%}, non-inferiority failed {rates[1]:.1%})"
    )
    return rates


def test_simulation_same_model_rarely_flags_an_area():
    regressed, _, _ = _same_distribution_rates()
    assert regressed <= 0.05


def test_simulation_same_model_rarely_fails_the_gate():
    _, _, failed = _same_distribution_rates()
    assert failed <= 0.05


def test_simulation_a_two_point_drop_in_one_area_is_caught_and_kept_to_that_area():
    rng = np.random.default_rng(20240602)
    reps = 200
    levels = _levels(rng, reps)
    shift = np.zeros((AREAS, 1))
    shift[0] = -2.0
    base, cand = _judge(rng, levels), _judge(rng, levels, shift)
    statuses = [_area_statuses(base[r], cand[r]) for r in range(reps)]
    caught = sum(s[0] == "regressed" for s in statuses) / reps
    others = sum("regressed" in s[1:] for s in statuses) / reps
    exact = sum(s[0] == "regressed" and "regressed" not in s[1:] for s in statuses) / reps
    print(
        f"\n2-point drop in area 0, {reps} seeds: caught {caught:.1%}, another area flagged {others:.1%}, "
        f"exactly area 0 flagged {exact:.1%}"
    )
    assert caught >= 0.95
    assert exact >= 0.95


def test_simulation_an_improvement_everywhere_never_fails():
    rng = np.random.default_rng(20240603)
    reps = 150
    levels = _levels(rng, reps)
    base, cand = _judge(rng, levels), _judge(rng, levels, 1.0)
    regressed = sum("regressed" in _area_statuses(base[r], cand[r]) for r in range(reps))
    ni_failed = sum(_overall_non_inferior(base[r], cand[r]) is not True for r in range(reps))
    print(f"\n+1 everywhere, {reps} seeds: an area regressed {regressed}, non-inferiority failed {ni_failed}")
    assert regressed == 0
    assert ni_failed == 0


def test_paired_delta_sd_is_the_differences_standard_deviation():
    d = stats.paired_delta({"a": [3], "b": [2], "c": [5]}, {"a": [4], "b": [4], "c": [5]})
    assert d.sd == pytest.approx(np.std([1, 2, 0], ddof=1))


def test_items_needed_is_the_normal_approximation_of_a_one_sided_test():
    from scipy.stats import norm

    z = norm.ppf(0.95) + norm.ppf(0.8)
    assert stats.items_needed(1.2, 0.3) == math.ceil((z * 1.2 / 0.3) ** 2)
    assert stats.items_needed(1.2, -0.3) == stats.items_needed(1.2, 0.3)
    assert stats.items_needed(None, 0.3) is None and stats.items_needed(1.0, 0) is None
