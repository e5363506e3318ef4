"""The run store: SQLite at ``<reports>/evals.db`` (WAL), evolved by numbered migrations.

Every answer and judgment is committed as it arrives, so a process killed at any moment leaves a
consistent store that ``--resume`` continues. Each run is also exported as JSONL for pandas or DuckDB.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonlines

from evals.errors import StoreError
from evals.files import atomic_path
from evals.names import check_name, run_folder
from evals.records import Answer, Item, Judgment, RunManifest

DB_NAME = "evals.db"


def _m001_initial(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            schema_version INTEGER NOT NULL,
            suite_name TEXT NOT NULL,
            suite_path TEXT NOT NULL,
            suite_hash TEXT NOT NULL,
            model_name TEXT NOT NULL,
            model TEXT,
            model_id TEXT,
            judge_name TEXT NOT NULL,
            judge_model TEXT NOT NULL,
            rubric_name TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            samples INTEGER NOT NULL,
            config_json TEXT NOT NULL,
            tags_json TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            lookingglass_version TEXT NOT NULL
        );
        CREATE INDEX runs_suite ON runs (suite_name, started_at);
        CREATE TABLE items (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            item_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            area TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            item_json TEXT NOT NULL,
            PRIMARY KEY (run_id, item_id)
        );
        CREATE TABLE answers (
            run_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            sample INTEGER NOT NULL,
            text TEXT,
            tokens_in INTEGER,
            tokens_out INTEGER,
            latency_ms REAL,
            model_id TEXT,
            error TEXT,
            PRIMARY KEY (run_id, item_id, sample),
            FOREIGN KEY (run_id, item_id) REFERENCES items (run_id, item_id)
        );
        CREATE TABLE judgments (
            run_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            sample INTEGER NOT NULL,
            score INTEGER CHECK (score BETWEEN 1 AND 5),
            rationale TEXT,
            raw TEXT,
            judge TEXT NOT NULL,
            cache_key TEXT NOT NULL,
            cached INTEGER NOT NULL DEFAULT 0,
            tokens_in INTEGER,
            tokens_out INTEGER,
            latency_ms REAL,
            error TEXT,
            PRIMARY KEY (run_id, item_id, sample),
            FOREIGN KEY (run_id, item_id) REFERENCES items (run_id, item_id)
        );
        CREATE INDEX judgments_cache ON judgments (cache_key) WHERE score IS NOT NULL;
        """
    )


def _m002_baselines(db: sqlite3.Connection) -> None:
    # Append-only: the current baseline of a name is its latest row; older rows are the approval history.
    db.executescript(
        """
        CREATE TABLE baselines (
            name TEXT NOT NULL,
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            set_at TEXT NOT NULL,
            note TEXT
        );
        CREATE INDEX baselines_name ON baselines (name, set_at);
        """
    )


def _m003_answer_finish(db: sqlite3.Connection) -> None:
    # Why the model stopped (a cut-off answer is graded knowing it) and the reasoning kept apart from it.
    db.executescript(
        """
        ALTER TABLE answers ADD COLUMN finish_reason TEXT;
        ALTER TABLE answers ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE answers ADD COLUMN reasoning TEXT;
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial, _m002_baselines, _m003_answer_finish]
"""Applied in order, each once; append new steps, never edit an applied one."""

_ANSWER_COLS = (
    "run_id", "item_id", "sample", "text", "tokens_in", "tokens_out", "latency_ms", "model_id", "error",
    "finish_reason", "truncated", "reasoning",
)  # fmt: skip
_JUDGMENT_COLS = (
    "run_id", "item_id", "sample", "score", "rationale", "raw", "judge", "cache_key", "cached",
    "tokens_in", "tokens_out", "latency_ms", "error",
)  # fmt: skip


_SELECT_ANSWER = ",".join(_ANSWER_COLS)
_SELECT_JUDGMENT = ",".join(_JUDGMENT_COLS)


def _answer(row: tuple[Any, ...]) -> Answer:
    values = dict(zip(_ANSWER_COLS, row, strict=True))
    values["truncated"] = bool(values["truncated"])
    return Answer(**values)


def _judgment(row: tuple[Any, ...]) -> Judgment:
    values = dict(zip(_JUDGMENT_COLS, row, strict=True))
    values["cached"] = bool(values["cached"])
    return Judgment(**values)


def _manifest(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> RunManifest:
    data = dict(zip([d[0] for d in cursor.description], row, strict=True))
    data["config"] = json.loads(data.pop("config_json"))
    data["tags"] = tuple(json.loads(data.pop("tags_json")))
    return RunManifest(**data)


def _pending_migrations(db: sqlite3.Connection) -> list[str]:
    """Names of the migration steps this store has not had yet (all of them for an empty file)."""
    has_table = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='_migrations'").fetchone()
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")} if has_table else set()
    return [step.__name__ for step in MIGRATIONS if step.__name__ not in done]


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    for step in MIGRATIONS:
        if step.__name__ in done:
            continue
        with db:
            step(db)
            db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (step.__name__,))


class _NeedsMigration(Exception):
    def __init__(self, steps: list[str]):
        self.steps = steps


def _writable(path: Path) -> bool:
    # SQLite in WAL mode also creates -wal and -shm files beside the database: the folder must be writable.
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


class Store:
    """The run store of one reports folder.

    ``readonly=True`` (``gate``, ``compare``, ``baseline list``, ``report``, ``index``, ``rollback``) opens
    the database with SQLite's ``mode=ro``: it works on a store whose file and folder are not writable,
    never creates one, and never migrates one that can't be written (a clear error says what to do).
    """

    def __init__(self, reports_dir: Path | str, readonly: bool = False):
        self.reports_dir = Path(reports_dir)
        self.path = self.reports_dir / DB_NAME
        self.readonly = readonly
        if readonly:
            self.db = self._open_readonly()
            return
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open_writable()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the run store: {exc}") from None

    def _open_writable(self) -> sqlite3.Connection:
        # Autocommit: each write below is its own transaction, durable against a crash of this process.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA foreign_keys=ON")
            _migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _connect_readonly(self, immutable: bool) -> sqlite3.Connection:
        uri = self.path.absolute().as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=10000")
            pending = _pending_migrations(db)  # also the first read: fails here if the file can't be read
        except BaseException:
            db.close()
            raise
        if pending:
            db.close()
            raise _NeedsMigration(pending)
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no run store here; run `evals run` first, or pass --reports")
        try:
            try:
                return self._connect_readonly(immutable=False)
            except _NeedsMigration:
                if not _writable(self.path):
                    raise
                self._open_writable().close()  # an older store that can be written is upgraded once
                return self._connect_readonly(immutable=False)
            except sqlite3.OperationalError:
                if _writable(self.path):
                    raise
                # A WAL store in a read-only folder cannot get its -shm file; nobody can write it either,
                # so reading it as immutable is safe.
                return self._connect_readonly(immutable=True)
        except _NeedsMigration as exc:
            raise StoreError(
                f"{self.path}: the run store was written by an older lookingglass and needs upgrading "
                f"({', '.join(exc.steps)}), but it is read-only here; run any evals command once with "
                "write access to the reports folder"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the run store: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close()
        if isinstance(exc, sqlite3.DatabaseError):  # say which store, for a damaged or read-only file
            raise StoreError(f"{self.path}: the run store could not be used: {exc}") from exc

    # runs ---------------------------------------------------------------------------------------------

    def create_run(self, manifest: RunManifest, items: list[Item]) -> None:
        """Record a new run and the items it will ask, in one transaction."""
        m = manifest
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (m.run_id, m.schema_version, m.suite_name, m.suite_path, m.suite_hash, m.model_name, m.model,
                 m.model_id, m.judge_name, m.judge_model, m.rubric_name, m.rubric_hash, m.samples,
                 json.dumps(m.config), json.dumps(list(m.tags)), m.status, m.started_at, m.ended_at,
                 m.lookingglass_version),
            )  # fmt: skip
            self.db.executemany(
                "INSERT INTO items VALUES (?,?,?,?,?,?)",
                [
                    (m.run_id, it.id, pos, it.area, it.content_hash(), it.model_dump_json())
                    for pos, it in enumerate(items)
                ],
            )

    def run(self, run_id: str) -> RunManifest:
        """The manifest of a run; StoreError when there is no such run."""
        cursor = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cursor.fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return _manifest(cursor, row)

    def has_run(self, run_id: str) -> bool:
        """True when a run with this id exists."""
        return self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def runs(self, suite_name: str | None = None) -> list[RunManifest]:
        """All runs (of one suite), oldest first."""
        sql, args = "SELECT * FROM runs", tuple[str, ...]()
        if suite_name is not None:
            sql, args = sql + " WHERE suite_name = ?", (suite_name,)
        cursor = self.db.execute(sql + " ORDER BY started_at, run_id", args)
        return [_manifest(cursor, r) for r in cursor.fetchall()]

    def set_model_id(self, run_id: str, model_id: str) -> None:
        self.db.execute(
            "UPDATE runs SET model_id = ? WHERE run_id = ? AND model_id IS NULL", (model_id, run_id)
        )

    def set_status(self, run_id: str, status: str, ended_at: str | None = None) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", (status, ended_at, run_id)
        )

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        """Replace a run's config snapshot (e.g. to record the output mode its judge settled on)."""
        self.db.execute("UPDATE runs SET config_json = ? WHERE run_id = ?", (json.dumps(config), run_id))

    @contextmanager
    def lock_run(self, run_id: str) -> Iterator[None]:
        """Hold ``runs/<run_id>/.lock`` while a process works the run; StoreError if another one does.

        An ``flock``: the OS releases it when the holder exits, even by kill -9, so it never goes stale.
        """
        path = self.reports_dir / "runs" / run_id / ".lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+")
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the run's lock file: {exc.strerror or exc}") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()[:20]
                raise StoreError(
                    f"run {run_id} is being worked by another evals process"
                    + (f" (pid {holder})" if holder.isdigit() else "")
                    + "; wait for it to end, or stop it, then resume"
                ) from None
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            try:
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
        if self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (name,)).fetchone():
            raise StoreError(f"baseline name {name!r} is the id of a run; choose a name that is not a run id")
        self.db.execute("INSERT INTO baselines VALUES (?, ?, ?, ?)", (name, run_id, set_at, note))

    def baselines(self, history: bool = False) -> list[tuple[str, str, str, str | None]]:
        """(name, run_id, set_at, note): the current baseline of each name, or every approval."""
        rows = self.db.execute(
            "SELECT name, run_id, set_at, note FROM baselines ORDER BY name, set_at, rowid"
        )
        if history:
            return list(rows)
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
        rows = self.db.execute("SELECT item_json FROM items WHERE run_id = ? ORDER BY position", (run_id,))
        return [Item.model_validate_json(r[0]) for r in rows]

    def save_answer(self, answer: Answer) -> None:
        values = tuple(getattr(answer, c) for c in _ANSWER_COLS)
        self.db.execute(
            f"INSERT OR REPLACE INTO answers ({_SELECT_ANSWER}) VALUES ({','.join('?' * len(values))})",
            values,
        )

    def save_judgment(self, judgment: Judgment) -> None:
        values = tuple(getattr(judgment, c) for c in _JUDGMENT_COLS)
        self.db.execute(f"INSERT OR REPLACE INTO judgments VALUES ({','.join('?' * len(values))})", values)

    def answers(self, run_id: str) -> dict[tuple[str, int], Answer]:
        rows = self.db.execute(f"SELECT {_SELECT_ANSWER} FROM answers WHERE run_id = ?", (run_id,))
        return {(r[1], r[2]): _answer(r) for r in rows}

    def judgments(self, run_id: str) -> dict[tuple[str, int], Judgment]:
        rows = self.db.execute(f"SELECT {_SELECT_JUDGMENT} FROM judgments WHERE run_id = ?", (run_id,))
        return {(r[1], r[2]): _judgment(r) for r in rows}

    def cached_judgment(self, cache_key: str) -> Judgment | None:
        """An earlier successful judgment of exactly this (judge, rubric, question, reference, answer)."""
        row = self.db.execute(
            f"SELECT {_SELECT_JUDGMENT} FROM judgments WHERE cache_key = ? AND score IS NOT NULL LIMIT 1",
            (cache_key,),
        ).fetchone()
        return None if row is None else _judgment(row)

    # results ------------------------------------------------------------------------------------------

    def results(self, run_id: str) -> Iterator[dict[str, Any]]:
        """One row per item and sample, answer and judgment joined: the export and the scorecard's input."""
        manifest = self.run(run_id)
        answers = self.answers(run_id)
        judgments = self.judgments(run_id)
        for item in self.items(run_id):
            for sample in range(manifest.samples):
                a = answers.get((item.id, sample))
                j = judgments.get((item.id, sample))
                error = (a.error if a else "not answered") or (j.error if j else "not judged")
                yield {
                    "run_id": run_id,
                    "id": item.id,
                    "sample": sample,
                    "area": item.area,
                    "question": item.prompt_text(),
                    "reference": item.reference,
                    "answer": a.text if a else None,
                    "finish_reason": a.finish_reason if a else None,
                    "truncated": a.truncated if a else False,
                    "reasoning": a.reasoning if a else None,
                    "score": j.score if j and not error else None,
                    "rationale": j.rationale if j else None,
                    "error": error,
                    "error_kind": None if not error else ("answer" if not a or a.error else "judge"),
                    "judge": j.judge if j else None,
                    "cached": j.cached if j else None,
                    "answer_tokens_in": a.tokens_in if a else None,
                    "answer_tokens_out": a.tokens_out if a else None,
                    "answer_latency_ms": a.latency_ms if a else None,
                    "judge_tokens_in": j.tokens_in if j else None,
                    "judge_tokens_out": j.tokens_out if j else None,
                    "judge_latency_ms": j.latency_ms if j else None,
                    "item_hash": item.content_hash(),
                    "tags": list(item.tags),
                }

    def export_jsonl(self, run_id: str, rows: list[dict[str, Any]] | None = None) -> Path:
        """Write ``<reports>/runs/<run_id>/results.jsonl`` (``rows``, if already read) and return its path."""
        out = run_folder(self.reports_dir, run_id) / "results.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp, jsonlines.open(tmp, mode="w", flush=False) as writer:
            writer.write_all(self.results(run_id) if rows is None else rows)
        return out  # readers never see half a file

    # tags (appended by the "truth" work: exclusion of a run) ---------------------------------------------

    def set_tag(self, run_id: str, tag: str, present: bool = True) -> RunManifest:
        """Add (or with ``present=False`` remove) one tag of a run, e.g. ``excluded``; the updated manifest."""
        m = self.run(run_id)
        tags = [t for t in m.tags if t != tag] + ([tag] if present else [])
        self.db.execute("UPDATE runs SET tags_json = ? WHERE run_id = ?", (json.dumps(tags), run_id))
        return self.run(run_id)
