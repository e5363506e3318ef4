"""Per-answer conformal intervals (issue 21 item 4): the finite-sample quantile, the ordinal boundary, the
pass-score straddle, and coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from evals.trust.conformal import (
    AnswerInterval,
    ConformalWidth,
    answer_interval,
    conformal_width,
    doubtful,
    residuals,
    straddles,
)


def test_the_width_is_the_finite_sample_quantile_of_the_residuals():
    tenths = [i / 10 for i in range(19)]  # 0.0 ... 1.8, shuffled below
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(tenths).tolist()
    # n = 19, alpha = 0.1: (n + 1)(1 − alpha) = 18 (20 · 0.9 is 18.000000000000004 in floats)
    width = conformal_width(shuffled, alpha=0.1)
    assert (width.rank, width.width) == (18, 1.7)
    assert width.note == (
        "split conformal from 19 labelled answers: the judge's score ± 1.7, holding a person's score for "
        "at least 90 % of answers like them (exchangeable with the labelled ones)"
    )
    assert conformal_width(shuffled, alpha=0.2).rank == 16  # ⌈20 · 0.8⌉
    assert conformal_width(shuffled[:9], alpha=0.1).rank == 9  # the fewest that give a 90 % width
    assert conformal_width([0, 0, 1, 2, 0, 1, 0, 0, 1, 0, 0, 0], alpha=0.2).width == 1  # rank ⌈13 · 0.8⌉ = 11


def test_too_few_residuals_make_every_interval_the_whole_scale():
    width = conformal_width([0.0] * 8, alpha=0.1)
    assert (width.rank, width.width) == (None, 4.0)
    assert width.note == (
        "8 labelled answers are too few for 90 % intervals (at least 9 needed): every interval is the whole scale"
    )
    assert answer_interval(3.0, width) == AnswerInterval(judge_score=3.0, low=1, high=5)
    assert conformal_width([], alpha=0.5).rank is None


def test_intervals_are_cut_to_the_scale_and_rounded_outward_to_whole_scores():
    assert answer_interval(4.0, 1.0) == AnswerInterval(judge_score=4.0, low=3, high=5)
    assert answer_interval(5.0, 1.0) == AnswerInterval(judge_score=5.0, low=4, high=5)
    assert answer_interval(1.0, 2.0) == AnswerInterval(judge_score=1.0, low=1, high=3)
    assert answer_interval(2.0, 0.0) == AnswerInterval(judge_score=2.0, low=2, high=2)
    assert answer_interval(3.5, 0.4) == AnswerInterval(judge_score=3.5, low=3, high=4)  # never empty
    assert answer_interval(10 / 3, 1 / 3) == AnswerInterval(judge_score=10 / 3, low=3, high=4)  # float noise
    assert answer_interval(3.0, 7.5).low == 1 and answer_interval(3.0, 7.5).high == 5
    with pytest.raises(ValueError, match="not negative"):
        answer_interval(3.0, -1.0)


def test_an_interval_straddles_the_pass_score_when_it_holds_a_pass_and_a_fail():
    assert straddles(AnswerInterval(judge_score=4, low=3, high=5), 4)
    assert not straddles(AnswerInterval(judge_score=5, low=4, high=5), 4)
    assert not straddles(AnswerInterval(judge_score=2, low=1, high=3), 4)
    assert straddles(AnswerInterval(judge_score=3, low=3, high=4), 3.5)
    assert not straddles(AnswerInterval(judge_score=4, low=4, high=4), 4)


def test_doubtful_answers_are_those_whose_interval_straddles():
    judge = {"a": 5.0, "b": 4.0, "c": 3.0, "d": 1.0, "e": 2.0}
    assert doubtful(judge, 1.0, pass_score=4) == ["b", "c"]
    assert doubtful(judge, 0.0, pass_score=4) == []
    assert doubtful(
        judge, ConformalWidth(n_residuals=0, alpha=0.1, rank=None, width=4.0, note=""), 4
    ) == list(judge)


def test_residuals_pair_answers_scored_by_both():
    assert residuals({"a": 3, "b": 5, "c": 1}, {"a": 4.0, "b": 5.0, "x": 2.0}) == [1.0, 0.0]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        conformal_width([1.0], alpha=1.0)
    with pytest.raises(ValueError, match="not negative"):
        conformal_width([1.0, -0.5])


def _population(rng: np.random.Generator, size: int, repeats: int):
    """People's whole scores and a judge (+0.8 too kind, noisy) scoring each answer ``repeats`` times."""
    latent = 3.0 + rng.normal(0, 1.1, size)
    people = np.clip(np.rint(latent + rng.normal(0, 0.6, size)), 1, 5)
    verdicts = np.clip(np.rint(latent[:, None] + 0.8 + rng.normal(0, 0.7, (size, repeats))), 1, 5)
    return people, verdicts.mean(axis=1)


@pytest.mark.parametrize(("alpha", "repeats"), [(0.1, 1), (0.2, 1), (0.1, 3)])
def test_intervals_hold_the_peoples_score_at_their_nominal_coverage(alpha, repeats):
    """300 random splits: 80 labelled answers calibrate, 400 new ones are checked."""
    rng = np.random.default_rng(42)
    coverage, whole = [], []
    for _ in range(300):
        people, judge = _population(rng, 480, repeats)
        width = conformal_width(np.abs(people[:80] - judge[:80]).tolist(), alpha=alpha)
        intervals = [answer_interval(score, width) for score in judge[80:].tolist()]
        low = np.array([interval.low for interval in intervals])
        high = np.array([interval.high for interval in intervals])
        coverage.append(np.mean((low <= people[80:]) & (people[80:] <= high)))
        whole.append(np.mean((low == 1) & (high == 5)))
    print(
        f"\nalpha {alpha}, {repeats} verdict(s) per answer: coverage {np.mean(coverage):.3f}, "
        f"whole-scale intervals {np.mean(whole):.3f}"
    )
    assert np.mean(coverage) >= 1 - alpha - 0.01  # whole scores make it conservative (0.975 at alpha 0.1)
    assert np.mean(whole) < 0.5  # most intervals still tell something


def test_the_width_gives_exactly_its_rank_over_n_plus_one_on_continuous_scores():
    """Without ties, split conformal covers k / (n + 1) of new answers on average: 73/81 for n = 80 at
    alpha 0.1. One rank off would give 72/81 or 74/81."""
    rng = np.random.default_rng(9)
    covered = []
    for _ in range(2000):
        errors = np.abs(rng.standard_t(4, 280) * 0.6 + 0.3)
        width = conformal_width(errors[:80].tolist(), alpha=0.1)
        covered.append(np.mean(errors[80:] <= width.width))
    assert np.mean(covered) == pytest.approx(73 / 81, abs=0.005)
