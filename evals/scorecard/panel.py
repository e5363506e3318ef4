"""A panel's section of the scorecard: its members, how far they agree, and the answers they disagree on.

Agreement is chance-corrected, because percent agreement flatters judges that give most answers the same
score: for each pair of members, quadratic-weighted Cohen's kappa (scikit-learn) with a 95 % bootstrap
interval, and over all members Krippendorff's alpha at the ordinal level (the ``krippendorff`` package).
Both read each member's first scored verdict of an answer (its integer grade); with ``--judge-repeats``
the others measure the judge's own noise, elsewhere. The answers whose member scores (each member's repeats
averaged, as the row's score uses them) lie two points or more apart are listed for people to review.

The interval resamples items, not answers: the samples of one item share its difficulty. Each resample's
kappa is computed from its 5 × 5 table of score pairs with scikit-learn's formula (weights (i - j)², observed
over expected), all resamples at once in numpy: a thousand calls of ``cohen_kappa_score`` would take
seconds per pair and area. The tests check the two agree on every resample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING

from evals.records import JudgeSnapshot, Judgment, RunManifest
from evals.results import ResultRow
from evals.scorecard.sections import (
    PairAgreement,
    PanelAgreement,
    PanelDisagreement,
    PanelMember,
    PanelSection,
)
from evals.store.aggregates import OVERALL
from evals.store.rows import member_scores, panel_aggregation
from evals.trust.agreement import DISAGREE_AT, ordinal_alpha, quadratic_kappa

if TYPE_CHECKING:
    import numpy as np

SCORES = (1, 2, 3, 4, 5)
MIN_N = 5
"""Answers scored by both members (or, for alpha, by two or more) below which no figure is given."""
MIN_AREA_N = 10
"""Answers an area needs for agreement figures of its own."""
BOOTSTRAP = 1000
"""Resamples of the kappa interval."""
SEED = 20261130
"""The bootstrap's seed: the same run always gives the same interval."""
EXCERPT = 300
"""Characters of a question or rationale shown in the disagreement list."""

Unit = tuple[str, int]
"""An answer: (item id, sample)."""


def kappa_tables(tables: np.ndarray) -> np.ndarray:
    """Quadratic-weighted kappa of each 5 × 5 table of score pairs (counts, last two axes); NaN when undefined.

    The formula of ``sklearn.metrics.cohen_kappa_score(weights="quadratic")``, over many tables at once.
    """
    import numpy as np

    k = len(SCORES)
    weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    total = tables.sum(axis=(-2, -1), keepdims=True)
    expected = tables.sum(axis=-1, keepdims=True) * tables.sum(axis=-2, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(
            1 - (weights * tables).sum(axis=(-2, -1)) / (weights * expected).sum(axis=(-2, -1)), dtype=float
        )


def kappa_interval(
    a: Sequence[int], b: Sequence[int], items: Sequence[str]
) -> tuple[float | None, float | None]:
    """95 % percentile bootstrap interval of the quadratic kappa of ``a`` and ``b``, resampling ``items``
    (the item of each pair: an item's samples are drawn together). None, None when too few resamples
    give a kappa."""
    import numpy as np

    ids = {item: n for n, item in enumerate(sorted(set(items)))}
    which = np.array([ids[i] for i in items])
    cells = (np.asarray(a) - 1) * len(SCORES) + (np.asarray(b) - 1)
    onehot = np.zeros((len(cells), len(SCORES) ** 2))
    onehot[np.arange(len(cells)), cells] = 1
    rng = np.random.default_rng(SEED)
    drawn = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=BOOTSTRAP)  # B x items
    tables = (drawn[:, which] @ onehot).reshape(BOOTSTRAP, len(SCORES), len(SCORES))
    kappas = kappa_tables(tables)
    kappas = kappas[~np.isnan(kappas)]
    if len(kappas) < BOOTSTRAP / 2:
        return None, None
    low, high = np.percentile(kappas, [2.5, 97.5])
    return float(low), float(high)


def _agreement(
    area: str, names: list[str], units: list[Unit], first: dict[Unit, dict[str, int]], min_n: int
) -> PanelAgreement:
    pairs = []
    for a, b in combinations(names, 2):
        both = [u for u in units if a in first[u] and b in first[u]]
        if len(both) < min_n:
            pairs.append(PairAgreement(a=a, b=b, n=len(both), kappa=None))
            continue
        sa, sb = [first[u][a] for u in both], [first[u][b] for u in both]
        low, high = kappa_interval(sa, sb, [u[0] for u in both])
        pairs.append(
            PairAgreement(
                a=a, b=b, n=len(both), kappa=quadratic_kappa(sa, sb), kappa_ci_low=low, kappa_ci_high=high
            )
        )
    rated = [u for u in units if len(first[u]) >= 2]
    alpha = None
    if len(rated) >= min_n:
        alpha = ordinal_alpha([[first[u].get(name, math.nan) for u in rated] for name in names])
    return PanelAgreement(area=area, n=len(rated), alpha=alpha, pairs=pairs)


def _excerpt(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def build_panel(
    run: RunManifest, rows: Sequence[ResultRow], verdicts: Sequence[Judgment]
) -> PanelSection | None:
    """The panel section of a run's scorecard; None for a run with one judge."""
    method = panel_aggregation(run)
    if method is None:
        return None
    panel = run.config.judge.panel
    names = list(panel.members) if panel is not None else []
    by_unit: dict[Unit, list[Judgment]] = {}
    for v in verdicts:
        by_unit.setdefault((v.item_id, v.sample), []).append(v)
    labels: dict[str, str] = {}
    first: dict[Unit, dict[str, int]] = {}  # each member's first scored verdict of each answer
    reasons: dict[Unit, dict[str, str]] = {}
    asked: dict[str, set[Unit]] = {n: set() for n in names}
    for unit, found in by_unit.items():
        first[unit], reasons[unit] = {}, {}
        for v in sorted(found, key=lambda v: v.repeat):
            name = v.judge.partition(" (")[0]
            labels.setdefault(name, v.judge)
            asked.setdefault(name, set()).add(unit)
            if v.score is not None and v.error is None and name not in first[unit]:
                first[unit][name], reasons[unit][name] = round(v.score), _excerpt(v.rationale)
    answered = [r for r in rows if r.answer is not None]
    units = [(r.id, r.sample) for r in answered if (r.id, r.sample) in first]
    members = [
        PanelMember(
            name=n,
            label=labels.get(n, n),
            scored=sum(1 for u in units if n in first[u]),
            errors=sum(1 for u in asked.get(n, ()) if n not in first[u]),
        )
        for n in names
    ]
    areas = []
    for area in sorted({r.area for r in answered}):
        in_area = [(r.id, r.sample) for r in answered if r.area == area and (r.id, r.sample) in first]
        if sum(1 for u in in_area if len(first[u]) >= 2) >= MIN_AREA_N:
            areas.append(_agreement(area, names, in_area, first, MIN_AREA_N))
    disagreements = []
    partial = 0
    for r in answered:
        unit = (r.id, r.sample)
        scores = {k.partition(" (")[0]: v for k, v in member_scores(by_unit.get(unit, [])).items()}
        if 0 < len(scores) < len(names):
            partial += 1
        if len(scores) >= 2 and max(scores.values()) - min(scores.values()) >= DISAGREE_AT:
            disagreements.append(
                PanelDisagreement(
                    id=r.id, sample=r.sample, area=r.area, question=_excerpt(r.question),
                    spread=max(scores.values()) - min(scores.values()),
                    scores={n: scores[n] for n in names if n in scores},
                    rationales={n: reasons[unit][n] for n in names if n in reasons.get(unit, {})},
                )
            )  # fmt: skip
    disagreements.sort(key=lambda d: (-d.spread, d.area, d.id, d.sample))
    return PanelSection(
        aggregate=method,
        members=members,
        overall=_agreement(OVERALL, names, units, first, MIN_N),
        areas=areas,
        min_area_n=MIN_AREA_N,
        partial=partial,
        disagreements=disagreements,
        disagree_at=DISAGREE_AT,
    )


def members_cost(run: RunManifest, asked: Sequence[Judgment]) -> float | None:
    """What a panel's verdicts ``asked`` (not reused) cost, each member's tokens at its own prices (from the
    run's config snapshot); None when a member that was asked is not priced (the offline judge is free)."""
    configured = run.config.judge.members or {}
    total = 0.0
    for name in sorted({v.judge.partition(" (")[0] for v in asked}):
        mine = [v for v in asked if v.judge.partition(" (")[0] == name]
        price = configured.get(name) or JudgeSnapshot()
        if price.provider == "offline":
            continue
        if price.price_in_per_mtok is None and price.price_out_per_mtok is None:
            return None
        total += verdicts_cost(price, mine)
    return total


def verdicts_cost(price: JudgeSnapshot, verdicts: Sequence[Judgment]) -> float:
    """What ``verdicts`` of one judge cost at its token prices: those a vendor's batch answered
    (``batch_id``) at its ``batch_discount`` (0.5 when the snapshot does not say), the others in full."""
    total = 0.0
    for v in verdicts:
        rate = (price.batch_discount or 0.5) if v.batch_id else 1.0
        total += rate * (v.tokens_in or 0) / 1e6 * (price.price_in_per_mtok or 0)
        total += rate * (v.tokens_out or 0) / 1e6 * (price.price_out_per_mtok or 0)
    return total
