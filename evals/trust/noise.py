"""The judge's own noise, told apart from the model's: flip rate, variance components, SE_judge.

A run judged with ``--judge-repeats K`` (or made by ``evals judge rerun``) holds K verdicts per answer.
Their scatter around the answer's mean is the judge's noise alone: the answer is frozen. The scatter of
an item's answer means (``--samples``) is the model's generation noise plus what the judge's noise
leaves in a mean of K verdicts; the scatter of item means is the items' real difference in difficulty
plus both. Each figure is computed once, here, per area and overall; the scorecard, the drift rule and
the gate read it.

The design is nested (item > answer > verdict) and may be unbalanced (a failed verdict, an errored
sample). The components are method-of-moments estimates on means, written out with numpy because no
installed library gives them: ``scipy.stats.f_oneway`` returns only F and p, and a mixed model
(statsmodels ``MixedLM``) is a REML fit, not the moments this rule needs, and a heavy dependency.
With every answer judged K times and every item sampled S times they are the classical nested ANOVA
estimators (Searle, Casella & McCulloch, *Variance Components*, ch. 3):

    σ²_judge = pooled variance of the verdicts within an answer         (df = Σ (K_a − 1))
    σ²_gen   = V_A − σ²_judge · mean(1/K_a)                             V_A: pooled variance of an item's
                                                                        answer means around their mean
    σ²_item  = V_I − σ²_gen · mean(1/S_i) − σ²_judge · mean(mean_a(1/K_a) / S_i)
                                                                        V_I: variance of the item means

since E[V_A] = σ²_gen + σ²_judge/K and E[V_I] = σ²_item + σ²_gen/S + σ²_judge/(S·K). A negative
estimate (sampling error) is reported as 0, as is usual for moments estimators.

With a panel (several judges), the figures are those of the judge with the most scored verdicts: the
disagreement between judges is the panel's own figure, not the judge's repeat noise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from evals.records import Item, Judgment
from evals.store import Store
from evals.store.aggregates import OVERALL


class JudgeNoise(BaseModel):
    """The judge's own noise in one area (or the whole run), from repeated verdicts: a scorecard's
    ``AreaStats.judge_noise``.

    ``measured`` False says "judge noise unmeasured": the run asked each answer once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    area: str
    measured: bool
    repeats: int
    """Verdicts asked per answer (``--judge-repeats``)."""
    n_answers: int = 0
    """Answers with at least two scored verdicts: what the flip rates count."""
    flip_rate: float | None = None
    """Share of those answers whose repeated verdicts are not all equal."""
    pass_flip_rate: float | None = None
    """Share of those answers whose pass/fail (``pass_score``) is not the same in every verdict."""
    var_judge: float | None = None
    """σ²_judge: variance of one verdict around its answer's mean (the answer frozen)."""
    var_generation: float | None = None
    """σ²_gen: variance of an item's answers (``--samples``), net of judge noise; None with one sample."""
    var_item: float | None = None
    """σ²_item: variance between items (difficulty), net of both noises; None with one item."""
    judge_share: float | None = None
    """σ²_judge over the sum of the three."""
    generation_share: float | None = None
    """σ²_gen over the sum of the three."""
    se_judge: float | None = None
    """Standard error judge noise alone gives the area's mean: sqrt(σ²_judge / (K·N)) when balanced."""


@dataclass(frozen=True)
class Scored:
    """One scored verdict: which item (and area), which answer (sample), which judge, the score."""

    item_id: str
    area: str
    sample: int
    judge: str
    score: float


def scored_verdicts(items: Iterable[Item], verdicts: Iterable[Judgment]) -> list[Scored]:
    """The run's scored verdicts with their items' areas (verdicts of unknown items are left out)."""
    area = {i.id: i.area for i in items}
    return [
        Scored(v.item_id, area[v.item_id], v.sample, v.judge, float(v.score))
        for v in verdicts
        if v.score is not None and v.error is None and v.item_id in area
    ]


def _main_judge(verdicts: Sequence[Scored]) -> list[Scored]:
    counts: dict[str, int] = defaultdict(int)
    for v in verdicts:
        counts[v.judge] += 1
    if len(counts) <= 1:
        return list(verdicts)
    judge = max(sorted(counts), key=lambda j: counts[j])
    return [v for v in verdicts if v.judge == judge]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def judge_noise(
    verdicts: Sequence[Scored], repeats: int, pass_score: float, area: str = OVERALL
) -> JudgeNoise:
    """The judge-noise figures of one area (or the whole run) from its scored verdicts.

    ``repeats`` is the K the run asked for: 1 says "judge noise unmeasured" whatever the verdicts.

    SE_judge, the standard error judge noise alone gives the area's mean: the mean is (1/I) Σ_i of item
    means, an item mean is (1/S_i) Σ_a of answer means, an answer mean averages K_a independent verdicts
    whose noise has variance σ²_judge. The judge's noise in different verdicts is independent, so
    Var_judge(mean) = (1/I²) Σ_i (1/S_i²) Σ_a σ²_judge / K_a, which with K verdicts on each of N = I·S
    answers is σ²_judge / (K·N): SE_judge = sqrt(σ²_judge / (K·N)).
    """
    if repeats < 2:
        return JudgeNoise(area=area, measured=False, repeats=repeats)
    cells: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for v in _main_judge(verdicts):
        cells[v.item_id][v.sample].append(v.score)
    answers = [(i, s, xs) for i, by_sample in cells.items() for s, xs in by_sample.items()]
    repeated = [xs for _, _, xs in answers if len(xs) >= 2]
    if not repeated:
        return JudgeNoise(area=area, measured=False, repeats=repeats)
    flips = sum(1 for xs in repeated if len(set(xs)) > 1)
    pass_flips = sum(1 for xs in repeated if len({x >= pass_score for x in xs}) > 1)
    # σ²_judge: pooled within-answer variance
    ss_w = sum(sum((x - _mean(xs)) ** 2 for x in xs) for xs in repeated)
    df_w = sum(len(xs) - 1 for xs in repeated)
    var_judge = ss_w / df_w
    # σ²_gen: pooled within-item variance of answer means, net of the judge noise each mean keeps
    item_answers = {i: [(_mean(xs), len(xs)) for xs in by_sample.values()] for i, by_sample in cells.items()}
    multi = {i: a for i, a in item_answers.items() if len(a) >= 2}
    var_gen: float | None = None
    if multi:
        ss_a = sum(sum((m - _mean([m for m, _ in a])) ** 2 for m, _ in a) for a in multi.values())
        df_a = sum(len(a) - 1 for a in multi.values())
        inv_k = _mean([1 / k for a in multi.values() for _, k in a])
        var_gen = max(0.0, ss_a / df_a - var_judge * inv_k)
    # σ²_item: variance of item means, net of what generation and judge noise leave in them
    item_means = {i: _mean([m for m, _ in a]) for i, a in item_answers.items()}
    var_item: float | None = None
    if len(item_means) >= 2:
        grand = _mean(list(item_means.values()))
        v_i = sum((m - grand) ** 2 for m in item_means.values()) / (len(item_means) - 1)
        inv_s = _mean([1 / len(a) for a in item_answers.values()])
        inv_sk = _mean([_mean([1 / k for _, k in a]) / len(a) for a in item_answers.values()])
        var_item = max(0.0, v_i - (var_gen or 0.0) * inv_s - var_judge * inv_sk)
    n_items = len(item_answers)
    var_of_mean = sum(sum(var_judge / k for _, k in a) / len(a) ** 2 for a in item_answers.values())
    se_judge = math.sqrt(var_of_mean) / n_items
    total = var_judge + (var_gen or 0.0) + (var_item or 0.0)
    return JudgeNoise(
        area=area,
        measured=True,
        repeats=repeats,
        n_answers=len(repeated),
        flip_rate=flips / len(repeated),
        pass_flip_rate=pass_flips / len(repeated),
        var_judge=var_judge,
        var_generation=var_gen,
        var_item=var_item,
        judge_share=var_judge / total if total > 0 else None,
        generation_share=(var_gen / total) if var_gen is not None and total > 0 else None,
        se_judge=se_judge,
    )


@dataclass(frozen=True)
class RunNoise:
    """A run's judge-noise figures: per area and overall."""

    areas: Mapping[str, JudgeNoise]
    overall: JudgeNoise


def run_noise(store: Store, run_id: str, pass_score: float) -> RunNoise:
    """The judge-noise figures of a stored run (its verdicts of every repeat and judge)."""
    from evals.runner import judge_repeats  # the runner imports the store and providers: only when needed

    manifest = store.run(run_id)
    items = store.items(run_id)
    verdicts = scored_verdicts(items, store.verdicts(run_id))
    k = judge_repeats(manifest)
    by_area: dict[str, list[Scored]] = defaultdict(list)
    for v in verdicts:
        by_area[v.area].append(v)
    areas = {
        a: judge_noise(by_area.get(a, []), k, pass_score, a) for a in dict.fromkeys(i.area for i in items)
    }
    return RunNoise(areas=areas, overall=judge_noise(verdicts, k, pass_score))


def combined_se(candidate: RunNoise, baseline: RunNoise | None) -> dict[str, float]:
    """Per area (and ``(overall)``): the judge-noise SE of a difference of the two runs' means.

    sqrt(SE_c² + SE_b²) over the runs that measured it (the judge's noise in two runs is independent);
    a run without repeats adds nothing, as its judge noise is unknown. Absent when neither measured it.
    """
    out: dict[str, float] = {}
    named = {**candidate.areas, OVERALL: candidate.overall}
    base = {**baseline.areas, OVERALL: baseline.overall} if baseline else {}
    for area in named.keys() | base.keys():
        parts = [n.se_judge for n in (named.get(area), base.get(area)) if n and n.se_judge is not None]
        if parts:
            out[area] = math.sqrt(sum(p * p for p in parts))
    return out


def describe(noise: JudgeNoise) -> str:
    """One line for the terminal: ``geography: flip rate 25% (pass/fail 10%) · judge 30% / generation 20%
    of the variance · SE_judge 0.05``, or ``geography: judge noise unmeasured``."""
    if not noise.measured:
        return f"{noise.area}: judge noise unmeasured"

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.0%}"

    se = "–" if noise.se_judge is None else f"{noise.se_judge:.3f}"
    return (
        f"{noise.area}: flip rate {pct(noise.flip_rate)} (pass/fail {pct(noise.pass_flip_rate)}) over "
        f"{noise.n_answers} answers · judge {pct(noise.judge_share)} / generation "
        f"{pct(noise.generation_share)} of the variance · SE_judge {se}"
    )
