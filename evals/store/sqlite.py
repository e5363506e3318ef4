"""The SQLite backend: ``<reports>/evals.db`` in WAL mode, the embedded default store."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evals.errors import StoreError
from evals.store.migrations import SQLITE_MIGRATIONS

DB_NAME = "evals.db"


def _pending_migrations(db: sqlite3.Connection) -> list[str]:
    """Names of the migration steps this store has not had yet (all of them for an empty file)."""
    has_table = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='_migrations'").fetchone()
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")} if has_table else set()
    return [step.__name__ for step in SQLITE_MIGRATIONS if step.__name__ not in done]


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    for step in SQLITE_MIGRATIONS:
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


class SqliteBackend:
    """One SQLite file; ``readonly`` opens it with ``mode=ro`` (never creates, never migrates a file that
    can't be written: a clear error says what to do)."""

    insertion_order = "rowid"
    """The column that orders rows as they were inserted (baselines approved within one second)."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        self.where = str(path)
        if readonly:
            self.db = self._open_readonly()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open_writable()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the run store: {exc}") from None

    def _open_writable(self) -> sqlite3.Connection:
        # Autocommit: each write is its own transaction, durable against a crash of this process. Writes
        # may come from the runner's worker threads; SQLite serializes them on the connection.
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

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); the cursor, to fetch from."""
        return self.db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        with self.db:
            self.db.execute("BEGIN")
            yield

    @contextmanager
    def lock(self, run_id: str, shared: bool = False) -> Iterator[None]:
        """Nothing beyond the run folder's ``flock``: one SQLite file is one machine's."""
        yield

    @contextmanager
    def writer(self, readonly: bool) -> Iterator[SqliteBackend | None]:
        """This backend when it writes, else a short writable connection when the file can be written,
        else None."""
        if not readonly:
            yield self
            return
        if not _writable(self.path):
            yield None
            return
        aside = SqliteBackend(self.path)
        try:
            yield aside
        finally:
            aside.close()

    def is_error(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` is this database's own failure (damaged or read-only file)."""
        return isinstance(exc, sqlite3.DatabaseError)

    def close(self) -> None:
        self.db.close()
