"""Terminal text for answer signals: answers addressing the grader and length bias, under the area table."""

from __future__ import annotations

from collections.abc import Sequence

from evals.cli.common import fmt
from evals.results import ResultRow
from evals.scorecard.models import AreaStats, Scorecard
from evals.scorecard.signals import answer_signals

LENGTH_NOTE = (
    "len ρ: Spearman's rank correlation of answer length and score; strongly positive means longer answers "
    "scored higher: the judge may reward padding (evals docs probes)"
)


def _area_line(a: AreaStats) -> str | None:
    signals = a.signals
    if signals is None or (not signals.flagged and signals.length_bias.rho is None):
        return None
    kinds = ", ".join(f"{k} {n}" for k, n in signals.kinds.items())
    bias = signals.length_bias
    rho = "–" if bias.rho is None else f"{bias.rho:+.2f} (p {fmt(bias.p_value, '.2g')}, n {bias.n})"
    return f"  {a.area}: {signals.flagged} flagged{f' ({kinds})' if kinds else ''} · len ρ {rho}"


def signal_lines(card: Scorecard) -> list[str]:
    """Lines under the area table: per area, flagged answers and the length–score correlation, and what
    the correlation means; nothing for a scorecard without them (an older one, or no flags and no ρ)."""
    lines = [line for line in map(_area_line, [*card.areas, card.overall]) if line is not None]
    if not lines:
        return []
    flagged = card.overall.signals.flagged if card.overall.signals else 0
    head = f"answers addressing the grader: {flagged} (marked in the item list); {LENGTH_NOTE}"
    return [head, *lines]


def flagged_line(rows: Sequence[ResultRow]) -> str | None:
    """The end-of-run line counting answers that address the grader, or None when there are none."""
    signals = answer_signals(rows)  # the scorecard's count, computed the one way
    if not signals.flagged:
        return None
    return (
        f"{signals.flagged} answer{'s' if signals.flagged != 1 else ''} address the grader "
        f"({', '.join(signals.kinds)}): marked on the scorecard; read them before trusting their scores"
    )
