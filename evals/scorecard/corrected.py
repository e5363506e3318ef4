"""People's scores where the scorecard and the decision use them: each area's PPI++ corrected mean beside
the judge's, and (``gate: {means: corrected}``) the corrected Δ the decision reads for areas where both runs
have enough randomly drawn human scores. Only scores of a random draw feed a correction; answers picked for
being urgent or doubtful never do. The estimators are ``evals.trust.ppi``'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from evals import stats
from evals.results import ResultRow, scores_by_item
from evals.store import Store
from evals.store.human import human_scores
from evals.trust.ppi import MIN_HUMAN, CorrectedMean, corrected_delta, corrected_mean

ByArea = dict[str, dict[str, float]]
"""Area → item → score (an item's mean over its samples, or over raters and samples)."""


def human_means(store: Store, run_id: str) -> ByArea:
    """Each area's items people scored in a random draw of the run: the mean of their scores."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in human_scores(store, run_id):
        if s.random:
            found[s.area][s.item_id].append(float(s.score))
    return {area: {i: sum(v) / len(v) for i, v in items.items()} for area, items in found.items()}


def judge_means(rows: Sequence[ResultRow]) -> ByArea:
    """Each area's scored items: the mean of the judge's scores over the item's samples."""
    area_of = {r.id: r.area for r in rows}
    out: ByArea = defaultdict(dict)
    for item, scores in scores_by_item(rows).items():
        if scores:
            out[area_of[item]][item] = stats.mean_of_items({item: scores}) or 0.0
    return dict(out)


def corrected_areas(store: Store, run_id: str, rows: Sequence[ResultRow]) -> dict[str, CorrectedMean]:
    """The corrected mean of every area with random human scores (or the note saying why there is none)."""
    people = human_means(store, run_id)
    judged = judge_means(rows)
    return {area: corrected_mean(judged.get(area, {}), human) for area, human in people.items()}


def corrected_deltas(
    store: Store,
    candidate: tuple[str, Sequence[ResultRow]],
    baseline: tuple[str, Sequence[ResultRow]],
    paired: frozenset[str],
    level: float,
) -> dict[str, CorrectedMean]:
    """Per area, the corrected paired Δ at coverage ``level`` where both runs have at least ``MIN_HUMAN``
    random human scores of the same items; areas without enough are left out (the judge's Δ stands)."""
    (cand_id, cand_rows), (base_id, base_rows) = candidate, baseline
    hc, hb = human_means(store, cand_id), human_means(store, base_id)
    jc, jb = judge_means(cand_rows), judge_means(base_rows)
    out = {}
    for area in hc.keys() & hb.keys():
        both = {i for i in hc[area].keys() & hb[area].keys() if i in paired}
        if len(both) < MIN_HUMAN:
            continue
        out[area] = corrected_delta(
            _kept(jb, area, paired), _kept(jc, area, paired), {i: hb[area][i] for i in both},
            {i: hc[area][i] for i in both}, level=level,
        )  # fmt: skip
    return out


def _kept(means: ByArea, area: str, paired: frozenset[str]) -> dict[str, float]:
    return {i: s for i, s in means.get(area, {}).items() if i in paired}
