"""Judge noise: flip rates, variance components and SE_judge on fixed data, and the regression rule that
keeps the judge's own noise from being called a regression (scorecard and gate)."""

import math

import pandas as pd
import pytest
from builders import make_run

from evals.config import GateSettings
from evals.records import Judgment
from evals.render.pages import render_html, render_markdown
from evals.scorecard import build_scorecard
from evals.scorecard.decision import decide
from evals.store import Store
from evals.trust.noise import Scored, combined_se, judge_noise, run_noise

# item > answer (sample) > verdict (repeat): 2 items, 2 samples each, 2 verdicts per answer
FIXED = {
    ("a", 0): [4, 5],
    ("a", 1): [3, 3],
    ("b", 0): [2, 2],
    ("b", 1): [1, 2],
}


def verdicts(cells=FIXED, judge="claude (claude-test)"):
    return [Scored(item, "geo", sample, judge, float(x)) for (item, sample), xs in cells.items() for x in xs]


def test_variance_components_match_a_hand_computation():
    # answer means 4.5, 3, 2, 1.5; within SS = 0.5 + 0 + 0 + 0.5 over 4 df
    n = judge_noise(verdicts(), repeats=2, pass_score=4)
    assert n.measured and n.n_answers == 4
    assert n.var_judge == pytest.approx(0.25)
    # item a's answer means 4.5, 3 (mean 3.75), b's 2, 1.5 (mean 1.75): V_A = 1.25 / 2; minus 0.25 / K
    assert n.var_generation == pytest.approx(0.625 - 0.25 / 2)
    # item means 3.75, 1.75: V_I = 2; minus σ²_gen / S and σ²_judge / (S K)
    assert n.var_item == pytest.approx(2 - 0.5 / 2 - 0.25 / 4)
    total = 0.25 + 0.5 + 1.6875
    assert n.judge_share == pytest.approx(0.25 / total)
    assert n.generation_share == pytest.approx(0.5 / total)
    # SE_judge = sqrt(σ²_judge / (K·N)) with K = 2 verdicts on N = 4 answers
    assert n.se_judge == pytest.approx(math.sqrt(0.25 / (2 * 4)))


def test_variance_components_match_the_nested_anova_computed_with_pandas():
    df = pd.DataFrame(
        [(i, f"{i}{s}", x) for (i, s), xs in FIXED.items() for x in xs], columns=["item", "answer", "y"]
    )
    k, s, n_items = 2, 2, 2
    answer_mean = df.groupby("answer")["y"].transform("mean")
    item_mean = df.groupby("item")["y"].transform("mean")
    ms_within = ((df.y - answer_mean) ** 2).sum() / (len(df) - df.answer.nunique())
    ms_answers = ((answer_mean - item_mean) ** 2).sum() / (n_items * (s - 1))
    ms_items = ((item_mean - df.y.mean()) ** 2).sum() / (n_items - 1)
    n = judge_noise(verdicts(), repeats=2, pass_score=4)
    assert n.var_judge == pytest.approx(ms_within)
    assert n.var_generation == pytest.approx((ms_answers - ms_within) / k)
    assert n.var_item == pytest.approx((ms_items - ms_answers) / (s * k))


def test_flip_rates_count_answers_whose_verdicts_differ():
    n = judge_noise(verdicts(), repeats=2, pass_score=5)
    assert n.flip_rate == pytest.approx(2 / 4)  # [4, 5] and [1, 2]
    assert n.pass_flip_rate == pytest.approx(1 / 4)  # only [4, 5] crosses 5


def test_without_repeats_judge_noise_is_unmeasured():
    n = judge_noise(verdicts({("a", 0): [4], ("b", 0): [2]}), repeats=1, pass_score=4)
    assert not n.measured and n.flip_rate is None and n.se_judge is None


def test_a_panel_is_measured_on_one_judge_not_on_the_judges_disagreement():
    # two judges that always disagree by 2 but never with themselves: the repeat noise is 0
    mixed = verdicts({("a", 0): [3, 3], ("b", 0): [2, 2]}, "j1") + verdicts(
        {("a", 0): [5, 5], ("b", 0): [4, 4], ("c", 0): [1, 1]}, "j2"
    )
    n = judge_noise(mixed, repeats=2, pass_score=4)
    assert n.var_judge == 0 and n.flip_rate == 0


def test_combined_se_adds_the_runs_that_measured_it():
    a = judge_noise(verdicts(), repeats=2, pass_score=4)
    unmeasured = judge_noise(verdicts(), repeats=1, pass_score=4)
    from evals.trust.noise import RunNoise

    cand, base = RunNoise({"geo": a}, a), RunNoise({"geo": unmeasured}, unmeasured)
    assert combined_se(cand, base)["geo"] == pytest.approx(a.se_judge)
    assert combined_se(cand, cand)["geo"] == pytest.approx(math.sqrt(2) * a.se_judge)
    assert combined_se(base, base) == {}


# the regression rule: stored runs, scorecard and gate

BASE = {**{f"math-{i:02d}": [5] for i in range(20)}, **{f"chem-{i:02d}": [5] for i in range(3)}}
THREE = GateSettings(min_area_pairs=3)
"""chem has 3 items: the default gate calls an area that small "cannot decide"."""


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "reports") as s:
        yield s


def candidate(store, run_id, chem_verdicts):
    """A run where math keeps 5 and every chem answer gets ``chem_verdicts`` (one per repeat)."""
    scores = {k: [chem_verdicts[0] if k.startswith("chem") else 5] for k in BASE}
    make_run(store, run_id, scores)
    for item in scores:
        for repeat in range(1, len(chem_verdicts)):
            score = chem_verdicts[repeat] if item.startswith("chem") else 5
            store.save_judgment(
                Judgment(run_id, item, 0, score, "r", "raw", "claude-test", f"{run_id}-{item}-{repeat}",
                         repeat=repeat)
            )  # fmt: skip
    config = store.run(run_id).config
    store.set_config(run_id, config.updated(judging={"repeats": len(chem_verdicts)}))


def test_a_drop_within_twice_the_judge_noise_is_not_regressed_and_the_gate_passes(store):
    make_run(store, "r01", BASE)
    candidate(store, "r02", [3, 5])  # mean 4: Δ −1; σ²_judge 2 over 3 answers, K 2: 2·SE = 1.15
    card = build_scorecard(store, "r02", "r01", gate=THREE)
    chem = card.area("chem")
    assert chem.judge_noise is not None and chem.judge_noise.flip_rate == 1
    assert chem.drift.delta == pytest.approx(-1)
    assert chem.drift.judge_se == pytest.approx(math.sqrt(2 / (2 * 3)))
    # not blamed on the model: a warning (the drop could still exceed the margin), not a regression
    assert chem.drift.status == "not shown non-inferior" and "chem" not in card.regressed()
    assert "judge's own noise" in (chem.drift.note or "")
    verdict = decide(store, "r02", "r01", THREE)
    assert verdict.outcome == "pass", verdict.reasons
    [check] = [c for c in verdict.checks if c.name == "area chem"]
    assert check.passed and "judge's own noise" in check.message
    assert "judge's own noise" in render_markdown(card)
    html = render_html(card)
    assert (
        'id="judge-noise-table"' in html and '<td>chem</td><td class="num">3</td><td class="num">100%' in html
    )


def test_a_drop_beyond_twice_the_judge_noise_is_regressed_and_the_gate_fails(store):
    make_run(store, "r01", BASE)
    candidate(store, "r02", [1, 3])  # mean 2: Δ −3, beyond 2·SE = 1.15
    card = build_scorecard(store, "r02", "r01", gate=THREE)
    assert card.area("chem").drift.status == "regressed"
    verdict = decide(store, "r02", "r01", THREE)
    assert verdict.outcome == "fail"
    assert "area chem" in [c.name for c in verdict.checks if not c.passed]


def test_without_repeats_nothing_changes_but_the_note(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", {k: [4 if k.startswith("chem") else 5] for k in BASE})
    card = build_scorecard(store, "r02", "r01", gate=THREE)
    assert card.area("chem").drift.status == "regressed" and card.area("chem").drift.judge_se is None
    assert card.overall.judge_noise is not None and not card.overall.judge_noise.measured
    assert "Judge noise**: unmeasured" in render_markdown(card)


def test_run_noise_reads_every_repeat_from_the_store(store):
    candidate(store, "r02", [3, 5])
    noise = run_noise(store, "r02", 4)
    assert noise.areas["chem"].var_judge == pytest.approx(2)
    assert noise.areas["math"].var_judge == 0 and noise.areas["math"].flip_rate == 0
    assert noise.overall.n_answers == 23
