"""An area's answer signals: how many answers address the grader, and whether length predicts the score.

Both read what was stored with each answer when it was given (its flags and its length in characters), so
they hold for runs whose texts were purged since. Spearman's rho (``evals.stats.spearman``, scipy's figures) per area and overall.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from evals.judge.grader_attacks import kinds_of
from evals.results import ResultRow, by_area
from evals.scorecard.models import AnswerSignals, AreaStats, LengthBias
from evals.stats import spearman

MIN_PAIRS = 5
"""Fewer scored answers than this get no rho: a rank correlation of 4 points says nothing."""


def length_bias(rows: Sequence[ResultRow]) -> LengthBias:
    """Spearman's rho between answer length and score over the scored answers of ``rows``."""
    pairs = [(r.answer_length, r.score) for r in rows if r.score is not None and r.answer_length is not None]
    if len(pairs) < MIN_PAIRS:
        return LengthBias(n=len(pairs))
    lengths, scores = zip(*pairs, strict=True)
    found = spearman(lengths, scores)  # None when a side is constant: no ranks to correlate
    if found is None:
        return LengthBias(n=len(pairs))
    rho, p = found
    return LengthBias(
        n=len(pairs), rho=rho if math.isfinite(rho) else None, p_value=p if math.isfinite(p) else None
    )


def answer_signals(rows: Sequence[ResultRow]) -> AnswerSignals:
    """Flagged answers (in all, and per kind) and the length–score correlation of some result rows."""
    kinds = Counter(kind for r in rows for kind in kinds_of(r.flags))
    return AnswerSignals(
        flagged=sum(1 for r in rows if r.flags),
        kinds=dict(sorted(kinds.items())),
        length_bias=length_bias(rows),
    )


def with_signals(
    areas: list[AreaStats], overall: AreaStats, rows: Sequence[ResultRow]
) -> tuple[list[AreaStats], AreaStats]:
    """The areas and the overall figures with their ``signals`` filled in from the run's rows."""
    grouped = by_area(rows)
    return (
        [a.model_copy(update={"signals": answer_signals(grouped.get(a.area, []))}) for a in areas],
        overall.model_copy(update={"signals": answer_signals(rows)}),
    )
