"""The scorecard's calibration line: the latest calibration of the judge and rubric that graded the run."""

from __future__ import annotations

from evals.records import RunManifest
from evals.scorecard.sections import CalibrationNote
from evals.store import Store
from evals.trust.calibration import latest_calibration

NOT_CALIBRATED = "judge not calibrated"
"""What every rendering says when no calibration of the run's judge and rubric is stored."""


def calibration_note(store: Store, run: RunManifest) -> CalibrationNote | None:
    """The latest calibration stored for a fingerprint that graded the run and the run's rubric hash."""
    found = latest_calibration(store, store.judging_provenance(run.run_id).fingerprints, run.rubric_hash)
    if found is None:
        return None
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
    return (
        f"judge calibration: weighted kappa {kappa}{interval} on {note.n} labelled answers "
        f"({note.created_at}), {verdict} min kappa {note.min_kappa:g}"
    )
