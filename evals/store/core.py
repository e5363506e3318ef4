"""The run store over either backend: runs, items, answers, judgments and baselines, the same SQL for both.

Every answer and judgment is committed as it arrives, so a process killed at any moment leaves a
consistent store that ``--resume`` continues. Each run is also exported as ``results.jsonl`` and
``manifest.json`` (for pandas, DuckDB and ``evals import``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonlines

from evals.errors import ConfigError, StoreError
from evals.files import atomic_path, write_atomic
from evals.names import check_name, run_folder
from evals.records import Answer, Item, JudgingProvenance, Judgment, RunConfig, RunManifest
from evals.results import ResultRow
from evals.secrets import Address, AddressError, parse_address
from evals.store.aggregates import COLUMNS as AGGREGATE_COLS
from evals.store.aggregates import OVERALL, AreaAggregate, aggregate_of, run_aggregates
from evals.store.crypto import KEY_ENV, codec
from evals.store.keycheck import verify as verify_key
from evals.store.postgres import PostgresBackend
from evals.store.rows import (
    ANSWER_COLS,
    BASELINE_COLS,
    ITEM_COLS,
    JUDGMENT_COLS,
    JUDGMENT_KEY,
    KEY,
    PURGED,
    RUN_COLS,
    answer_of,
    answer_values,
    config_json,
    export_manifest,
    item_of,
    item_values,
    judgment_of,
    judgment_values,
    manifest_of,
    panel_aggregation,
    result_row,
    run_values,
    upsert_sql,
)
from evals.store.sqlite import DB_NAME, SqliteBackend

DEFAULT_PASS_SCORE = 4
"""The scorecard's default lowest passing score; aggregates counted with another are recomputed."""
STORE_ENV = "EVALS_STORE"
"""Environment variable naming the store (``postgresql://user@host/db``, ``host=... dbname=...`` or a SQLite
file); wins over ``store:`` in the config."""

_SELECT_RUN = ",".join(RUN_COLS)
_SELECT_ANSWER = ",".join(ANSWER_COLS)
_SELECT_JUDGMENT = ",".join(JUDGMENT_COLS)


def checked_address(value: str, source: str) -> Address:
    """``value`` as a store address (``evals.secrets.parse_address``); a ``ConfigError`` naming ``source`` (the
    setting it came from) when it is none, which never repeats the value."""
    try:
        return parse_address(value)
    except AddressError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def store_url(config_store: str | None = None) -> str | None:
    """The store to use: ``EVALS_STORE`` (checked), else the config's ``store:``; None means the reports
    folder's SQLite."""
    named = os.environ.get(STORE_ENV)
    if named:
        checked_address(named, STORE_ENV)
        return named
    return config_store or None


class Store:
    """The run store: the reports folder's SQLite file, or the PostgreSQL database ``url`` names.

    ``url`` (a PostgreSQL URL or keyword string, or a SQLite file) None means ``EVALS_STORE`` if set, else
    ``<reports_dir>/evals.db``. A PostgreSQL store still
    keeps each run's exports and lock file under ``<reports_dir>/runs/``. ``readonly=True`` (``gate``,
    ``compare``, ``baseline list``, ``report``, ``index``, ``rollback``) opens SQLite with ``mode=ro``: it
    works on a store whose file and folder are not writable, never creates one, and never migrates one that
    can't be written (a clear error says what to do).
    """

    def __init__(
        self,
        reports_dir: Path | str,
        readonly: bool = False,
        url: str | None = None,
        password_env: str | None = None,
    ):
        self.reports_dir = Path(reports_dir)
        self.readonly = readonly
        url = url if url is not None else store_url()
        address = checked_address(url, "store") if url else None
        codec()  # a malformed EVALS_STORE_KEY is one line before a store is created or opened
        self.backend: SqliteBackend | PostgresBackend
        if address is not None and address.kind == "postgresql":
            self.backend = PostgresBackend(address, readonly, password_env)
            self.path: Path | str = self.backend.where
        else:
            self.path = Path(address.target) if address else self.reports_dir / DB_NAME
            if self.path.is_dir():
                self.path = self.path / DB_NAME
            self.backend = SqliteBackend(self.path, readonly)
        self.db = self.backend.db
        """The backend's own connection (tests and migrations only; everything else goes through methods)."""
        self._key_checked: str | None = None

    def check_key(self) -> None:
        """Refuse an ``EVALS_STORE_KEY`` that is not this store's key (``evals.store.keycheck``): a
        ``StoreError`` before any text is written or read. Done once per key; nothing without a key."""
        keys = os.environ.get(KEY_ENV) or None
        if keys is None or keys == self._key_checked:
            return
        verify_key(self.backend, codec(), self.readonly)
        self._key_checked = keys

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "postgresql" if isinstance(self.backend, PostgresBackend) else "sqlite"

    @property
    def inline(self) -> bool:
        """True when a statement takes microseconds (SQLite: a local file): async code runs it in place, as a
        hop to a thread would cost more than the statement. A PostgreSQL round trip goes to a thread. (A
        second process writing the same SQLite file at that moment pauses the run until it is done, at most
        the busy timeout: one machine's store.)"""
        return self.dialect == "sqlite"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close()
        if self.backend.is_error(exc):  # say which store, for a damaged, read-only or unreachable one
            assert exc is not None
            detail = self.backend.describe(exc) if isinstance(self.backend, PostgresBackend) else str(exc)
            raise StoreError(f"{self.path}: the run store could not be used: {detail}") from exc

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self.backend.execute(sql, args)

    # runs ---------------------------------------------------------------------------------------------

    def create_run(self, manifest: RunManifest, items: list[Item]) -> None:
        """Record a new run and the items it will ask, in one transaction."""
        self.check_key()
        with self.backend.transaction():
            self._insert_run(manifest, items)

    def _insert_run(self, manifest: RunManifest, items: list[Item]) -> None:
        """The run's row and its items' rows (inside the caller's transaction)."""
        self._execute(
            f"INSERT INTO runs ({_SELECT_RUN}) VALUES ({','.join('?' * len(RUN_COLS))})", run_values(manifest)
        )
        self.backend.executemany(
            f"INSERT INTO items ({','.join(ITEM_COLS)}) VALUES (?,?,?,?,?,?)",
            [item_values(manifest.run_id, pos, it) for pos, it in enumerate(items)],
        )

    def run(self, run_id: str) -> RunManifest:
        """The manifest of a run; StoreError when there is no such run."""
        row = self._execute(f"SELECT {_SELECT_RUN} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return manifest_of(row)

    def has_run(self, run_id: str) -> bool:
        """True when a run with this id exists."""
        return self._execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def runs(self, suite_name: str | None = None) -> list[RunManifest]:
        """All runs (of one suite), oldest first."""
        sql, args = f"SELECT {_SELECT_RUN} FROM runs", tuple[str, ...]()
        if suite_name is not None:
            sql, args = sql + " WHERE suite_name = ?", (suite_name,)
        return [manifest_of(r) for r in self._execute(sql + " ORDER BY started_at, run_id", args).fetchall()]

    def set_model_id(self, run_id: str, model_id: str) -> None:
        self._execute(
            "UPDATE runs SET model_id = ? WHERE run_id = ? AND model_id IS NULL", (model_id, run_id)
        )

    def set_status(self, run_id: str, status: str, ended_at: str | None = None) -> None:
        """Set a run's status; its stored aggregates go (a resumed run is no longer what they counted)."""
        with self.backend.transaction():
            self._execute("DELETE FROM run_areas WHERE run_id = ?", (run_id,))
            self._execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", (status, ended_at, run_id)
            )

    def set_tag(self, run_id: str, tag: str, present: bool = True) -> RunManifest:
        """Add (or with ``present=False`` remove) one tag of a run, e.g. ``excluded``; the updated manifest."""
        m = self.run(run_id)
        tags = [t for t in m.tags if t != tag] + ([tag] if present else [])
        self._execute("UPDATE runs SET tags_json = ? WHERE run_id = ?", (json.dumps(tags), run_id))
        return self.run(run_id)

    def set_config(self, run_id: str, config: RunConfig) -> None:
        """Replace a run's config snapshot (e.g. to record the output mode its judge settled on)."""
        self._execute("UPDATE runs SET config_json = ? WHERE run_id = ?", (config_json(config), run_id))

    @contextmanager
    def lock_run(self, run_id: str, shared: bool = False) -> Iterator[None]:
        """Hold the run while a process works it; StoreError if another one does.

        ``runs/<run_id>/.lock`` is ``flock``ed (the OS releases it when the holder exits, even by kill -9,
        so it never goes stale); a PostgreSQL store also holds the run's advisory lock, which works across
        machines and is released when the holder's connection ends. ``shared``: held by any number of
        ``evals worker`` processes at once (PostgreSQL), and by no other process meanwhile.
        """
        path = self.reports_dir / "runs" / run_id / ".lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+")
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the run's lock file: {exc.strerror or exc}") from None
        with handle:
            try:
                fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()[:20]
                raise StoreError(
                    f"run {run_id} is being worked by another evals process"
                    + (f" (pid {holder})" if holder.isdigit() else "")
                    + "; wait for it to end, or stop it, then resume"
                ) from None
            if not shared:
                handle.truncate(0)
                handle.write(str(os.getpid()))
                handle.flush()
            try:
                with self.backend.lock(run_id, shared):
                    yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # baselines ----------------------------------------------------------------------------------------

    def set_baseline(self, name: str, run_id: str, set_at: str, note: str | None = None) -> None:
        """Approve ``run_id`` as baseline ``name``; earlier approvals stay in the history.

        A name must follow ``evals.names.NAME_PATTERN`` and may not be the id of a run: ``baseline()`` looks
        names up first, so such a name would hide that run.
        """
        check_name(name, "baseline name")
        self.run(run_id)
        if self.has_run(name):
            raise StoreError(f"baseline name {name!r} is the id of a run; choose a name that is not a run id")
        self._execute(
            f"INSERT INTO baselines ({','.join(BASELINE_COLS)}) VALUES (?, ?, ?, ?)",
            (name, run_id, set_at, note),
        )

    def baselines(self, history: bool = False) -> list[tuple[str, str, str, str | None]]:
        """(name, run_id, set_at, note): the current baseline of each name, or every approval."""
        order = self.backend.insertion_order
        rows = [
            tuple(r)
            for r in self._execute(
                f"SELECT name, run_id, set_at, note FROM baselines ORDER BY name, set_at, {order}"
            ).fetchall()
        ]
        if history:
            return rows
        return list({r[0]: r for r in rows}.values())

    def baseline(self, name_or_run: str) -> RunManifest:
        """The run a baseline name points to, or the run with that id."""
        current = {name: run_id for name, run_id, _, _ in self.baselines()}
        if name_or_run in current:
            return self.run(current[name_or_run])
        try:
            return self.run(name_or_run)
        except StoreError:
            names = ", ".join(sorted(current)) or "none yet (evals baseline set RUN_ID --name NAME)"
            raise StoreError(
                f"{name_or_run!r} is neither a baseline name nor a run id; baselines: {names}"
            ) from None

    # items, answers, judgments ------------------------------------------------------------------------

    def items(self, run_id: str) -> list[Item]:
        """The run's items, in suite order."""
        self.check_key()
        rows = self._execute("SELECT item_json FROM items WHERE run_id = ? ORDER BY position", (run_id,))
        return [item_of(r[0]) for r in rows.fetchall()]

    def save_answer(self, answer: Answer) -> None:
        """Store an answer, replacing an earlier one of the same item and sample (a retried error)."""
        self.check_key()
        self._execute(upsert_sql("answers", ANSWER_COLS, KEY), answer_values(answer))

    def keep_answer(self, answer: Answer) -> Answer:
        """Store an answer unless one with text is stored already for its item and sample (the runner's
        write: a unit asked again by a second worker after the first one's lease ran out keeps the first
        answer, which its verdicts grade); the answer stored."""
        self.check_key()
        cursor = self._execute(
            upsert_sql("answers", ANSWER_COLS, KEY)
            + " WHERE answers.text IS NULL OR answers.error IS NOT NULL",
            answer_values(answer),
        )
        if cursor.rowcount != 0:
            return answer
        row = self._execute(
            f"SELECT {_SELECT_ANSWER} FROM answers WHERE run_id = ? AND item_id = ? AND sample = ?",
            (answer.run_id, answer.item_id, answer.sample),
        ).fetchone()
        return answer if row is None else answer_of(row)

    def save_judgment(self, judgment: Judgment) -> None:
        """Store a verdict, replacing an earlier one of the same item, sample, repeat and judge."""
        self.check_key()
        self._execute(upsert_sql("judgments", JUDGMENT_COLS, JUDGMENT_KEY), judgment_values(judgment))

    def answers(self, run_id: str) -> dict[tuple[str, int], Answer]:
        self.check_key()
        rows = self._execute(f"SELECT {_SELECT_ANSWER} FROM answers WHERE run_id = ?", (run_id,))
        return {(r[1], r[2]): answer_of(r) for r in rows.fetchall()}

    def verdicts(self, run_id: str) -> list[Judgment]:
        """Every verdict of a run (all repeats, all judges), by item, sample, repeat and judge."""
        self.check_key()
        rows = self._execute(
            f"SELECT {_SELECT_JUDGMENT} FROM judgments WHERE run_id = ? "
            "ORDER BY item_id, sample, repeat, judge",
            (run_id,),
        )
        return [judgment_of(r) for r in rows.fetchall()]

    def judgments(self, run_id: str) -> dict[tuple[str, int], Judgment]:
        """One verdict per (item, sample): a scored one if there is any (resume asks only for the rest)."""
        out: dict[tuple[str, int], Judgment] = {}
        for j in self.verdicts(run_id):
            held = out.get((j.item_id, j.sample))
            if held is None or (held.score is None and j.score is not None):
                out[(j.item_id, j.sample)] = j
        return out

    def judging_provenance(self, run_id: str) -> JudgingProvenance:
        """Which judges (fingerprints, reported model ids) and rubric versions graded a run's scored
        answers: one query, whatever the run's size."""
        rows = self._execute(
            "SELECT DISTINCT judge_fingerprint, model_id, rubric_hash FROM judgments "
            "WHERE run_id = ? AND score IS NOT NULL",
            (run_id,),
        ).fetchall()
        return JudgingProvenance(
            fingerprints=frozenset(r[0] for r in rows if r[0] is not None),
            model_ids=frozenset(r[1] for r in rows if r[1] is not None),
            rubric_hashes=frozenset(r[2] for r in rows if r[2] is not None),
        )

    def cached_judgment(self, cache_key: str, run_id: str | None = None) -> Judgment | None:
        """An earlier successful judgment of exactly this (judge, rubric, question, reference, answer).

        With ``run_id``, that run's repeated askings (repeat > 0) are not offered: the first verdict of an
        answer must not be a copy of a repeat meant to measure how much the judge varies.
        """
        self.check_key()
        row = self._execute(
            f"SELECT {_SELECT_JUDGMENT} FROM judgments WHERE cache_key = ? AND score IS NOT NULL "
            "AND NOT (run_id = ? AND repeat <> 0) "
            "ORDER BY CASE WHEN rationale = ? THEN 1 ELSE 0 END LIMIT 1",  # a purged verdict's reasons are gone
            (cache_key, run_id or "", PURGED),
        ).fetchone()
        return None if row is None else judgment_of(row)

    # results ------------------------------------------------------------------------------------------

    def results(self, run_id: str) -> Iterator[ResultRow]:
        """One row per item and sample, its answer and the aggregate of its verdicts: the export and the
        input of the run table, the scorecard and the gate."""
        manifest = self.run(run_id)
        answers = self.answers(run_id)
        verdicts: dict[tuple[str, int], list[Judgment]] = {}
        for j in self.verdicts(run_id):
            verdicts.setdefault((j.item_id, j.sample), []).append(j)
        # The hash as stored: what the item asked, even once its text is purged or unreadable without the key.
        hashes = dict(
            self._execute("SELECT item_id, content_hash FROM items WHERE run_id = ?", (run_id,)).fetchall()
        )
        aggregate = panel_aggregation(manifest)
        for item in self.items(run_id):
            for sample in range(manifest.samples):
                yield result_row(
                    run_id, item, sample, answers.get((item.id, sample)), verdicts.get((item.id, sample), []),
                    stored_hash=hashes.get(item.id), aggregate=aggregate,
                )  # fmt: skip

    def export_jsonl(self, run_id: str, rows: list[ResultRow] | None = None) -> Path:
        """Write ``<reports>/runs/<run_id>/results.jsonl`` (``rows``, if already read) and, beside it,
        ``manifest.json`` (the run and its items, what ``evals import`` needs); return the results' path."""
        folder = run_folder(self.reports_dir, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "results.jsonl"
        write_atomic(folder / "manifest.json", export_manifest(self.run(run_id), self.items(run_id)))
        with atomic_path(out) as tmp, jsonlines.open(tmp, mode="w", flush=False) as writer:
            writer.write_all(r.to_dict() for r in (self.results(run_id) if rows is None else rows))
        return out  # readers never see half a file

    # aggregates ---------------------------------------------------------------------------------------

    def save_aggregates(
        self,
        run_id: str,
        rows: Sequence[ResultRow] | None = None,
        pass_score: float = DEFAULT_PASS_SCORE,
    ) -> list[AreaAggregate]:
        """A run's per-area aggregates from its results (``rows``, if already read), stored when the run has
        ended (finished, interrupted, failed: not while ``running``) and the store can be written, else only
        returned. Any status change drops them, so a resumed run is counted again when it ends."""
        manifest = self.run(run_id)
        aggregates = run_aggregates(run_id, list(self.results(run_id)) if rows is None else rows, pass_score)
        if manifest.status != "running":
            self._write_aggregates(run_id, aggregates)
        return aggregates

    def _write_aggregates(self, run_id: str, aggregates: list[AreaAggregate]) -> None:
        insert = f"INSERT INTO run_areas ({','.join(AGGREGATE_COLS)}) VALUES ({','.join('?' * len(AGGREGATE_COLS))})"
        try:
            # A read-only command (report, index) still stores a backfill when the store can be written.
            with self.backend.writer(self.readonly) as writer:
                if writer is None:
                    return
                with writer.transaction():
                    writer.execute("DELETE FROM run_areas WHERE run_id = ?", (run_id,))
                    writer.executemany(insert, [a.values() for a in aggregates])
        except Exception as exc:
            if not self.backend.is_error(exc):
                raise
            # Not allowed to write here: the aggregates serve this command from memory.

    def aggregates(
        self, run_ids: Sequence[str], pass_score: float = DEFAULT_PASS_SCORE, area: str | None = None
    ) -> dict[str, list[AreaAggregate]]:
        """The per-area aggregates of each run (areas by name, ``(overall)`` among them; only ``area``'s
        when given), read from ``run_areas``; a run without them (older stores, a run still running) gets them
        computed once."""
        found: dict[str, list[AreaAggregate]] = defaultdict(list)
        wanted = list(dict.fromkeys(run_ids))
        # The whole run's row is stored with every run's, so it tells which runs have theirs.
        only = "" if area is None else " AND area IN (?, ?)"
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            cursor = self._execute(
                f"SELECT {','.join(AGGREGATE_COLS)} FROM run_areas WHERE pass_score = ?{only} "
                f"AND run_id IN ({','.join('?' * len(chunk))}) ORDER BY run_id, area",
                (float(pass_score), *(() if area is None else (area, OVERALL)), *chunk),
            )
            for row in cursor.fetchall():
                found[row[0]].append(aggregate_of(row))
        for run_id in wanted:
            if run_id not in found:
                found[run_id] = self.save_aggregates(run_id, pass_score=pass_score)
        return {run_id: [a for a in found[run_id] if area is None or a.area == area] for run_id in wanted}
