"""Calibrations in the store: one row per ``evals judge calibrate``, found by (judge fingerprint, rubric hash).

The row keeps the headline (kappa with its interval, n, the ``--min-kappa`` verdict) in columns and the
whole ``Calibration`` (without the labelled answers' text) as JSON, so a scorecard needs one query.
"""

from __future__ import annotations

from evals.records import content_hash
from evals.store.core import Store
from evals.trust.calibration import Calibration

_COLUMNS = (
    "calibration_id", "judge_fingerprint", "rubric_hash", "judge_name", "judge_model", "rubric_name",
    "created_at", "labels", "labels_hash", "n", "kappa", "kappa_low", "kappa_high", "min_kappa", "passed",
    "record_json",
)  # fmt: skip


def save_calibration(store: Store, calibration: Calibration) -> str:
    """Store a calibration (without the answers' text); its id."""
    record = calibration.model_copy(update={"answers": []})
    body = record.model_dump_json()
    calibration_id = f"{calibration.created_at}-{content_hash(body)}"
    kappa = calibration.overall.kappa
    values = (
        calibration_id, calibration.judge_fingerprint, calibration.rubric_hash, calibration.judge_name,
        calibration.judge_model, calibration.rubric_name, calibration.created_at, calibration.labels,
        calibration.labels_hash, calibration.overall.n, kappa.value, kappa.low, kappa.high,
        calibration.min_kappa, None if calibration.passed is None else int(calibration.passed), body,
    )  # fmt: skip
    store._execute(
        f"INSERT INTO calibrations ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})", values
    )
    return calibration_id


def latest_calibration(store: Store, fingerprints: frozenset[str], rubric_hash: str) -> Calibration | None:
    """The most recent calibration of any of these judge fingerprints with this rubric hash, or None."""
    if not fingerprints:
        return None
    wanted = sorted(fingerprints)
    row = store._execute(
        f"SELECT record_json FROM calibrations WHERE rubric_hash = ? AND judge_fingerprint IN "
        f"({','.join('?' * len(wanted))}) ORDER BY created_at DESC, calibration_id DESC LIMIT 1",
        (rubric_hash, *wanted),
    ).fetchone()
    return None if row is None else Calibration.model_validate_json(row[0])


def calibrations(store: Store) -> list[Calibration]:
    """Every stored calibration, oldest first."""
    rows = store._execute(
        "SELECT record_json FROM calibrations ORDER BY created_at, calibration_id"
    ).fetchall()
    return [Calibration.model_validate_json(r[0]) for r in rows]
