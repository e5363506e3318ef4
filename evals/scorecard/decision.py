"""The one decision: each area's status and the run's verdict, from the ``gate:`` settings alone.

The scorecard (HTML, Markdown, JSON), ``evals report`` and its ``--fail-on-regression``, ``evals compare``,
``evals gate`` and the index all read what this module decides; none of them computes a status.

Per area, the paired Δ (candidate − baseline, items averaged over their samples first) gets an interval
that is simultaneous across the areas and matches the correction in use: Bonferroni's 1 − α/m (family-wise
error at α over the m areas tested), or for ``bh`` the false-coverage-rate interval of Benjamini and
Yekutieli (2005) at 1 − R·α/m, R the areas Benjamini–Hochberg selects. Each is exactly the interval whose
exclusion of 0 is the corrected test, so an area's status and the interval beside it cannot disagree:

- **regressed**: the interval lies below 0 and Δ ≤ −min_effect (a drop within twice the judge's own noise
  is not blamed on the model): fails the run;
- **improved**: the interval lies above 0 and Δ ≥ min_effect;
- **not shown non-inferior**: otherwise, when the interval's lower end reaches −margin (the drop could be
  larger than the margin): a warning, failing the run with ``strict_areas``;
- **unchanged**: otherwise;
- **cannot decide**: fewer than ``min_area_pairs`` paired items (with how many more would tell);
- **new**: no baseline to pair with.

The whole run: the one-sided (1 − α) lower bound of the overall Δ must be above −margin (non-inferiority);
the run **fails** on that bound, on a regressed area (or a ``strict_areas`` one not shown non-inferior), a
floor, or too many errors; it **cannot decide** when the runs are one, of different suites, judged
differently, the judge's canary moved, either is unfinished or empty, the baseline is too thin, or fewer
than ``min_pairs`` items pair up. Intervals never leave the scale: Δ lies in [−4, 4] on the 1–5 scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from evals import stats
from evals.config import GateSettings
from evals.errors import ConfigError
from evals.judge.provenance import judged_differently
from evals.records import RunManifest
from evals.results import ResultRow, by_area, scores_by_item
from evals.scorecard.calibration import calibration_reasons
from evals.scorecard.canary import gate_reason as canary_reason
from evals.scorecard.corrected import corrected_deltas
from evals.scorecard.figures import area_stats, compare_items, health
from evals.scorecard.models import (
    AreaStatus,
    Check,
    Decision,
    Drift,
    ItemChanges,
    Outcome,
    RunHealth,
)
from evals.store import Store
from evals.store.aggregates import OVERALL
from evals.trust.confirm import flips
from evals.trust.noise import combined_se, run_noise
from evals.userfiles import load_yaml, validation_errors

PASS, FAIL, UNDECIDED = 0, 1, 2
"""Exit codes of ``evals gate``."""
EXIT_CODES: dict[Outcome, int] = {"pass": PASS, "fail": FAIL, "cannot decide": UNDECIDED}
DELTA_RANGE = 4.0
"""A paired Δ of 1–5 scores lies in [−4, 4]: no interval leaves it."""


def load_settings(base: GateSettings, path: Path | None) -> GateSettings:
    """The ``gate:`` settings, with those ``--policy FILE`` sets overriding them one by one."""
    if path is None:
        return base
    data = load_yaml(path, error=ConfigError)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a policy is a mapping of gate settings (margin: 0.3, ...), not {type(data).__name__}"
        )
    if isinstance(data, dict) and isinstance(data.get("gate"), dict) and len(data) == 1:
        data = data["gate"]  # a policy written as evals.yaml's section
    merged = {**base.model_dump(exclude_unset=True), **(data or {})}
    try:
        return GateSettings.model_validate(merged)
    except ValidationError as exc:
        lines = validation_errors(path, data, exc)
        raise ConfigError("invalid policy:\n  " + "\n  ".join(lines)) from None


def describe_settings(s: GateSettings) -> str:
    """The settings a decision used, in one line every page prints."""
    family = "Bonferroni" if s.correction == "bonferroni" else "Benjamini–Hochberg"
    text = (
        f"margin {s.margin:g}, alpha {s.alpha:g} ({family} across areas), minimum effect {s.min_effect:g}, "
        f"pass score {s.pass_score}, at least {s.min_pairs} pairs ({s.min_area_pairs} per area), "
        f"errors at most {s.max_error_rate:.0%}"
    )
    if s.strict_areas:
        text += ", strict areas"
    if s.confirm_repeats:
        text += f", failing areas confirmed on {s.confirm_repeats} verdicts"
    if (c := s.require_calibration) is not None:
        text += f", a judge calibrated within {c.max_age_days} days at kappa ≥ {c.min_kappa:g}"
    return text


@dataclass(frozen=True)
class DriftReport:
    """Paired drift of a run against its baseline: per area, overall, and how the items line up."""

    items: ItemChanges
    areas: dict[str, Drift]
    overall: Drift
    scored_pairs: frozenset[str]
    """Item ids scored on both sides with the same content: the only ones any paired figure uses."""
    level: float = 0.05
    """The error rate of each area's interval (α/m, or R·α/m for ``bh``)."""
    label: str = ""
    """What the areas' intervals are, in words."""


def within_judge_noise(delta: float | None, judge_se: float | None) -> bool:
    """A drop (−Δ) of at most 2 × SE_judge may be the judge's own noise (``evals.trust.noise``)."""
    return delta is not None and judge_se is not None and -delta <= 2 * judge_se


def _bounded(value: float | None) -> float | None:
    return None if value is None else min(DELTA_RANGE, max(-DELTA_RANGE, value))


def _more_items(n: int, sd: float | None, delta: float | None, s: GateSettings, alpha: float) -> int:
    """Items more in an area (beyond ``n``) that would let it decide non-inferiority at the observed spread."""
    floor = max(0, s.min_area_pairs - n)
    if delta is None or sd is None or delta <= -s.margin:
        return floor  # no spread measured, or a mean past the margin: more items cannot show it
    needed = stats.items_needed(sd, delta + s.margin, alpha=alpha / 2)
    return max(floor, 0 if needed is None else needed - n)


def _area(
    d: stats.PairedDelta,
    p_adjusted: float | None,
    s: GateSettings,
    level: float,
    label: str,
    judge_se: float | None,
) -> Drift:
    """One area's drift and status; ``level`` is the per-interval error rate (α/m or R·α/m)."""
    base = Drift(
        n_pairs=d.n_pairs, delta=d.delta, p_value=d.p_value, p_adjusted=p_adjusted, judge_se=judge_se,
        interval=label,
    )  # fmt: skip
    if d.n_pairs < max(2, s.min_area_pairs):
        return base.model_copy(update={
            "status": "cannot decide", "needed": _more_items(d.n_pairs, d.sd, d.delta, s, level),
            "note": f"{d.n_pairs} paired items, the gate needs {s.min_area_pairs} in an area",
        })  # fmt: skip
    lo, hi = _bounded(d.ci_low), _bounded(d.ci_high)
    drift = base.model_copy(update={"delta_ci_low": lo, "delta_ci_high": hi})
    assert d.delta is not None and lo is not None and hi is not None  # two pairs or more give an interval
    status: AreaStatus = "unchanged"
    note = None
    if hi < 0 and d.delta <= -s.min_effect:
        if within_judge_noise(d.delta, judge_se):
            assert judge_se is not None
            note = f"a drop within twice the judge's own noise (2 × SE_judge = {2 * judge_se:.2f}), not blamed on the model"
        else:
            status = "regressed"
    if status == "unchanged":
        if lo > 0 and d.delta >= s.min_effect:
            status = "improved"
        elif lo <= -s.margin:
            status = "not shown non-inferior"
    more: int | None = (
        _more_items(d.n_pairs, d.sd, d.delta, s, level) if status == "not shown non-inferior" else None
    )
    return drift.model_copy(update={"status": status, "note": note, "needed": more or None})


def _overall(d: stats.PairedDelta, s: GateSettings, judge_se: float | None) -> Drift:
    """The whole run: the one-sided (1 − α) lower bound against −margin decides; shown as that bound."""
    label = f"one-sided {1 - s.alpha:.0%} lower bound"
    drift = Drift(
        n_pairs=d.n_pairs, delta=d.delta, p_value=d.p_value, judge_se=judge_se, interval=label,
        delta_ci_low=_bounded(d.ci_low),
    )  # fmt: skip
    if d.n_pairs < s.min_pairs or d.delta is None or d.ci_low is None or d.ci_high is None:
        more = max(0, s.min_pairs - d.n_pairs)
        return drift.model_copy(update={"status": "cannot decide", "needed": more or None})
    status: AreaStatus = "unchanged"
    note = None
    if d.ci_low <= -s.margin:
        status = "not shown non-inferior"
        # d.ci_high is the one-sided upper bound: below 0 is a significant drop
        if d.ci_high < 0 and d.delta <= -s.min_effect:
            if within_judge_noise(d.delta, judge_se):
                note = "a drop within twice the judge's own noise"
            else:
                status = "regressed"
    elif d.ci_low > 0 and d.delta >= s.min_effect:
        status = "improved"
    return drift.model_copy(update={"status": status, "note": note})


def _family(p_values: Sequence[float | None], s: GateSettings) -> tuple[list[float | None], float, str]:
    """Adjusted p-values, the per-interval error rate that matches them, and how the intervals are labelled."""
    m = sum(1 for p in p_values if p is not None)
    if s.correction == "bh":
        adjusted = stats.benjamini_hochberg(p_values)
        selected = sum(1 for q in adjusted if q is not None and q < s.alpha)
        level = max(1, selected) * s.alpha / max(1, m)
        label = f"{1 - level:.1%} (false coverage rate {s.alpha:g}, Benjamini–Yekutieli, {m} areas)"
    else:
        adjusted = stats.bonferroni(p_values)
        level = s.alpha / max(1, m)
        label = f"simultaneous {1 - s.alpha:.0%} (Bonferroni, {m} areas)"
    return adjusted, level, label


def drift(
    rows: Sequence[ResultRow],
    base_rows: Sequence[ResultRow],
    settings: GateSettings,
    judge_se: Mapping[str, float] | None = None,
) -> DriftReport:
    """Paired drift and status of every area and of the whole run, under ``settings``.

    Pairs are items of the same content with at least one score on BOTH sides; items scored on one side
    only (an error, an unfinished run) are in no count and no statistic. ``judge_se``
    (``evals.trust.noise.combined_se``, by area and ``(overall)``): a drop within twice it is not blamed.
    """
    items = compare_items(rows, base_rows)
    same = set(items.paired)
    cand = {k: v for k, v in scores_by_item(rows).items() if k in same}
    base = {k: v for k, v in scores_by_item(base_rows).items() if k in same}
    both = frozenset(cand.keys() & base.keys())
    cand = {k: v for k, v in cand.items() if k in both}
    base = {k: v for k, v in base.items() if k in both}
    area_of = {r.id: r.area for r in rows}
    areas = list(by_area(rows))
    judge_se = judge_se or {}

    def paired(area: str, confidence: float) -> stats.PairedDelta:
        return stats.paired_delta(
            {k: v for k, v in base.items() if area_of[k] == area},
            {k: v for k, v in cand.items() if area_of[k] == area},
            confidence,
        )

    raw = {a: paired(a, 0.95) for a in areas}
    testable = [a for a in areas if raw[a].n_pairs >= max(2, settings.min_area_pairs)]
    adjusted, level, label = _family([raw[a].p_value for a in testable], settings)
    p_adj = dict(zip(testable, adjusted, strict=True))
    out = {
        a: _area(paired(a, 1 - level), p_adj.get(a), settings, level, label, judge_se.get(a)) for a in areas
    }
    overall = stats.paired_delta(base, cand, confidence=1 - 2 * settings.alpha)
    return DriftReport(items, out, _overall(overall, settings, judge_se.get(OVERALL)), both, level, label)


def _corrected(
    store: Store, report: DriftReport, cand: tuple[str, Sequence[ResultRow]],
    base: tuple[str, Sequence[ResultRow]], s: GateSettings,
) -> tuple[DriftReport, list[str]]:  # fmt: skip
    """``gate: {means: corrected}``: the areas where both runs have enough random human scores decided on
    the PPI++ corrected Δ (its interval at the areas' simultaneous level); the line saying which."""
    found = corrected_deltas(store, cand, base, report.scored_pairs, 1 - report.level)
    areas = dict(report.areas)
    for area, c in found.items():
        if c.estimate is None or c.ci_low is None or c.ci_high is None:
            continue
        delta = stats.PairedDelta(report.areas[area].n_pairs, c.estimate, c.ci_low, c.ci_high, None)
        decided = _area(delta, None, s, report.level, f"{report.label}, corrected (PPI++)", None)
        areas[area] = decided.model_copy(
            update={"note": f"people's Δ corrected from {c.n_human} human scores: {c.note}"}
        )
    used = sorted(a for a in found if areas[a] is not report.areas[a])
    line = (
        f"corrected means (PPI++, random human scores) decide {', '.join(used)}; the judge's means elsewhere"
        if used
        else "corrected means asked for, but no area has 20 random human scores of the same items in both runs: the judge's means decide"
    )
    return dataclasses.replace(report, areas=areas), [line]


@dataclass
class Verdict:
    """The decision on a candidate against a baseline, with the two runs and the drift it read."""

    decision: Decision
    candidate: RunManifest
    baseline: RunManifest | None
    settings: GateSettings
    report: DriftReport | None = None

    @property
    def outcome(self) -> Outcome:
        return self.decision.outcome

    @property
    def reasons(self) -> list[str]:
        return self.decision.reasons

    @property
    def checks(self) -> list[Check]:
        return self.decision.checks

    @property
    def areas(self) -> dict[str, Drift]:
        return self.report.areas if self.report else {}

    @property
    def overall(self) -> Drift | None:
        return self.report.overall if self.report else None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def _unready(role: str, m: RunManifest, h: RunHealth) -> str | None:
    """Why a run cannot take part in a decision (unfinished, or no scores), or None."""
    if m.status != "finished":
        return (
            f"the {role} {m.run_id} is {m.status}, not finished ({h.scored} of {h.rows} answers scored); "
            f"finish it with evals run --resume {m.run_id}, or gate against another run"
        )
    if h.scored == 0:
        return f"the {role} {m.run_id} has no scored answer ({h.rows} of {h.rows} failed); it can be compared with nothing"
    return None


def _fmt(d: Drift) -> str:
    if d.delta is None:
        return "Δ –"
    p = f", p adj. {d.p_adjusted:.3g}" if d.p_adjusted is not None else ""
    return f"Δ {d.delta:+.2f} {d.interval_text()}{p}"


def _thin_reason(report: DriftReport, s: GateSettings) -> str:
    pairs = report.overall.n_pairs
    more = [f"{a} +{d.needed}" for a, d in sorted(report.areas.items()) if d.needed]
    hint = f"; about this many more items per area would let it decide: {', '.join(more)}" if more else ""
    return f"only {pairs} items are scored in both runs (the gate needs {s.min_pairs}){hint}"


def _readiness(
    store: Store, cand: RunManifest, base: RunManifest, s: GateSettings, allow_judge_change: bool,
    cand_health: RunHealth, base_health: RunHealth,
) -> list[str]:  # fmt: skip
    """Why the two runs cannot be decided on at all (empty: they can)."""
    reasons = []
    if cand.suite_name != base.suite_name:
        reasons.append(f"different suites: {cand.suite_name!r} vs {base.suite_name!r}")
    differences = judged_differently(store, cand, base)
    if differences and not allow_judge_change:
        reasons.append(
            "judged differently: " + "; ".join(differences)
            + "; re-judge both with one judge, or pass --allow-judge-change"
        )  # fmt: skip
    if (moved := canary_reason(store, cand.run_id, base.run_id)) and not allow_judge_change:
        reasons.append(moved)  # the judge's anchor scores moved: a drop may be the judge's
    if s.require_calibration is not None:
        reasons += calibration_reasons(store, cand, s.require_calibration)
    for role, m, h in (("candidate", cand, cand_health), ("baseline", base, base_health)):
        if reason := _unready(role, m, h):
            reasons.append(reason)
    if base.status == "finished" and base_health.scored and base_health.error_rate > s.max_error_rate:
        reasons.append(
            f"the baseline {base.run_id} is too thin: {base_health.answer_errors} answer and "
            f"{base_health.judge_errors} judge errors in {base_health.rows} answers "
            f"(the gate allows {s.max_error_rate:.0%}); resume it or gate against another baseline"
        )
    return reasons


def _checks(rows: Sequence[ResultRow], report: DriftReport, s: GateSettings, h: RunHealth) -> list[Check]:
    overall = report.overall
    checks = [
        Check(
            name="overall",
            passed=overall.status not in ("regressed", "not shown non-inferior"),
            message=f"{_fmt(overall)} over {overall.n_pairs} paired items, must be above -{s.margin:g}"
            + (f": {overall.status}" if overall.status != "unchanged" else ""),
        )
    ]
    areas_rows = by_area(rows)
    for area, d in sorted(report.areas.items()):
        failing = d.status == "regressed" or (s.strict_areas and d.status == "not shown non-inferior")
        msg = f"{_fmt(d)}: {d.status}" + (f" ({d.note})" if d.note else "")
        if d.status == "regressed":
            msg += f", a significant drop of at least {s.min_effect:g}"
        elif d.status == "not shown non-inferior":
            msg += f", the drop could exceed the margin {s.margin:g}" + (
                f" (about {d.needed} more items would tell)" if d.needed else ""
            )
        floor = s.floors.get(area)
        if floor is not None:
            figures = area_stats(area, areas_rows[area], s.pass_score)
            mean, rate = figures.mean, figures.pass_rate
            if floor.mean is not None and (mean is None or mean < floor.mean):
                failing, msg = (
                    True,
                    msg + f"; mean {'–' if mean is None else f'{mean:.2f}'} below floor {floor.mean}",
                )
            if floor.pass_rate is not None and (rate is None or rate < floor.pass_rate):
                failing, msg = (
                    True,
                    msg
                    + f"; pass rate {'–' if rate is None else f'{rate:.0%}'} below floor {floor.pass_rate:.0%}",
                )
        checks.append(Check(name=f"area {area}", passed=not failing, message=msg))
    checks.append(Check(
        name="errors", passed=h.error_rate <= s.max_error_rate,
        message=f"{h.answer_errors} answer and {h.judge_errors} judge errors in {h.rows} answers (max {s.max_error_rate:.0%})",
    ))  # fmt: skip
    return checks


def _headline(outcome: Outcome, reasons: list[str], report: DriftReport | None, s: GateSettings) -> str:
    answer = {"pass": "yes", "fail": "no", "cannot decide": "cannot decide"}[outcome]
    if outcome != "pass" or report is None:
        because = reasons[0] if reasons else "no baseline to compare with"
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        return f"safe to ship: {answer}, because {because}{more}"
    o = report.overall
    warned = [
        a for a, d in sorted(report.areas.items()) if d.status in ("not shown non-inferior", "cannot decide")
    ]
    tail = f"; watch {', '.join(warned)}" if warned else ""
    return (
        f"safe to ship: yes, because the overall Δ {o.delta:+.2f} has its {o.interval} at "
        f"{o.delta_ci_low:+.2f}, above the −{s.margin:g} margin, and no area regressed{tail}"
    )


def decide_rows(
    store: Store,
    cand: RunManifest,
    base: RunManifest,
    rows: Sequence[ResultRow],
    base_rows: Sequence[ResultRow],
    settings: GateSettings,
    allow_judge_change: bool = False,
) -> Verdict:
    """The decision on rows already read (the scorecard has them): see the module's docstring."""
    if cand.run_id == base.run_id:  # a run always matches itself: that would be a pass that proves nothing
        reason = f"the candidate and the baseline are the same run {cand.run_id!r}; gate a new run against it"
        return Verdict(
            _decision("cannot decide", [reason], [], None, settings, base, []), cand, base, settings
        )
    cand_health, base_health = health(rows), health(base_rows)
    reasons = _readiness(store, cand, base, settings, allow_judge_change, cand_health, base_health)
    noise_se = combined_se(*(run_noise(store, r, settings.pass_score) for r in (cand.run_id, base.run_id)))
    report = drift(rows, base_rows, settings, noise_se)
    means: list[str] = []
    if settings.means == "corrected":
        report, means = _corrected(store, report, (cand.run_id, rows), (base.run_id, base_rows), settings)
    if report.overall.n_pairs < settings.min_pairs:
        reasons.append(_thin_reason(report, settings))
    notes = means + _confirmed(store, (cand, base), settings)
    if reasons:
        decision = _decision("cannot decide", reasons, [], report, settings, base, notes)
        return Verdict(decision, cand, base, settings, report)
    checks = _checks(rows, report, settings, cand_health)
    failed = [c for c in checks if not c.passed]
    outcome: Outcome = "fail" if failed else "pass"
    failures = [f"{c.name}: {c.message}" for c in failed]
    decision = _decision(outcome, failures, checks, report, settings, base, notes)
    return Verdict(decision, cand, base, settings, report)


def _confirmed(store: Store, runs: Sequence[RunManifest], s: GateSettings) -> list[str]:
    """One line per run that holds verdicts beyond its own repeats: what confirming found."""
    lines = []
    for m in runs:
        f = flips(store, m, s.pass_score)
        if f.answers:
            lines.append(
                f"confirmed before failing: run {m.run_id}: {f.answers} answers graded again; {f.changed} got a different verdict, "
                f"{f.crossed} across the pass score; decided on the mean of their verdicts"
            )
    return lines


def failing_areas(verdict: Verdict) -> list[str]:
    """The areas that fail the decision on their own (what ``confirm_repeats`` re-grades first)."""
    strict = verdict.settings.strict_areas
    return sorted(
        a for a, d in verdict.areas.items()
        if d.status == "regressed" or (strict and d.status == "not shown non-inferior")
    )  # fmt: skip


def _decision(
    outcome: Outcome, reasons: list[str], checks: list[Check], report: DriftReport | None, s: GateSettings,
    base: RunManifest, notes: list[str],
) -> Decision:  # fmt: skip
    warnings = []
    if report is not None:
        for area, d in sorted(report.areas.items()):
            if d.status == "not shown non-inferior" and not s.strict_areas:
                warnings.append(f"area {area}: not shown non-inferior, {_fmt(d)}")
            elif d.status == "cannot decide":
                warnings.append(
                    f"area {area}: cannot decide ({d.note}; about {d.needed} more items would tell)"
                )
    return Decision(
        outcome=outcome, baseline_id=base.run_id, headline=_headline(outcome, reasons, report, s),
        reasons=reasons, checks=checks, warnings=warnings, notes=notes, settings=describe_settings(s),
    )  # fmt: skip


def decide(
    store: Store,
    candidate_id: str,
    baseline_id: str,
    settings: GateSettings,
    allow_judge_change: bool = False,
) -> Verdict:
    """Compare the candidate run with the baseline run under ``settings``: pass, fail or cannot decide."""
    cand, base = store.run(candidate_id), store.run(baseline_id)
    rows = list(store.results(candidate_id))
    base_rows = list(store.results(baseline_id)) if base.run_id != cand.run_id else rows
    return decide_rows(store, cand, base, rows, base_rows, settings, allow_judge_change)
