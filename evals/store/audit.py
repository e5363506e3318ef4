"""The audit trail's SQL (``evals.outbound.audit`` holds the logic): append records and heads, read them back,
and read what the rest of the store says about the calls each run made.

Two tables, both append-only: ``audit_records`` (one hash chain per run or other chain, keyed by
``(chain_id, seq)``) and ``audit_heads`` (the chains' head hashes, chained in turn, keyed by ``seq``). The
primary keys make a forked chain impossible: two appenders racing for one ``seq`` cannot both win.
Reads page through the rows by key (``WHERE (chain_id, seq) > (?, ?)``), so a verify of millions of records
holds one page in memory on either backend.

A third, ``audit_imports``, names the runs whose calls were recorded elsewhere (brought by ``evals import``
or ``evals store copy``). The evidence a chain must cover comes from the runs' own rows (``run_calls``):
answers a model call returned and verdicts a judge call returned; when the trail began is when the store
gained its audit tables (``trail_began``, from the table of applied migration steps).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evals.store.core import Store

RECORD_COLS = (
    "chain_id", "seq", "at", "kind", "run_id", "item_id", "sample", "role", "endpoint", "url", "model",
    "sha256", "redactions_json", "status", "attempt", "details_json", "prev_hash", "hash",
)  # fmt: skip
HEAD_COLS = ("seq", "chain_id", "head_hash", "count", "at", "prev_hash", "hash")
PAGE = 5000
"""Rows read per query when streaming a chain."""
WORKER_MARK = "@"
"""Between a run's id and a worker's in the chain of that worker's calls (``evals.outbound.audit``)."""
_HEADS_LOCK = 0x617564697468656164  # PostgreSQL advisory-lock key serializing appends to audit_heads
_HEADS_LOCK &= (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One stored audit record, as its columns hold it (JSON columns still text)."""

    chain_id: str
    seq: int
    at: str
    kind: str
    run_id: str | None
    item_id: str | None
    sample: int | None
    role: str | None
    endpoint: str | None
    url: str | None
    model: str | None
    sha256: str | None
    redactions_json: str
    status: str | None
    attempt: int | None
    details_json: str
    prev_hash: str
    hash: str

    @property
    def redactions(self) -> dict[str, Any]:
        value = json.loads(self.redactions_json)
        return value if isinstance(value, dict) else {}

    @property
    def details(self) -> dict[str, Any]:
        value = json.loads(self.details_json)
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class HeadRow:
    """One entry of the heads chain: chain ``chain_id`` had ``count`` records ending in ``head_hash``."""

    seq: int
    chain_id: str
    head_hash: str
    count: int
    at: str
    prev_hash: str
    hash: str


def _record(row: Any) -> RecordRow:
    return RecordRow(*row)


def tail(store: Store, chain_id: str) -> tuple[int, str] | None:
    """The last record's (seq, hash) of a chain, or None for an empty one."""
    row = store._execute(
        "SELECT seq, hash FROM audit_records WHERE chain_id = ? ORDER BY seq DESC LIMIT 1", (chain_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def insert_record(store: Store, row: RecordRow) -> None:
    """Append one record (one statement: durable when it returns; a taken ``seq`` is the store's error)."""
    store._execute(
        f"INSERT INTO audit_records ({','.join(RECORD_COLS)}) VALUES ({','.join('?' * len(RECORD_COLS))})",
        tuple(getattr(row, c) for c in RECORD_COLS),
    )


def records(store: Store, chain_id: str | None = None) -> Iterator[RecordRow]:
    """Every record (of one chain, and of its run's workers' chains), by chain then seq, a page at a time."""
    cols = ",".join(RECORD_COLS)
    where = "" if chain_id is None else "(chain_id = ? OR substr(chain_id, 1, ?) = ?) AND "
    first: tuple[Any, ...] = ()
    if chain_id is not None:
        first = (chain_id, len(chain_id) + len(WORKER_MARK), chain_id + WORKER_MARK)
    after: tuple[str, int] = ("", -1)
    while True:
        page = store._execute(
            f"SELECT {cols} FROM audit_records WHERE {where}(chain_id, seq) > (?, ?) "
            f"ORDER BY chain_id, seq LIMIT {PAGE}",
            (*first, *after),
        ).fetchall()
        for row in page:
            yield _record(row)
        if len(page) < PAGE:
            return
        after = (str(page[-1][0]), int(page[-1][1]))


def worker_chains(store: Store, run_id: str) -> list[str]:
    """The chains of the ``evals worker`` processes that worked a run (``<run id>@<worker>``)."""
    prefix = run_id + WORKER_MARK
    rows = store._execute(
        "SELECT DISTINCT chain_id FROM audit_records WHERE substr(chain_id, 1, ?) = ? ORDER BY chain_id",
        (len(prefix), prefix),
    ).fetchall()
    return [str(r[0]) for r in rows]


def item_records(store: Store, item_id: str, run_id: str | None = None) -> list[RecordRow]:
    """The records of the calls made for one item (of one run), in the order they were sent."""
    sql = f"SELECT {','.join(RECORD_COLS)} FROM audit_records WHERE item_id = ?"
    args: tuple[Any, ...] = (item_id,)
    if run_id is not None:
        sql, args = sql + " AND run_id = ?", (item_id, run_id)
    return [_record(r) for r in store._execute(sql + " ORDER BY at, chain_id, seq", args).fetchall()]


def heads(store: Store) -> list[HeadRow]:
    """The heads chain, in order (one entry per run invocation: small)."""
    rows = store._execute(f"SELECT {','.join(HEAD_COLS)} FROM audit_heads ORDER BY seq").fetchall()
    return [HeadRow(*r) for r in rows]


def last_head(store: Store, chain_id: str | None = None) -> HeadRow | None:
    """The newest heads-chain entry (of one chain)."""
    sql, args = f"SELECT {','.join(HEAD_COLS)} FROM audit_heads", tuple[str, ...]()
    if chain_id is not None:
        sql, args = sql + " WHERE chain_id = ?", (chain_id,)
    row = store._execute(sql + " ORDER BY seq DESC LIMIT 1", args).fetchone()
    return None if row is None else HeadRow(*row)


def insert_head(store: Store, row: HeadRow) -> None:
    store._execute(
        f"INSERT INTO audit_heads ({','.join(HEAD_COLS)}) VALUES ({','.join('?' * len(HEAD_COLS))})",
        tuple(getattr(row, c) for c in HEAD_COLS),
    )


@contextmanager
def heads_locked(store: Store) -> Iterator[None]:
    """A transaction that alone may append to ``audit_heads`` until it ends, across processes and machines.

    PostgreSQL: a transaction-scoped advisory lock, released at commit. SQLite: ``BEGIN IMMEDIATE`` takes
    the file's write lock at once (waiting up to the busy timeout), so the read of the last head and the
    insert after it see no other writer in between.
    """
    if store.dialect == "postgresql":
        with store.backend.transaction():
            store._execute("SELECT pg_advisory_xact_lock(?)", (_HEADS_LOCK,))
            yield
        return
    db = store.backend.db
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# ------------------------------------------------------------------------------------- what runs did


AUDIT_STEP = "_m008_audit"
"""The migration step that gave the store its audit tables: the trail began when it was applied."""


def stored_time(text: str | None) -> datetime | None:
    """A stored time as an aware datetime (a time without an offset is UTC, as SQLite's ``datetime('now')``
    writes it); None when there is none or it cannot be read."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def trail_began(store: Store) -> datetime | None:
    """When this store gained its audit tables (the migration step was applied); None if it cannot say."""
    row = store._execute("SELECT applied_at FROM _migrations WHERE name = ?", (AUDIT_STEP,)).fetchone()
    return None if row is None else stored_time(str(row[0]))


@dataclass(frozen=True, slots=True)
class Imported:
    """A run brought into this store: its calls are on the trail of the store that made them."""

    run_id: str
    how: str
    """``import`` (``evals import``), ``copy`` (``evals store copy``), or ``unmarked``: already here without
    a chain when the store began to mark imports."""
    source: str | None
    """The export folder or the source store (without credentials); None for ``unmarked``."""
    at: str


@dataclass(frozen=True, slots=True)
class RunCalls:
    """What a run's own rows say about the calls it made in this store: what its chain must cover."""

    run_id: str
    started_at: str
    status: str
    answers: int
    """Answers a model call returned (they keep its latency); 0 for a rerun, whose answers were copied."""
    verdicts: int
    """Verdicts a judge call returned (latency kept), not reused from the judgment cache."""
    last_answer: datetime | None
    """When the newest of those answers came back (None for runs stored before answers kept the time)."""

    @property
    def calls(self) -> int:
        """How many of its results came back from a call (each is at least one record on its chain)."""
        return self.answers + self.verdicts


def run_calls(store: Store, run_id: str | None = None) -> list[RunCalls]:
    """Every run's (or one run's) ``RunCalls``, by run id."""
    where, args = ("WHERE r.run_id = ?", (run_id,)) if run_id is not None else ("", ())
    rows = store._execute(
        "SELECT r.run_id, r.started_at, r.status, r.config_json, "
        "(SELECT COUNT(*) FROM answers a WHERE a.run_id = r.run_id AND a.latency_ms IS NOT NULL), "
        "(SELECT MAX(a.finished_at) FROM answers a WHERE a.run_id = r.run_id AND a.latency_ms IS NOT NULL), "
        "(SELECT COUNT(*) FROM judgments j WHERE j.run_id = r.run_id AND j.cached = 0 "
        f"AND j.latency_ms IS NOT NULL) FROM runs r {where} ORDER BY r.run_id",
        args,
    ).fetchall()
    found = []
    for run, started, status, config_json, answers, last, verdicts in rows:
        try:
            copied = "rerun_of" in json.loads(config_json)  # evals.trust.rerun: answers copied, never asked
        except (TypeError, ValueError):
            copied = False
        found.append(
            RunCalls(
                str(run), str(started), str(status), 0 if copied else int(answers), int(verdicts),
                None if copied or last is None else datetime.fromtimestamp(float(last), UTC),
            )
        )  # fmt: skip
    return found


def imported(store: Store) -> dict[str, Imported]:
    """The runs brought into this store, by run id."""
    rows = store._execute("SELECT run_id, how, source, at FROM audit_imports").fetchall()
    return {str(r[0]): Imported(str(r[0]), str(r[1]), r[2], str(r[3])) for r in rows}


def has_chain(store: Store, chain_id: str) -> bool:
    """Whether the chain has a record or a head in this store."""
    return tail(store, chain_id) is not None or last_head(store, chain_id) is not None


def mark_imported(store: Store, run_id: str, how: str, source: str | None) -> bool:
    """Enter a run brought from elsewhere (``how``: ``import`` or ``copy``) unless it has a chain here (it was
    made here; what came with it changes nothing) or is entered already; True when entered."""
    if has_chain(store, run_id):
        return False
    cursor = store._execute(
        "INSERT INTO audit_imports (run_id, how, source, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO NOTHING",
        (run_id, how, source, datetime.now(UTC).isoformat(timespec="seconds")),
    )
    return bool(cursor.rowcount)
