"""The store's schema, evolved by numbered steps, each written once and rendered for SQLite and PostgreSQL.

Each step runs once, in order, inside a transaction, and is recorded by name in the ``_migrations`` table.
Append new steps at the end, never edit an applied one: a store that has it will not run it again (the
numbers are part of the names, not positions; 013 and 014 were never used). The vocabulary (``Table``,
``Index``, ``AddColumn``, ``Reshape``, ``Sql``) and where the dialects differ are ``evals.store.schema``'s;
``SQLITE_MIGRATIONS`` and ``POSTGRES_MIGRATIONS`` are the steps as each backend runs them (the SQLite
backend hands each its connection, the PostgreSQL one its ``execute``). The steps themselves, in order,
are ``steps.py``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import cache
from typing import Any

from evals.store.schema import (
    Dialect,
    render,
)
from evals.store.steps import STEPS


@cache
def scripts(dialect: Dialect) -> dict[str, str]:
    """Each step's SQL in ``dialect``, by name (rendered on first use, not at import)."""
    return render(STEPS, dialect)


def _sqlite_step(name: str) -> Callable[[sqlite3.Connection], None]:
    def step(db: sqlite3.Connection) -> None:
        db.executescript(scripts("sqlite")[name])

    step.__name__ = name
    return step


Execute = Callable[[str], Any]
"""Runs SQL (``psycopg.Connection.execute``)."""


def _postgres_step(name: str) -> Callable[[Execute], None]:
    def step(execute: Execute) -> None:
        execute(scripts("postgresql")[name])

    return step


SQLITE_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_sqlite_step(s.name) for s in STEPS]
"""The steps as the SQLite backend runs them: each takes the connection; ``__name__`` is the step's."""

POSTGRES_MIGRATIONS: list[tuple[str, Callable[[Execute], None]]] = [
    (s.name, _postgres_step(s.name)) for s in STEPS
]
"""The same steps under the same names, as the PostgreSQL backend runs them."""
