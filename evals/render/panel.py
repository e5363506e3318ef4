"""A panel's section of the scorecard as terminal lines: the same figures as its HTML and Markdown."""

from __future__ import annotations

from evals.scorecard.sections import PanelAgreement, PanelSection


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _agreement(g: PanelAgreement) -> str:
    pairs = "; ".join(
        f"kappa {p.a}·{p.b} {_fmt(p.kappa)} [{_fmt(p.kappa_ci_low)}, {_fmt(p.kappa_ci_high)}] (n {p.n})"
        for p in g.pairs
    )
    return f"{g.area}: alpha {_fmt(g.alpha)} over {g.n} answers; {pairs}"


def panel_lines(panel: PanelSection) -> list[str]:
    """What the terminal shows of a panel (untrusted text: the caller passes each line through ``plain``)."""
    members = ", ".join(f"{m.name} ({m.scored} scored, {m.errors} errors)" for m in panel.members)
    lines = [f"panel of judges, {panel.aggregate} of: {members}"]
    if panel.partial:
        lines.append(f"{panel.partial} answers scored by only some members (their score aggregates those)")
    lines += [f"agreement {_agreement(g)}" for g in [panel.overall, *panel.areas]]
    lines.append(
        f"{len(panel.disagreements)} answers with members {panel.disagree_at:g}+ points apart"
        + (": review them" if panel.disagreements else "")
    )
    for d in panel.disagreements:
        scores = ", ".join(f"{name} {score:.1f}" for name, score in d.scores.items())
        lines.append(f"  {d.id}{f'#{d.sample}' if d.sample else ''} ({d.area}): {scores}")
    return lines
