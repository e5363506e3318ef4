"""The schema description (evals.store.schema): what the steps describe is what a migrated store holds, in
either dialect, and a reshape keeps a table's rows and indexes."""

import sqlite3

import pytest

from evals.store import Store
from evals.store.migrations import STEPS
from evals.store.schema import (
    INSERTION_ORDER,
    INTEGER,
    REAL,
    TEXT,
    Column,
    Index,
    Reshape,
    Step,
    Table,
    render,
    tables,
)

# How PostgreSQL's catalog names the types the description spells for it.
_PG_CATALOG = {
    "TEXT": "text",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE PRECISION": "double precision",
}


def _described(dialect):
    """(column, type, not null) per table, and the primary key, as the steps describe them."""
    out = {}
    for name, table in tables(STEPS).items():
        key = table.primary_key or tuple(c.name for c in table.columns if c.primary_key)
        columns = []
        for c in table.columns:
            spelled = c.type.sql(dialect)
            if spelled is None:  # SQLite's rowid: no column of its own
                continue
            if dialect == "postgresql":
                spelled = "bigint" if spelled == "BIGSERIAL" else _PG_CATALOG[spelled]
            # PostgreSQL makes a key's columns and a serial NOT NULL; SQLite keeps what the column says
            not_null = c.not_null or (
                dialect == "postgresql" and (c.name in key or c.type == INSERTION_ORDER)
            )
            columns.append((c.name, spelled, not_null))
        out[name] = (columns, list(key))
    return out


def _sqlite_tables(db):
    out = {}
    names = [
        r[0]
        for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != '_migrations'")
    ]
    for name in names:
        info = list(db.execute(f"PRAGMA table_info({name})"))
        key = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
        out[name] = ([(r[1], r[2], bool(r[3])) for r in info], key)
    return out


def _postgres_tables(db):
    out = {}
    rows = db.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name != '_migrations' ORDER BY table_name, ordinal_position"
    )
    for table, column, data_type, nullable in rows:
        out.setdefault(table, ([], []))[0].append((column, data_type, nullable == "NO"))
    keys = db.execute(
        "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c "
        "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name, table_name) "
        "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = 'public' ORDER BY k.ordinal_position"
    )
    for table, column in keys:
        if table in out:
            out[table][1].append(column)
    return out


def test_a_migrated_store_holds_exactly_the_described_tables(tmp_path, store_url):
    with Store(tmp_path, url=store_url) as store:
        if store.dialect == "sqlite":
            found = _sqlite_tables(store.db)
        else:
            found = _postgres_tables(store.db)
    expected = _described(store.dialect)
    assert sorted(found) == sorted(expected)
    for name, (columns, key) in expected.items():
        assert found[name] == (columns, key), name


_BEFORE = Step(
    "t1",
    (
        Table("notes", (Column("id", TEXT, not_null=True), Column("n", INTEGER), Column("body", TEXT))),
        Table("pinned", (Column("id", TEXT, primary_key=True),)),
        Index("notes_body", "notes", ("body",), where="n IS NOT NULL"),
        Index("pinned_id", "pinned", ("id",)),
    ),
)
_RESHAPE = Step(
    "t2",
    (
        Reshape(
            "notes",
            add=(Column("version", INTEGER, not_null=True, default="0"),),
            retype=(("n", REAL),),
            primary_key=("id", "version"),
        ),
        # a key given by the column itself is replaced too
        Reshape(
            "pinned",
            add=(Column("version", INTEGER, not_null=True, default="0"),),
            primary_key=("id", "version"),
        ),
    ),
)


def _indexes(store):
    """The test tables' own indexes (not those of primary keys)."""
    if store.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%pkey'"
    return sorted(name for (name,) in store.db.execute(sql) if name.startswith(("notes", "pinned")))


def _duplicate_key(store):
    if store.dialect == "sqlite":
        return sqlite3.IntegrityError
    import psycopg  # only the PostgreSQL tests need it

    return psycopg.errors.UniqueViolation


def test_a_reshape_keeps_the_rows_and_the_indexes_and_applies_the_new_key(tmp_path, store_url):
    with Store(tmp_path, url=store_url) as store:
        before, reshape = (render([_BEFORE, _RESHAPE], store.dialect)[s.name] for s in (_BEFORE, _RESHAPE))
        run = store.db.executescript if store.dialect == "sqlite" else store.db.execute
        run(before)
        store._execute("INSERT INTO notes (id, n, body) VALUES ('a', 2, 'two')")
        store._execute("INSERT INTO pinned (id) VALUES ('a')")
        indexes = _indexes(store)
        run(reshape)
        assert _indexes(store) == indexes == ["notes_body", "pinned_id"]
        assert list(store._execute("SELECT id, n, body, version FROM notes")) == [("a", 2.0, "two", 0)]
        store._execute("UPDATE notes SET n = 2.5")  # the new type holds a fraction
        store._execute("INSERT INTO notes (id, n, body, version) VALUES ('a', 1, 'one', 1)")  # a new key
        assert [r[0] for r in store._execute("SELECT n FROM notes ORDER BY version")] == [2.5, 1.0]
        with pytest.raises(_duplicate_key(store)):
            store._execute("INSERT INTO notes (id, n, body, version) VALUES ('a', 1, 'again', 1)")
        store._execute("INSERT INTO pinned (id, version) VALUES ('a', 1)")
        with pytest.raises(_duplicate_key(store)):
            store._execute("INSERT INTO pinned (id, version) VALUES ('a', 1)")


def test_a_reshape_of_a_column_the_table_lacks_is_refused():
    with pytest.raises(ValueError, match="reshape of notes: no column missing"):
        render([_BEFORE, Step("t2", (Reshape("notes", retype=(("missing", REAL),)),))], "sqlite")


def test_a_failed_sqlite_rebuild_leaves_the_old_table():
    db = sqlite3.connect(":memory:", isolation_level=None)  # autocommits, as the store's connection does
    scripts = render([_BEFORE, _RESHAPE], "sqlite")
    db.executescript(scripts["t1"])
    db.execute("INSERT INTO notes VALUES ('a', 1, 'one')")
    db.execute("INSERT INTO notes VALUES ('a', 2, 'two')")  # both get version 0: the copy breaks the new key
    with pytest.raises(sqlite3.IntegrityError), db:  # as the SQLite backend runs a step
        db.executescript(scripts["t2"])
    assert not db.in_transaction
    assert [r[1] for r in db.execute("PRAGMA table_info(notes)")] == ["id", "n", "body"]
    names = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'notes%' ORDER BY name")
    ]
    assert names == ["notes", "notes_body"]
    assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 2
