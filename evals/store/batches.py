"""The batches a run submitted to a vendor's batch API (``judging: batch``), kept so that nothing is paid twice.

A batch is stored the moment the vendor accepted it (``judge_batches``), with one row per request in it
(``judge_batch_requests``: the custom id, the verdict it asks for, the SHA-256 of the request as submitted).
A run stopped at any point after that (Ctrl-C, kill -9, ``--detach``) finds its open batches here when it
is resumed, and collects them instead of submitting them again. A batch is closed (``collected_at``) once
its results were read and every verdict it owed is stored, from it or from the online fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evals.store.core import Store

_BATCH_COLS = (
    "batch_id", "run_id", "judge", "endpoint", "vendor", "requests", "submitted_at", "collected_at", "outcome",
)  # fmt: skip
_REQUEST_COLS = ("batch_id", "custom_id", "run_id", "item_id", "sample", "repeat", "sha256")


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One batch a run submitted (fields in ``judge_batches``' column order)."""

    batch_id: str
    """The vendor's id (``msgbatch_...``, ``batch_...``)."""
    run_id: str
    judge: str
    """The judge's label (``name (model), rubric ...``), as its verdicts carry it."""
    endpoint: str
    """The judge's name in evals.yaml."""
    vendor: str
    """``anthropic`` or ``openai``."""
    requests: int
    submitted_at: str
    collected_at: str | None = None
    """When its results were read and its verdicts stored; None while it is open."""
    outcome: str | None = None
    """What came back: ``42 answered, 3 expired``... (None while open)."""


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """One request of a batch: the verdict it asks for (fields in ``judge_batch_requests``' column order)."""

    batch_id: str
    custom_id: str
    run_id: str
    item_id: str
    sample: int
    repeat: int
    sha256: str
    """SHA-256 of the request's line as submitted (its RFC 8785 JSON), as its audit record holds it."""


def save_batch(store: Store, batch: StoredBatch, requests: Sequence[StoredRequest]) -> None:
    """Keep a batch the vendor accepted and its requests, in one transaction."""
    marks = ",".join("?" for _ in _BATCH_COLS)
    request_marks = ",".join("?" for _ in _REQUEST_COLS)
    with store.backend.transaction():
        store._execute(
            f"INSERT INTO judge_batches ({','.join(_BATCH_COLS)}) VALUES ({marks})", _values(batch)
        )
        store.backend.executemany(
            f"INSERT INTO judge_batch_requests ({','.join(_REQUEST_COLS)}) VALUES ({request_marks})",
            [_values(r) for r in requests],
        )


def open_batches(store: Store, run_id: str, judge: str) -> list[StoredBatch]:
    """The batches of ``run_id``'s judge ``judge`` not collected yet, oldest first."""
    rows = store._execute(
        f"SELECT {','.join(_BATCH_COLS)} FROM judge_batches "
        "WHERE run_id = ? AND judge = ? AND collected_at IS NULL ORDER BY submitted_at, batch_id",
        (run_id, judge),
    ).fetchall()
    return [StoredBatch(*r) for r in rows]


def batches(store: Store, run_id: str) -> list[StoredBatch]:
    """Every batch of ``run_id``, open or collected, oldest first."""
    rows = store._execute(
        f"SELECT {','.join(_BATCH_COLS)} FROM judge_batches WHERE run_id = ? ORDER BY submitted_at, batch_id",
        (run_id,),
    ).fetchall()
    return [StoredBatch(*r) for r in rows]


def batch_requests(store: Store, batch_id: str) -> list[StoredRequest]:
    """The requests of one batch, in the order they were submitted."""
    rows = store._execute(
        f"SELECT {','.join(_REQUEST_COLS)} FROM judge_batch_requests WHERE batch_id = ? ORDER BY custom_id",
        (batch_id,),
    ).fetchall()
    return [StoredRequest(*r) for r in rows]


def close_batch(store: Store, batch_id: str, collected_at: str, outcome: str) -> None:
    """Mark a batch collected: its verdicts are stored, a resume leaves it alone."""
    store._execute(
        "UPDATE judge_batches SET collected_at = ?, outcome = ? WHERE batch_id = ?",
        (collected_at, outcome, batch_id),
    )


def _values(row: StoredBatch | StoredRequest) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in row.__slots__)
