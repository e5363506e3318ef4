"""Calibrations in the store: one row per ``evals judge calibrate``, found by (judge fingerprint, rubric hash).

The row keeps the headline (kappa with its interval, n, the ``--min-kappa`` verdict) in columns and the
whole record as JSON, so a scorecard needs one query. The record is ``evals.trust.calibration``'s
``Calibration``, which writes and reads that JSON; this module holds the SQL.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from evals.records import content_hash
from evals.store.core import Store

_COLUMNS = (
    "calibration_id", "judge_fingerprint", "rubric_hash", "judge_name", "judge_model", "rubric_name",
    "created_at", "labels", "labels_hash", "n", "kappa", "kappa_low", "kappa_high", "min_kappa", "passed",
    "record_json",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """One calibration as stored: its headline columns (in column order) and the whole record as JSON."""

    judge_fingerprint: str
    rubric_hash: str
    judge_name: str
    judge_model: str
    rubric_name: str
    created_at: str
    labels: str
    labels_hash: str
    n: int
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    min_kappa: float
    passed: bool | None
    record_json: str
    """The whole record (without the labelled answers' text)."""


def insert_calibration(store: Store, row: CalibrationRow) -> str:
    """Store a calibration; its id (when it was made, then the hash of its record)."""
    calibration_id = f"{row.created_at}-{content_hash(row.record_json)}"
    # PostgreSQL will not put a boolean into an integer column: ``passed`` is stored as 0/1.
    passed = None if row.passed is None else int(row.passed)
    values = (calibration_id, *astuple(row)[:-2], passed, row.record_json)
    store._execute(
        f"INSERT INTO calibrations ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})", values
    )
    return calibration_id


def latest_calibration_json(store: Store, fingerprints: frozenset[str], rubric_hash: str) -> str | None:
    """The record of the most recent calibration of any of these judge fingerprints with this rubric hash."""
    if not fingerprints:
        return None
    wanted = sorted(fingerprints)
    row = store._execute(
        f"SELECT record_json FROM calibrations WHERE rubric_hash = ? AND judge_fingerprint IN "
        f"({','.join('?' * len(wanted))}) ORDER BY created_at DESC, calibration_id DESC LIMIT 1",
        (rubric_hash, *wanted),
    ).fetchone()
    return None if row is None else row[0]


def calibration_jsons(store: Store) -> list[str]:
    """The record of every stored calibration, oldest first."""
    rows = store._execute(
        "SELECT record_json FROM calibrations ORDER BY created_at, calibration_id"
    ).fetchall()
    return [r[0] for r in rows]
