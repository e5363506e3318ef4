"""The one decision (``evals.scorecard.decision``): each area's status agrees with the interval beside it,
no interval leaves the scale, and on realistic judge scores the rule rarely fails a model that did not
change while it catches one that did.

The simulation: a suite of 6 areas x 20 items, one sample per item. Each item has a fixed integer level
(its difficulty for this model), drawn around an area mean; areas differ (strong to weak). In each run the
judge's score is the level plus noise of -1, 0 or +1 (probabilities 1/4, 1/2, 1/4), clipped to 1..5,
independently per run: the same item scores alike across runs without scoring identically.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from evals.config import GateSettings
from evals.results import ResultRow
from evals.scorecard.decision import DELTA_RANGE, drift

AREAS, ITEMS = 6, 20
AREA_MEANS = np.array([4.5, 4.2, 3.9, 3.5, 3.0, 2.5])  # area 0 is strong, so a 2-point drop fits
FAILING = ("regressed", "not shown non-inferior")


def rows_of(run: np.ndarray, run_id: str = "r", items: int = ITEMS) -> list[ResultRow]:
    """Result rows of a run whose item ``i`` of area ``a`` scored ``run[a, i]`` (one sample each)."""
    return [
        ResultRow(
            run_id=run_id,
            id=f"a{a}-q{i}",
            sample=0,
            area=f"a{a}",
            question="q",
            reference="r",
            answer="x",
            finish_reason="stop",
            truncated=False,
            reasoning=None,
            score=float(run[a, i]),
            rationale=None,
            error=None,
            error_kind=None,
            judge="j",
            cached=False,
            answer_tokens_in=1,
            answer_tokens_out=1,
            answer_latency_ms=1.0,
            judge_tokens_in=1,
            judge_tokens_out=1,
            judge_latency_ms=1.0,
            item_hash=f"h{a}-{i}",
        )
        for a in range(run.shape[0])
        for i in range(min(items, run.shape[1]))
    ]


def _levels(rng: np.random.Generator, reps: int) -> np.ndarray:
    raw = rng.normal(AREA_MEANS[None, :, None], 0.8, size=(reps, AREAS, ITEMS))
    return np.clip(np.rint(raw), 1, 5)


def _judge(rng: np.random.Generator, levels: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    noise = rng.choice([-1, 0, 1], p=[0.25, 0.5, 0.25], size=levels.shape)
    return np.clip(levels + shift + noise, 1, 5)


def _statuses(
    base: np.ndarray, cand: np.ndarray, settings: GateSettings | None = None
) -> tuple[list[str], str]:
    report = drift(rows_of(cand, "c"), rows_of(base, "b"), settings or GateSettings())
    return [report.areas[f"a{a}"].status for a in range(AREAS)], report.overall.status


@functools.cache
def _same_distribution_rates(reps: int = 400) -> tuple[float, float]:
    """(an area regressed, the run failed) over ``reps`` seeds of identical models."""
    rng = np.random.default_rng(20240601)
    levels = _levels(rng, reps)
    base, cand = _judge(rng, levels), _judge(rng, levels)
    results = [_statuses(base[r], cand[r]) for r in range(reps)]
    regressed = np.array(["regressed" in areas for areas, _ in results])
    failed = np.array(["regressed" in areas or overall in FAILING for areas, overall in results])
    print(
        f"\nsame distribution, {reps} seeds: an area regressed {regressed.mean():.1%}, run failed {failed.mean():.1%}"
    )
    return float(regressed.mean()), float(failed.mean())


def test_simulation_same_model_rarely_flags_an_area():
    regressed, _ = _same_distribution_rates()
    assert regressed <= 0.05


def test_simulation_same_model_rarely_fails_the_run():
    _, failed = _same_distribution_rates()
    assert failed <= 0.05


def test_simulation_a_two_point_drop_in_one_area_is_caught_and_kept_to_that_area():
    rng = np.random.default_rng(20240602)
    reps = 150
    levels = _levels(rng, reps)
    shift = np.zeros((AREAS, 1))
    shift[0] = -2.0
    base, cand = _judge(rng, levels), _judge(rng, levels, shift)
    statuses = [_statuses(base[r], cand[r])[0] for r in range(reps)]
    caught = sum(s[0] == "regressed" for s in statuses) / reps
    exact = sum(s[0] == "regressed" and "regressed" not in s[1:] for s in statuses) / reps
    print(f"\n2-point drop in area 0, {reps} seeds: caught {caught:.1%}, exactly area 0 flagged {exact:.1%}")
    assert caught >= 0.95 and exact >= 0.95


def test_simulation_an_improvement_everywhere_never_fails():
    rng = np.random.default_rng(20240603)
    reps = 100
    levels = _levels(rng, reps)
    base, cand = _judge(rng, levels), _judge(rng, levels, 1.0)
    results = [_statuses(base[r], cand[r]) for r in range(reps)]
    assert not any("regressed" in areas or overall in FAILING for areas, overall in results)
    assert sum(overall == "improved" for _, overall in results) >= 0.95 * reps


@pytest.mark.parametrize("correction", ["bonferroni", "bh"])
def test_every_area_status_agrees_with_the_interval_shown_beside_it(correction):
    """Significant exactly when the interval excludes 0, under either correction, on many random pairs."""
    settings = GateSettings(correction=correction)
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(60):
        levels = _levels(rng, 1)[0]
        shift = rng.choice([0.0, -0.5, -1.0, 0.7], size=(AREAS, 1))
        report = drift(rows_of(_judge(rng, levels, shift), "c"), rows_of(_judge(rng, levels), "b"), settings)
        for d in report.areas.values():
            seen.add(d.status)
            assert d.delta is not None and d.delta_ci_low is not None and d.delta_ci_high is not None
            assert -DELTA_RANGE <= d.delta_ci_low <= d.delta <= d.delta_ci_high <= DELTA_RANGE
            excludes_zero = d.delta_ci_high < 0 or d.delta_ci_low > 0
            assert (d.p_adjusted is not None and d.p_adjusted < settings.alpha) == excludes_zero, d
            if d.status == "regressed":
                assert d.delta_ci_high < 0 and d.delta <= -settings.min_effect
            if d.status == "improved":
                assert d.delta_ci_low > 0 and d.delta >= settings.min_effect
            if d.status == "not shown non-inferior":
                assert d.delta_ci_low <= -settings.margin
            if d.status == "unchanged":
                assert d.delta_ci_low > -settings.margin
            assert "simultaneous" in d.interval or "false coverage" in d.interval
    assert {"regressed", "unchanged"} <= seen


def test_an_area_too_thin_cannot_decide_and_says_how_many_more_items_would_tell():
    rng = np.random.default_rng(8)
    levels = _levels(rng, 1)[0]
    base, cand = rows_of(_judge(rng, levels), "b"), rows_of(_judge(rng, levels), "c")
    thin = [r for r in cand if r.area != "a5" or r.id in ("a5-q0", "a5-q1", "a5-q2")]
    report = drift(thin, base, GateSettings())
    d = report.areas["a5"]
    assert d.status == "cannot decide" and d.n_pairs == 3
    assert d.delta_ci_low is None and d.needed is not None and d.needed >= 2
    assert d.interval_text() == "(too few pairs for an interval)"


def test_the_overall_bound_is_one_sided_and_decides_non_inferiority():
    rng = np.random.default_rng(9)
    levels = _levels(rng, 1)[0]
    base = _judge(rng, levels)
    report = drift(rows_of(np.clip(base - 0.4, 1, 5), "c"), rows_of(base, "b"), GateSettings())
    o = report.overall
    assert o.delta_ci_high is None and o.interval == "one-sided 95% lower bound"
    assert o.delta_ci_low is not None and o.delta_ci_low <= -0.3 and o.status in FAILING
    assert o.interval_text().startswith("≥ ")
