"""The store's tables as typed descriptions, and their rendering in SQLite's or PostgreSQL's dialect.

``migrations.py`` writes each numbered step once in this vocabulary (a ``Table`` or an ``Index`` to create,
an ``AddColumn``, a ``Reshape``, or ``Sql`` that moves data); ``render`` turns the steps into one script
per step for either dialect. The dialects differ only here:

- types: a count that may pass 2**31 (tokens, sequence numbers) is ``BIGINT`` in PostgreSQL and
  ``INTEGER`` in SQLite (64-bit already); a real number is ``DOUBLE PRECISION`` there and ``REAL`` here.
  JSON is ``TEXT`` and a flag ``INTEGER`` (0 or 1) in both, so both backends hand back the same Python
  values; a column of type ``INSERTION_ORDER`` exists only in PostgreSQL (SQLite has its ``rowid``);
- a ``Reshape`` (a new primary key, a column's new type) alters the table in place in PostgreSQL; SQLite
  cannot, so the table is rebuilt from its description as the earlier steps left it (create, copy, drop,
  rename, re-index) inside one transaction, so that a crash leaves the old table or the new one;
- ``Sql`` is written per dialect where a function differs (JSON functions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Type:
    """A column type as each dialect spells it; ``sqlite=None``: SQLite has the column built in."""

    sqlite: str | None
    postgres: str

    def sql(self, dialect: Dialect) -> str | None:
        return self.sqlite if dialect == "sqlite" else self.postgres


TEXT = Type("TEXT", "TEXT")
"""Text, and JSON kept as text."""
INTEGER = Type("INTEGER", "INTEGER")
"""A small whole number (a position, a sample, a count of items), or a flag: 0 or 1."""
BIGINT = Type("INTEGER", "BIGINT")
"""A count that may pass 2**31: tokens, sequence numbers."""
REAL = Type("REAL", "DOUBLE PRECISION")
"""A real number: scores, latencies, statistics."""
INSERTION_ORDER = Type(None, "BIGSERIAL")
"""The order rows were inserted in: SQLite's implicit ``rowid``, a column of its own in PostgreSQL."""


@dataclass(frozen=True)
class Column:
    """One column: ``default`` and ``check`` are SQL; ``references`` names the table whose column of the
    same name this one points to."""

    name: str
    type: Type
    not_null: bool = False
    default: str | None = None
    check: str | None = None
    references: str | None = None
    primary_key: bool = False

    def sql(self, dialect: Dialect) -> str:
        parts = [self.name, self.type.sql(dialect) or ""]
        if self.primary_key:
            parts.append("PRIMARY KEY")
        if self.not_null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.check:
            parts.append(f"CHECK ({self.check})")
        if self.references:
            parts.append(f"REFERENCES {self.references} ({self.name})")
        return " ".join(parts)


def _present(columns: Iterable[Column], dialect: Dialect) -> list[Column]:
    """The columns a dialect stores itself (not SQLite's built-in rowid)."""
    return [column for column in columns if column.type.sql(dialect) is not None]


@dataclass(frozen=True)
class ForeignKey:
    """Columns that together point to the same-named columns of another table."""

    columns: tuple[str, ...]
    table: str

    def sql(self) -> str:
        names = ", ".join(self.columns)
        return f"FOREIGN KEY ({names}) REFERENCES {self.table} ({names})"


@dataclass(frozen=True)
class Table:
    """A table to create; ``primary_key`` names a key of several columns (one column says it itself)."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    def create(self, dialect: Dialect, name: str | None = None) -> str:
        lines = [column.sql(dialect) for column in _present(self.columns, dialect)]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        lines += [key.sql() for key in self.foreign_keys]
        body = ",\n    ".join(lines)
        return f"CREATE TABLE {name or self.name} (\n    {body}\n)"


@dataclass(frozen=True)
class Index:
    """An index to create; ``where`` (SQL) makes it partial."""

    name: str
    table: str
    columns: tuple[str, ...]
    where: str | None = None

    def sql(self) -> str:
        where = f" WHERE {self.where}" if self.where else ""
        return f"CREATE INDEX {self.name} ON {self.table} ({', '.join(self.columns)}){where}"


@dataclass(frozen=True)
class AddColumn:
    """A column added at the end of an existing table."""

    table: str
    column: Column


@dataclass(frozen=True)
class Reshape:
    """Columns added, columns given a new type, and (unless None) a new primary key, in one change.

    SQLite's rebuild drops the old table: one that other tables' foreign keys point to needs more care
    (foreign keys off around the step) than this change gives.
    """

    table: str
    add: tuple[Column, ...] = ()
    retype: tuple[tuple[str, Type], ...] = ()
    primary_key: tuple[str, ...] | None = None

    def applied_to(self, table: Table) -> Table:
        types = dict(self.retype)
        unknown = set(types) - {column.name for column in table.columns}
        if unknown:
            raise ValueError(f"reshape of {table.name}: no column {', '.join(sorted(unknown))}")
        columns = tuple(replace(c, type=types.get(c.name, c.type)) for c in table.columns) + self.add
        if self.primary_key is None:
            return replace(table, columns=columns)
        columns = tuple(replace(c, primary_key=False) for c in columns)  # the new key replaces a column's own
        return replace(table, columns=columns, primary_key=self.primary_key)


@dataclass(frozen=True)
class Sql:
    """A statement that moves data, the same in both dialects unless ``postgres`` is given."""

    sqlite: str
    postgres: str | None = None

    def sql(self, dialect: Dialect) -> str:
        return self.postgres if dialect == "postgresql" and self.postgres is not None else self.sqlite


Change = Table | Index | AddColumn | Reshape | Sql


@dataclass(frozen=True)
class Step:
    """One numbered step: ``name`` is what the ``_migrations`` table records."""

    name: str
    changes: tuple[Change, ...]


class _Schema:
    """The tables and indexes as the steps rendered so far left them (what a SQLite rebuild copies)."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self.tables: dict[str, Table] = {}
        self.indexes: list[Index] = []

    def statements(self, change: Change) -> list[str]:
        dialect = self.dialect
        match change:
            case Table():
                self.tables[change.name] = change
                return [change.create(dialect)]
            case Index():
                self.indexes.append(change)
                return [change.sql()]
            case AddColumn(table, column):
                old = self.tables[table]
                self.tables[table] = replace(old, columns=(*old.columns, column))
                return [
                    f"ALTER TABLE {table} ADD COLUMN {c.sql(dialect)}" for c in _present([column], dialect)
                ]
            case Sql():
                return [change.sql(dialect)]
            case Reshape():
                old = self.tables[change.table]
                new = self.tables[change.table] = change.applied_to(old)
                if dialect == "postgresql":
                    return _alter(change, old)
                return self._rebuild(old, new)

    def _rebuild(self, old: Table, new: Table) -> list[str]:
        name, aside = old.name, f"{old.name}_new"
        copied = ", ".join(column.name for column in _present(old.columns, self.dialect))
        return [
            "BEGIN",  # the connection autocommits: the rebuild is one transaction of its own
            new.create(self.dialect, name=aside),
            f"INSERT INTO {aside} ({copied}) SELECT {copied} FROM {name}",
            f"DROP TABLE {name}",
            f"ALTER TABLE {aside} RENAME TO {name}",
            *[index.sql() for index in self.indexes if index.table == name],
            "COMMIT",
        ]


def _alter(change: Reshape, old: Table) -> list[str]:
    """PostgreSQL's in-place form of a reshape of ``old``."""
    table = change.table
    statements = [f"ALTER TABLE {table} ADD COLUMN {column.sql('postgresql')}" for column in change.add]
    statements += [f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {t.postgres}" for name, t in change.retype]
    if change.primary_key is not None:
        if old.primary_key or any(column.primary_key for column in old.columns):
            statements.append(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")  # PostgreSQL's own name
        statements.append(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(change.primary_key)})")
    return statements


def render(steps: Iterable[Step], dialect: Dialect) -> dict[str, str]:
    """Each step's script in ``dialect`` (statements ending in ``;``), by name, in order."""
    schema = _Schema(dialect)
    scripts: dict[str, str] = {}
    for step in steps:
        if step.name in scripts:
            raise ValueError(f"two migration steps named {step.name}")
        scripts[step.name] = "".join(
            f"{sql};\n" for change in step.changes for sql in schema.statements(change)
        )
    return scripts


def tables(steps: Iterable[Step]) -> dict[str, Table]:
    """The tables as all of ``steps`` leave them."""
    schema = _Schema("sqlite")
    for step in steps:
        for change in step.changes:
            schema.statements(change)
    return schema.tables
