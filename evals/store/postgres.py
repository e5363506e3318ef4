"""The PostgreSQL backend: one store for a team's machines (``store: postgresql://user@host/db``, or a libpq
keyword string ``host=... dbname=... user=...``; ``evals.secrets.parse_address`` checks both).

psycopg 3 is imported only when such a store is opened (the ``postgres`` extra). The password never
appears in the URL, the config, a message or the store: libpq reads ``PGPASSWORD`` (or ``~/.pgpass``)
itself, or ``store_password_env`` names another variable. Several processes on several machines may
write at once: every row has a natural key, migrations are serialized by an advisory lock, and a run is
worked by one process at a time through ``pg_try_advisory_lock`` keyed by its id.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from evals.errors import ConfigError, StoreError
from evals.secrets import Address, is_postgres, scrub
from evals.store.migrations import POSTGRES_MIGRATIONS

_MIGRATION_LOCK = 0x6C6F6F6B696E67  # any fixed key: one process migrates while the others wait


def is_postgres_url(url: str | None) -> bool:
    """Whether a store setting names a PostgreSQL database (a URL or a keyword string, ``evals.secrets.parse_address``)."""
    return is_postgres(url)


def run_lock_key(run_id: str) -> int:
    """The advisory-lock key of a run: 64 bits of a hash of its id, the same on every machine."""
    digest = hashlib.sha256(b"lookingglass-run:" + run_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class PostgresBackend:
    """A connection to one PostgreSQL database, in autocommit: each write is durable when it returns."""

    insertion_order = "seq"

    def __init__(
        self, address: Address, readonly: bool = False, password_env: str | None = None, migrate: bool = True
    ):
        # ``address`` is checked (``evals.secrets.parse_address``): it holds no password.
        self.where = address.shown
        self._address, self._password_env = address, password_env
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise ConfigError(
                    f"store {self.where}: store_password_env names {password_env}, which is not set"
                )
        self._secrets = [password]
        try:
            import psycopg  # a heavy optional dependency, needed only for this backend
        except ImportError:
            raise ConfigError(
                f"store {self.where} needs psycopg: pip install 'lookingglass[postgres]'"
            ) from None
        self._psycopg = psycopg
        try:
            extra: dict[str, Any] = {"password": password} if password else {}
            self.db = psycopg.connect(address.target, autocommit=True, connect_timeout=10, **extra)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot connect to the run store: {self._message(exc)}") from None
        try:
            if migrate:
                self._migrate()
            if readonly:  # a command that only reads cannot write by mistake
                self.db.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            self.db.close()
            raise StoreError(f"{self.where}: cannot prepare the run store: {self._message(exc)}") from None
        except BaseException:
            self.db.close()
            raise

    def twin(self) -> PostgresBackend:
        """Another connection to the same database, migrated already: work on it never waits behind this
        one's statements (``evals worker``'s leases and fleet limits)."""
        return PostgresBackend(self._address, password_env=self._password_env, migrate=False)

    def _message(self, exc: BaseException) -> str:
        return scrub(_one_line(str(exc)), self._secrets)

    def _migrate(self) -> None:
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in self.db.execute("SELECT name FROM _migrations")}
            for name, step in POSTGRES_MIGRATIONS:
                if name not in done:
                    step(self.db.execute)
                    self.db.execute("INSERT INTO _migrations VALUES (%s, now()::text)", (name,))

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement written with ``?`` placeholders; the cursor, to fetch from."""
        return self.db.execute(sql.replace("?", "%s"), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.db.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        with self.db.transaction():
            yield

    @contextmanager
    def lock(self, run_id: str, shared: bool = False) -> Iterator[None]:
        """Hold the run's advisory lock: one process on any machine works a run (``shared``: any number
        of ``evals worker`` processes, and no other process). The server releases it when the connection
        ends, so a killed process never leaves it stale."""
        key = run_lock_key(run_id)
        kind = "_shared" if shared else ""
        row = self.db.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", (key,)).fetchone()
        if not (row and row[0]):
            raise StoreError(
                f"run {run_id} is being worked by another evals process (on this or another machine "
                f"using {self.where}); wait for it to end, or stop it, then resume"
            )
        try:
            yield
        finally:
            if not self.db.closed:
                self.db.execute(f"SELECT pg_advisory_unlock{kind}(%s)", (key,))

    @contextmanager
    def writer(self, readonly: bool) -> Iterator[PostgresBackend | None]:
        """This connection, in a transaction that may write even when the session is read-only (a role
        without write permission fails, and the caller keeps its figures in memory)."""
        if not readonly:
            yield self
            return
        with self.db.transaction():
            self.db.execute("SET TRANSACTION READ WRITE")
            yield self

    def is_error(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` is the database's own failure."""
        return isinstance(exc, self._psycopg.Error)

    def describe(self, exc: BaseException) -> str:
        """The database's message, one line, with no secret in it."""
        return self._message(exc)

    def close(self) -> None:
        self.db.close()
