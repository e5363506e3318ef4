"""Corrected means (issue 21 item 2): PPI++ against ppi-python and a hand-worked example, coverage by
simulation (a judge biased on some areas), and what is said when there are too few human scores."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

from evals.trust.ppi import MIN_HUMAN, corrected_delta, corrected_mean

Z95 = 1.959963984540054


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"item-{i}" for i in range(start, start + n)]


def _area(rng: np.random.Generator, n_items: int, n_human: int, bias: float, center: float = 3.2):
    """One area: people's and judge's whole scores of ``n_items`` answers, and a random draw of people's."""
    latent = center + rng.normal(0, 1.0, n_items)
    people = np.clip(np.rint(latent + rng.normal(0, 0.6, n_items)), 1, 5)
    judge = np.clip(np.rint(latent + bias + rng.normal(0, 0.7, n_items)), 1, 5)
    drawn = rng.choice(n_items, n_human, replace=False)
    ids = _ids(n_items)
    judge_scores = dict(zip(ids, judge.tolist(), strict=True))
    human_scores = {ids[i]: float(people[i]) for i in drawn}
    return people, judge, drawn, judge_scores, human_scores


@pytest.fixture(scope="module")
def ppi_py():
    if importlib.util.find_spec("ppi_py") is None:  # the `test` extra installs it
        if os.environ.get("CI"):
            raise RuntimeError("ppi-python is not installed, and CI must check the estimator against it")
        pytest.skip("ppi-python is not installed (pip install -e '.[test]')")
    import ppi_py

    return ppi_py


@pytest.mark.parametrize(
    ("bias", "noise", "n_human"),
    [(0.8, 0.7, 100), (0.0, 0.3, 60), (-0.5, 2.5, 200), (0.3, 0.0, 25)],
)
def test_the_estimate_and_interval_are_ppi_pythons(ppi_py, bias, noise, n_human):
    rng = np.random.default_rng(2023)
    latent = 3.0 + rng.normal(0, 0.9, 800)
    people = np.clip(np.rint(latent + rng.normal(0, 0.5, 800)), 1, 5)
    judge = np.clip(np.rint(latent + bias + rng.normal(0, noise, 800)), 1, 5)
    drawn = np.zeros(800, dtype=bool)
    drawn[rng.choice(800, n_human, replace=False)] = True
    ids = _ids(800)
    ours = corrected_mean(
        dict(zip(ids, judge.tolist(), strict=True)), {ids[i]: people[i] for i in np.flatnonzero(drawn)}
    )
    # ppi-python takes the people's and judge's scores of the drawn answers and the judge's of the others.
    y, f, f_other = people[drawn], judge[drawn], judge[~drawn]
    estimate = ppi_py.ppi_mean_pointestimate(y, f, f_other, lam=None)
    low, high = ppi_py.ppi_mean_ci(y, f, f_other, alpha=0.05, lam=None)
    assert 1 < low[0] < high[0] < 5  # inside the scale, where our clipping changes nothing
    assert ours.estimate == pytest.approx(float(estimate[0]), abs=1e-9)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((float(low[0]), float(high[0])), abs=1e-9)
    assert ours.lam is not None and 0 <= ours.lam <= 1
    assert float(ppi_py.ppi_mean_pointestimate(y, f, f_other, lam=ours.lam)[0]) == pytest.approx(
        ours.estimate, abs=1e-12
    )  # the same power-tuning weight
    classical_low, _ = ppi_py.classical_mean_ci(y, alpha=0.05)
    assert ours.human_mean == pytest.approx(float(y.mean()))
    # the effective sample size: the classical interval's width² over ours, times n
    classical_half = float(y.mean() - np.ravel(classical_low)[0])
    assert ours.effective_n == pytest.approx(n_human * (classical_half / (ours.ci_high - ours.estimate)) ** 2)


def test_a_hand_worked_example():
    # People scored a, b, c (2, 4, 4); the judge said 3, 4, 5 there and 5, 5 on d, e.
    # λ = Cov(y, f) / ((1 + n/N) Var(f)) = (2/3) / ((1 + 3/2) · 0.8) = 1/3 (Cov over 3, Var over all 5 ddof 1)
    # estimate = mean(y − f/3) + mean(f_other)/3 = 2 + 5/3 = 11/3
    # variance = Var(f_other/3)/2 + Var(y − f/3)/3 = 0 + (14/27)/3 = 14/81 (ddof 0, as ppi-python)
    result = corrected_mean({"a": 3, "b": 4, "c": 5, "d": 5, "e": 5}, {"a": 2, "b": 4, "c": 4}, min_human=3)
    assert result.lam == pytest.approx(1 / 3)
    assert result.estimate == pytest.approx(11 / 3)
    half = Z95 * math.sqrt(14) / 9
    assert (result.ci_low, result.ci_high) == pytest.approx((11 / 3 - half, 11 / 3 + half))
    # the people's own mean has variance (8/9)/3 = 8/27: n · (8/27) / (14/81) = 36/7 human scores' worth
    assert result.effective_n == pytest.approx(36 / 7)
    assert result.gain == pytest.approx(12 / 7)
    assert (result.n_human, result.n_judge, result.judge_mean, result.human_mean) == (3, 5, 4.4, 10 / 3)


def test_a_judge_off_by_a_constant_is_fully_corrected():
    rng = np.random.default_rng(7)
    _, _, _, judge, human = _area(rng, 600, 80, bias=0.0)
    shifted = {item: score + 0.8 for item, score in judge.items()}
    plain, corrected = corrected_mean(judge, human), corrected_mean(shifted, human)
    assert corrected.judge_mean == pytest.approx(plain.judge_mean + 0.8)
    for field in ("estimate", "ci_low", "ci_high", "lam", "effective_n"):
        assert getattr(corrected, field) == pytest.approx(getattr(plain, field)), field


def test_a_judge_that_tells_nothing_leaves_the_peoples_mean_and_its_interval():
    rng = np.random.default_rng(11)
    people = rng.integers(1, 6, 300).astype(float)
    judge = 6 - people + rng.normal(0, 0.1, 300)  # backwards: λ clips to 0
    ids = _ids(300)
    result = corrected_mean(
        dict(zip(ids, judge.tolist(), strict=True)), dict(zip(ids[:50], people[:50], strict=True))
    )
    assert result.lam == 0
    assert result.estimate == pytest.approx(people[:50].mean())
    half = Z95 * people[:50].std() / math.sqrt(50)
    assert (result.ci_low, result.ci_high) == pytest.approx((result.estimate - half, result.estimate + half))
    assert result.gain == pytest.approx(1.0)


def test_when_people_scored_every_item_the_estimate_is_their_mean():
    ids = _ids(30)
    people = {item: float(1 + i % 5) for i, item in enumerate(ids)}
    result = corrected_mean({item: 5.0 for item in ids}, people)
    assert result.estimate == pytest.approx(3.0)
    assert result.lam == 0 and result.n_human == result.n_judge == 30


def test_the_interval_stays_on_the_scale():
    ids = _ids(200)
    people = {item: 5.0 if i % 25 else 4.0 for i, item in enumerate(ids[:40])}
    judge = {item: 5.0 if i % 20 else 4.0 for i, item in enumerate(ids)}
    result = corrected_mean(judge, people)
    assert result.ci_high == 5.0 and result.ci_low is not None and 4 < result.ci_low < 5


def test_too_few_human_scores_give_no_estimate_and_say_so():
    rng = np.random.default_rng(3)
    _, judge_scores, _, judge, human = _area(rng, 400, MIN_HUMAN - 1, bias=0.8)
    result = corrected_mean(judge, human)
    assert (result.estimate, result.ci_low, result.ci_high, result.lam, result.gain) == (None,) * 5
    assert result.n_human == 19 and result.n_judge == 400
    assert result.judge_mean == pytest.approx(judge_scores.mean())
    assert result.note == (
        "not corrected: 19 human scores drawn at random in this area, fewer than the 20 a correction needs; "
        "the judge's mean is shown alone"
    )
    one_more = dict(human, **{item: 3.0 for item in list(set(judge) - set(human))[:1]})
    enough = corrected_mean(judge, one_more)
    assert enough.estimate is not None and enough.n_human == 20
    assert "20 human scores" in enough.note and "drawn at random" in enough.note and "λ = " in enough.note
    assert corrected_mean(judge, human, min_human=10).estimate is not None  # the threshold is a parameter


def test_human_scores_of_answers_the_judge_did_not_score_are_left_out_and_counted():
    rng = np.random.default_rng(5)
    _, _, _, judge, human = _area(rng, 500, 60, bias=0.8)
    failed = list(human)[:3]
    without = {item: score for item, score in judge.items() if item not in failed}
    result = corrected_mean(without, human)
    assert (result.n_human, result.n_unjudged, result.n_judge) == (57, 3, 497)
    kept = {item: score for item, score in human.items() if item not in failed}
    assert result.estimate == pytest.approx(corrected_mean(without, kept).estimate)
    assert result.note.endswith("; 3 human scores of answers the judge did not score left out")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="level"):
        corrected_mean({"a": 3.0}, {"a": 3.0}, level=95)
    with pytest.raises(ValueError, match="min_human"):
        corrected_mean({"a": 3.0}, {"a": 3.0}, min_human=1)


def test_the_corrected_interval_covers_the_peoples_mean_and_the_judges_does_not():
    """500 simulated runs of four areas of 1000 answers; the judge is +0.8 too kind on two areas, −0.4 on
    one, and noisy; people scored 60–200 answers drawn at random per area. The people's mean is theirs
    over all the run's answers."""
    rng = np.random.default_rng(21)
    runs, n_items = 500, 1000
    biases = np.array([0.0, 0.8, 0.8, -0.4])
    centers = np.array([3.5, 3.0, 2.6, 3.8])
    latent = centers[None, :, None] + rng.normal(0, 1.0, (runs, 4, n_items))
    people = np.clip(np.rint(latent + rng.normal(0, 0.6, latent.shape)), 1, 5)
    judge = np.clip(np.rint(latent + biases[None, :, None] + rng.normal(0, 0.7, latent.shape)), 1, 5)
    sizes = rng.integers(60, 201, (runs, 4))
    truth = people.mean(axis=-1)
    # the judge's own 95 % interval, as a scorecard without people shows it
    half = 1.962 * judge.std(axis=-1, ddof=1) / math.sqrt(n_items)
    raw = np.abs(judge.mean(axis=-1) - truth) <= half
    ids = _ids(n_items)
    covered = np.zeros((runs, 4), dtype=bool)
    gains = []
    for run in range(runs):
        for area in range(4):
            drawn = rng.choice(n_items, sizes[run, area], replace=False)
            result = corrected_mean(
                dict(zip(ids, judge[run, area].tolist(), strict=True)),
                {ids[i]: people[run, area, i] for i in drawn},
            )
            assert result.ci_low is not None and result.ci_high is not None
            covered[run, area] = result.ci_low <= truth[run, area] <= result.ci_high
            gains.append(result.gain)
    print(f"\ncorrected interval covers the people's mean: {covered.mean(axis=0)} (all {covered.mean():.3f})")
    print(f"judge's own interval covers it:               {raw.mean(axis=0)} (all {raw.mean():.3f})")
    print(f"mean effective-sample gain: {np.mean(gains):.2f}x")
    assert covered.mean() >= 0.93
    assert (covered.mean(axis=0) >= 0.93).all()
    assert raw[:, 1:].mean() < 0.05  # the biased areas: the judge's interval is simply elsewhere
    assert raw.mean() < 0.5
    assert np.mean(gains) > 1.2  # the judge's scores are worth more human scores than were given


def test_a_corrected_delta_removes_a_judge_that_overstates_a_change():
    """The candidate's answers got longer and the judge likes length (+0.6 in the judge's eyes only):
    people see no change, the judge's Δ says +0.6, the corrected Δ says about 0."""
    rng = np.random.default_rng(8)
    n_items = 1000
    quality = 3.2 + rng.normal(0, 1.0, n_items)
    people_base = np.clip(np.rint(quality + rng.normal(0, 0.5, n_items)), 1, 5)
    people_cand = np.clip(np.rint(quality + rng.normal(0, 0.5, n_items)), 1, 5)
    judge_base = np.clip(quality + rng.normal(0, 0.5, n_items), 1, 5)
    judge_cand = np.clip(quality + 0.6 + rng.normal(0, 0.5, n_items), 1, 5)
    ids = _ids(n_items)
    drawn = [ids[i] for i in rng.choice(n_items, 150, replace=False)]
    index = {item: i for i, item in enumerate(ids)}
    result = corrected_delta(
        dict(zip(ids, judge_base.tolist(), strict=True)),
        dict(zip(ids, judge_cand.tolist(), strict=True)),
        {item: people_base[index[item]] for item in drawn},
        {item: people_cand[index[item]] for item in drawn},
    )
    assert result.judge_mean == pytest.approx(0.6, abs=0.1)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < (people_cand - people_base).mean() < result.ci_high
    assert result.ci_high < 0.5
    assert result.note.startswith("PPI++ corrected Δ from 150 human scores")
    # an item people scored in one run only does not pair
    one_sided = corrected_delta(
        dict(zip(ids, judge_base.tolist(), strict=True)),
        dict(zip(ids, judge_cand.tolist(), strict=True)),
        {item: people_base[index[item]] for item in drawn},
        {item: people_cand[index[item]] for item in drawn[:10]},
    )
    assert one_sided.n_human == 10 and one_sided.estimate is None and "judge's Δ" in one_sided.note
