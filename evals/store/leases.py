"""The SQL of one run worked by many processes (``evals worker``): leased units and the fleet's limits.

``run_units`` holds a run's units, one per item and sample, plus its finish (``sample`` -1, ``FINISH``),
leasable once every other unit is done. A worker leases a batch with ``SELECT ... FOR UPDATE SKIP LOCKED``
(two workers never take the same unit, and neither waits for the other), holds it until ``expires_at``,
renews it while it works, and marks it done once its answer and verdicts are stored; a dead worker's units
are leased again once their lease runs out. Times are seconds since the epoch on the database's clock, so
machines whose clocks differ agree on when a lease ends.

The fleet's limits (PostgreSQL only: on SQLite one worker holds its own, ``evals.outbound.fleet``):
``fleet_slots`` (an endpoint's ``max_concurrency`` as that many rows, each held by one worker until it
expires), ``fleet_buckets`` (a token bucket per endpoint and kind, taken from in one conditional update),
``fleet_budgets`` (a run's ``--max-cost``: what its workers spent or hold, one conditional update per call).
Every statement here is one statement, committed alone: none leaves a transaction open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evals.records import Answer, Item, Judgment
from evals.store.core import Store
from evals.store.rows import ANSWER_COLS, JUDGMENT_COLS, answer_of, item_of, judgment_of

FINISH = ("", -1)
"""The (item_id, sample) of a run's finish unit: leased by one worker once every other unit is done."""


class Db(Protocol):
    """A backend connection (``SqliteBackend`` or ``PostgresBackend``) statements run on."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


def _postgres(db: Db) -> bool:
    return type(db).__name__ == "PostgresBackend"


def _now(db: Db) -> str:
    """The database's clock, in seconds since the epoch."""
    if _postgres(db):
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def _skip_locked(db: Db) -> str:
    return " FOR UPDATE SKIP LOCKED" if _postgres(db) else ""  # SQLite: one writer, one worker


# ------------------------------------------------------------------------------------------------ units


def add_units(db: Db, run_id: str, samples: int) -> int:
    """Enter the run's units (each item × sample, and its finish) unless they are in already; how many
    units (finish excluded) the run has. Safe to call from every worker at once."""
    have = db.execute("SELECT count(*) FROM run_units WHERE run_id = ?", (run_id,)).fetchone()[0]
    items = db.execute("SELECT item_id, position FROM items WHERE run_id = ?", (run_id,)).fetchall()
    total = len(items) * samples
    if int(have) != total + 1:
        rows = [(run_id, str(i), s, int(p)) for i, p in items for s in range(samples)]
        rows.append((run_id, *FINISH, -1))
        db.executemany(
            "INSERT INTO run_units (run_id, item_id, sample, position) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, item_id, sample) DO NOTHING",
            rows,
        )
    return total


def lease(db: Db, run_id: str, holder: str, count: int, seconds: float) -> list[tuple[str, int]]:
    """Lease up to ``count`` units not done whose lease is free or ran out, in suite order (an item's
    samples together), to ``holder`` for ``seconds``; the (item_id, sample) of each, in that order."""
    now = _now(db)
    # In the order of the index on (run_id, done, position): the first units are found without sorting
    # all those left, whatever the run's size.
    rows = db.execute(
        f"UPDATE run_units SET holder = ?, expires_at = {now} + ? WHERE (run_id, item_id, sample) IN ("
        "SELECT run_id, item_id, sample FROM run_units WHERE run_id = ? AND done = 0 AND sample >= 0 "
        f"AND (holder IS NULL OR expires_at < {now}) ORDER BY position LIMIT ?{_skip_locked(db)}"
        ") RETURNING position, item_id, sample",
        (holder, seconds, run_id, count),
    ).fetchall()
    return [(str(r[1]), int(r[2])) for r in sorted(rows, key=lambda r: (int(r[0]), int(r[2])))]


def lease_finish(db: Db, run_id: str, holder: str, seconds: float) -> bool:
    """Lease the run's finish when every other unit is done and no live worker holds it; True when won.
    One statement on one row: of workers racing for it, exactly one wins."""
    now = _now(db)
    row = db.execute(
        f"UPDATE run_units SET holder = ?, expires_at = {now} + ? WHERE run_id = ? AND item_id = ? "
        f"AND sample = ? AND done = 0 AND (holder IS NULL OR holder = ? OR expires_at < {now}) AND NOT EXISTS "
        "(SELECT 1 FROM run_units u WHERE u.run_id = ? AND u.sample >= 0 AND u.done = 0) RETURNING sample",
        (holder, seconds, run_id, *FINISH, holder, run_id),
    ).fetchone()
    return row is not None


def finished(db: Db, run_id: str) -> bool:
    """True once the run's finish is done (one lookup by key)."""
    row = db.execute(
        "SELECT done FROM run_units WHERE run_id = ? AND item_id = ? AND sample = ?", (run_id, *FINISH)
    ).fetchone()
    return row is not None and bool(row[0])


def renew(db: Db, run_id: str, holder: str, seconds: float) -> int:
    """Extend the leases ``holder`` still has (units not done) by ``seconds`` from now; how many."""
    cursor = db.execute(
        f"UPDATE run_units SET expires_at = {_now(db)} + ? WHERE run_id = ? AND holder = ? AND done = 0",
        (seconds, run_id, holder),
    )
    return int(cursor.rowcount)


def mark_done(db: Db, run_id: str, keys: Sequence[tuple[str, int]]) -> None:
    """Mark units done (their answer and verdicts are stored), whoever holds them now."""
    db.executemany(  # one statement a unit, each found by its key (one round trip on PostgreSQL: a pipeline)
        "UPDATE run_units SET done = 1, holder = NULL, expires_at = NULL "
        "WHERE run_id = ? AND item_id = ? AND sample = ?",
        [(run_id, item, sample) for item, sample in keys],
    )


def release(db: Db, run_id: str, holder: str) -> None:
    """Give back the units ``holder`` leased and did not finish (a worker stopping), at once."""
    db.execute(
        "UPDATE run_units SET holder = NULL, expires_at = NULL WHERE run_id = ? AND holder = ? AND done = 0",
        (run_id, holder),
    )


@dataclass(frozen=True)
class Progress:
    """Where a worked run stands: units done, leased by a live worker, waiting; its finish done."""

    done: int
    leased: int
    waiting: int
    finished: bool

    @property
    def total(self) -> int:
        return self.done + self.leased + self.waiting


def progress(db: Db, run_id: str) -> Progress:
    """The run's units by state (the finish apart)."""
    now = _now(db)
    row = db.execute(
        "SELECT "
        "COALESCE(SUM(CASE WHEN sample >= 0 AND done = 1 THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN sample >= 0 AND done = 0 AND expires_at >= {now} THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN sample >= 0 AND done = 0 AND (expires_at IS NULL OR "
        f"expires_at < {now}) THEN 1 ELSE 0 END), 0), "
        "COALESCE(MAX(CASE WHEN sample < 0 AND done = 1 THEN 1 ELSE 0 END), 0) "
        "FROM run_units WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return Progress(int(row[0]), int(row[1]), int(row[2]), bool(row[3]))


def live_holders(db: Db, run_id: str) -> list[str]:
    """The workers holding a unit of the run whose lease has not run out."""
    rows = db.execute(
        f"SELECT DISTINCT holder FROM run_units WHERE run_id = ? AND done = 0 AND expires_at >= {_now(db)} "
        "ORDER BY holder",
        (run_id,),
    ).fetchall()
    return [str(r[0]) for r in rows]


# ---------------------------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """The stored state of some units of a run: their items, answers and verdicts (what the runner needs
    to know what is left of them, read in three queries whatever the run's size)."""

    keys: frozenset[tuple[str, int]]
    items: list[Item] = field(default_factory=list)
    answers: dict[tuple[str, int], Answer] = field(default_factory=dict)
    verdicts: list[Judgment] = field(default_factory=list)


def read_batch(store: Store, run_id: str, keys: Sequence[tuple[str, int]]) -> Batch:
    """The items (in suite order), answers and verdicts of the units ``keys`` of a run."""
    store.check_key()
    batch = Batch(frozenset(keys))
    ids = sorted({item for item, _ in keys})
    placed: list[tuple[int, Item]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = _of_items(store, "position, item_json", "items", run_id, chunk)
        placed += [(int(r[0]), item_of(r[1])) for r in rows]
        rows = _of_items(store, ",".join(ANSWER_COLS), "answers", run_id, chunk)
        batch.answers.update({(r[1], r[2]): answer_of(r) for r in rows})
        rows = _of_items(store, ",".join(JUDGMENT_COLS), "judgments", run_id, chunk)
        batch.verdicts += [judgment_of(r) for r in rows]
    batch.items = [item for _, item in sorted(placed, key=lambda p: p[0])]
    return batch


def _of_items(store: Store, columns: str, table: str, run_id: str, ids: Sequence[str]) -> list[Any]:
    """The rows of ``table`` of a run's items ``ids``, each found through the table's key (run, item).

    On PostgreSQL, one lookup per item (a lateral subquery the planner cannot merge): an ``IN`` list would
    do, but a plan made while the run's tables were nearly empty, with no statistics yet, reads every row
    of the run for each batch, as the run grows."""
    if store.dialect == "postgresql":
        sql = (
            f"SELECT t.* FROM unnest(?::text[]) AS k(item_id) CROSS JOIN LATERAL "
            f"(SELECT {columns} FROM {table} WHERE run_id = ? AND item_id = k.item_id OFFSET 0) AS t"
        )
        return list(store._execute(sql, (list(ids), run_id)).fetchall())
    marks = ",".join("?" * len(ids))
    sql = f"SELECT {columns} FROM {table} WHERE run_id = ? AND item_id IN ({marks})"
    return list(store._execute(sql, (run_id, *ids)).fetchall())


# ----------------------------------------------------------------------------------------- fleet limits


def take_slots(db: Db, endpoint: str, limit: int, holder: str, seconds: float, count: int = 1) -> list[int]:
    """Hold up to ``count`` of the first ``limit`` call slots of ``endpoint`` free or expired, for
    ``seconds``, in one statement; their numbers (none when all are held)."""
    now = _now(db)
    rows = db.execute(
        f"UPDATE fleet_slots SET holder = ?, expires_at = {now} + ? WHERE (endpoint, slot) IN ("
        "SELECT endpoint, slot FROM fleet_slots WHERE endpoint = ? AND slot < ? "
        f"AND (holder IS NULL OR expires_at < {now}) ORDER BY slot LIMIT ?{_skip_locked(db)}) RETURNING slot",
        (holder, seconds, endpoint, limit, max(1, count)),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def add_slots(db: Db, endpoint: str, limit: int) -> None:
    """Make sure ``endpoint`` has slot rows 0 to ``limit`` - 1."""
    db.executemany(
        "INSERT INTO fleet_slots (endpoint, slot) VALUES (?, ?) ON CONFLICT (endpoint, slot) DO NOTHING",
        [(endpoint, n) for n in range(limit)],
    )


def give_slots(db: Db, endpoint: str, slots: Sequence[int], holder: str) -> None:
    """Give back the slots ``slots`` of ``endpoint`` that ``holder`` still holds, in one statement."""
    if not slots:
        return
    db.execute(
        "UPDATE fleet_slots SET holder = NULL, expires_at = NULL WHERE endpoint = ? AND holder = ? "
        f"AND slot IN ({','.join('?' * len(slots))})",
        (endpoint, holder, *slots),
    )


def held_slots(db: Db, endpoint: str, holder: str | None = None) -> list[tuple[int, str]]:
    """The (slot, holder) of ``endpoint``'s slots held and not expired (of ``holder`` only, when given)."""
    sql = f"SELECT slot, holder FROM fleet_slots WHERE endpoint = ? AND expires_at >= {_now(db)}"
    args: tuple[Any, ...] = (endpoint,)
    if holder is not None:
        sql, args = sql + " AND holder = ?", (endpoint, holder)
    return [(int(r[0]), str(r[1])) for r in db.execute(sql + " ORDER BY slot", args).fetchall()]


def renew_slots(db: Db, holder: str, seconds: float) -> None:
    db.execute(f"UPDATE fleet_slots SET expires_at = {_now(db)} + ? WHERE holder = ?", (seconds, holder))


def release_slots(db: Db, holder: str) -> None:
    db.execute("UPDATE fleet_slots SET holder = NULL, expires_at = NULL WHERE holder = ?", (holder,))


def take_tokens(db: Db, name: str, cost: float, rate: float, cap: float) -> float:
    """Take ``cost`` from token bucket ``name`` (refilled at ``rate`` a second up to ``cap``; it may go
    below zero, so a call dearer than ``cap`` passes once the bucket is full); 0.0 when taken, else the
    seconds to wait before asking again. PostgreSQL."""
    now = _now(db)
    level = f"LEAST(?, level + GREATEST(0, {now} - at) * ?)"
    need = min(cost, cap)
    row = db.execute(
        f"UPDATE fleet_buckets SET level = {level} - ?, at = {now} WHERE name = ? AND {level} >= ? "
        "RETURNING level",
        (cap, rate, cost, name, cap, rate, need),
    ).fetchone()
    if row is not None:
        return 0.0
    found = db.execute(f"SELECT {level} FROM fleet_buckets WHERE name = ?", (cap, rate, name)).fetchone()
    if found is None:
        db.execute(
            f"INSERT INTO fleet_buckets (name, level, at) VALUES (?, ?, {now}) ON CONFLICT (name) DO NOTHING",
            (name, cap),
        )
        return take_tokens(db, name, cost, rate, cap)
    return max(0.001, (need - float(found[0])) / rate)


def give_tokens(db: Db, name: str, amount: float) -> None:
    """Put ``amount`` back into bucket ``name`` (negative: take more), once a call's real usage is known."""
    db.execute("UPDATE fleet_buckets SET level = level + ? WHERE name = ?", (amount, name))


def set_budget(db: Db, run_id: str, max_cost: float) -> None:
    """The run's ``--max-cost`` for all its workers (the last one given wins; what was spent stays)."""
    db.execute(
        "INSERT INTO fleet_budgets (run_id, max_cost) VALUES (?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET max_cost = excluded.max_cost",
        (run_id, max_cost),
    )


def hold_budget(db: Db, run_id: str, bound: float) -> bool:
    """Count ``bound`` as spent when it fits under the run's limit; False when it would cross it."""
    row = db.execute(
        "UPDATE fleet_budgets SET spent = spent + ? WHERE run_id = ? AND spent + ? <= max_cost "
        "RETURNING spent",
        (bound, run_id, bound),
    ).fetchone()
    return row is not None


def settle_budget(db: Db, run_id: str, held: float, cost: float) -> None:
    """A call returned: its held bound replaced by what it cost."""
    db.execute("UPDATE fleet_budgets SET spent = spent - ? + ? WHERE run_id = ?", (held, cost, run_id))


def budget_limit(db: Db, run_id: str) -> float | None:
    """The run's ``--max-cost`` as its workers hold it; None when none was given."""
    row = db.execute("SELECT max_cost FROM fleet_budgets WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else float(row[0])


def budget_spent(db: Db, run_id: str) -> float:
    row = db.execute("SELECT spent FROM fleet_budgets WHERE run_id = ?", (run_id,)).fetchone()
    return 0.0 if row is None else float(row[0])


# ------------------------------------------------------------------------------------------- run status


def set_running(db: Db, run_id: str) -> None:
    """Mark a planned, interrupted or failed run running again (its stored aggregates go, as with
    ``Store.set_status``); a running or finished one stays as it is."""
    cursor = db.execute(
        "UPDATE runs SET status = 'running', ended_at = NULL WHERE run_id = ? "
        "AND status IN ('planned', 'interrupted', 'failed')",
        (run_id,),
    )
    if cursor.rowcount:
        db.execute("DELETE FROM run_areas WHERE run_id = ?", (run_id,))


def set_stopped(db: Db, run_id: str) -> bool:
    """Mark a running run interrupted when no worker holds a live lease on it any more (the last worker
    stopped before the end); True when marked."""
    cursor = db.execute(
        "UPDATE runs SET status = 'interrupted' WHERE run_id = ? AND status = 'running' AND NOT EXISTS "
        f"(SELECT 1 FROM run_units WHERE run_id = ? AND done = 0 AND expires_at >= {_now(db)})",
        (run_id, run_id),
    )
    return bool(cursor.rowcount)
