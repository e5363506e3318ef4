"""The scorecard's calibration line: the latest calibration of the judge and rubric that graded the run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from evals.config import RequireCalibration
from evals.records import RunManifest
from evals.results import ResultRow
from evals.scorecard.sections import CalibrationNote
from evals.store import Store
from evals.trust.calibration import calibrations, latest_calibration, residuals_of
from evals.trust.conformal import answer_interval, conformal_width, straddles

NOT_CALIBRATED = "judge not calibrated"
"""What every rendering says when no calibration of the run's judge and rubric is stored."""


def calibration_note(
    store: Store, run: RunManifest, rows: Sequence[ResultRow] = (), pass_score: int = 4
) -> CalibrationNote | None:
    """The latest calibration stored for a fingerprint that graded the run and the run's rubric hash, with
    the answers of ``rows`` whose conformal interval (from that calibration's residuals) straddles the pass
    score, counted per area."""
    found = latest_calibration(store, store.judging_provenance(run.run_id).fingerprints, run.rubric_hash)
    if found is None:
        return None
    width = conformal_width(residuals_of(found))
    uncertain: dict[str, int] = {}
    for r in rows:
        if r.score is not None and straddles(answer_interval(r.score, width), pass_score):
            uncertain[r.area] = uncertain.get(r.area, 0) + 1
    kappa = found.overall.kappa
    return CalibrationNote(
        kappa=kappa.value,
        kappa_low=kappa.low,
        kappa_high=kappa.high,
        n=found.overall.n,
        created_at=found.created_at,
        labels=found.labels,
        min_kappa=found.min_kappa,
        passed=found.passed,
        doubt=width.note,
        uncertain=uncertain,
    )


def calibration_line(note: CalibrationNote | None) -> str:
    """The calibration as one line of the terminal summary."""
    if note is None:
        return NOT_CALIBRATED
    kappa = "–" if note.kappa is None else f"{note.kappa:.2f}"
    interval = (
        ""
        if note.kappa_low is None or note.kappa_high is None
        else f" [{note.kappa_low:.2f}, {note.kappa_high:.2f}]"
    )
    verdict = "cannot tell" if note.passed is None else ("above" if note.passed else "BELOW")
    line = (
        f"judge calibration: weighted kappa {kappa}{interval} on {note.n} labelled answers "
        f"({note.created_at}), {verdict} min kappa {note.min_kappa:g}"
    )
    return line + (f"; {uncertain_line(note)}" if note.uncertain else "")


def uncertain_line(note: CalibrationNote) -> str:
    """The answers the judge's verdict does not settle, per area (what ``evals review export`` sends first)."""
    counts = ", ".join(f"{area} {n}" for area, n in sorted(note.uncertain.items()))
    return f"answers whose interval straddles the pass score (people first: evals review export): {counts}"


def calibration_reasons(
    store: Store, run: RunManifest, required: RequireCalibration, now: datetime | None = None
) -> list[str]:
    """Why the run's judge is not calibrated as ``gate: {require_calibration}`` asks (empty: it is).

    Each judge fingerprint that graded the run (each member of a panel) with each rubric version it used
    needs a calibration of its own, at most ``max_age_days`` old, whose kappa's lower bound clears
    ``min_kappa``. Every reason names the command that fixes it.
    """
    provenance = store.judging_provenance(run.run_id)
    now = now or datetime.now(UTC)
    fix = f"evals judge calibrate --labels LABELS --judge {run.judge_name}"
    others = {(c.judge_name, c.rubric_hash): c.judge_fingerprint for c in calibrations(store)}
    if not provenance.fingerprints:
        return [
            f"the verdicts of run {run.run_id} do not name their judge's fingerprint (an older run), so its "
            f"calibration cannot be checked; re-judge it with evals judge rerun {run.run_id}"
        ]
    reasons = []
    for fingerprint in sorted(provenance.fingerprints):
        for rubric_hash in sorted(provenance.rubric_hashes or {run.rubric_hash}):
            found = latest_calibration(store, frozenset({fingerprint}), rubric_hash)
            who = f"judge {fingerprint[:12]} with rubric {rubric_hash[:12]}"
            if found is None:
                other = others.get((run.judge_name, rubric_hash))
                elsewhere = f" (only another fingerprint, {other[:12]}, was calibrated)" if other else ""
                reasons.append(f"{who} has no calibration{elsewhere}; the gate requires one: {fix}")
                continue
            made = datetime.fromisoformat(found.created_at)
            made = made if made.tzinfo else made.replace(tzinfo=UTC)
            low = found.overall.kappa.low
            if now - made > timedelta(days=required.max_age_days):
                reasons.append(
                    f"{who} was last calibrated {(now - made).days} days ago (the gate allows "
                    f"{required.max_age_days}); calibrate it again: {fix}"
                )
            elif low is None or low < required.min_kappa:
                shown = "no interval" if low is None else f"a kappa lower bound of {low:.2f}"
                reasons.append(
                    f"{who} is calibrated with {shown}, below the {required.min_kappa:g} the gate requires; "
                    f"improve the judge or its rubric and calibrate again: {fix}"
                )
    return reasons
