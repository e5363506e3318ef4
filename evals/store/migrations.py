"""The store's schema, evolved by numbered steps: one list per SQL dialect, with the same step names.

Each step runs once, in order, inside a transaction, and is recorded in ``_migrations``; append new steps
to both lists, never edit an applied one. The two lists differ only where the dialects do (types, the
baselines' insertion order, JSON functions); ``tests/test_store.py`` checks that their names agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

# ---------------------------------------------------------------------------------------------- SQLite


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


def _m004_provenance(db: sqlite3.Connection) -> None:
    # Which rubric version and which judge graded each answer, and the model the judge's server said it
    # was; a run's rubrics are every rubric its items name. Older runs knew only their first item's rubric.
    db.executescript(
        """
        ALTER TABLE judgments ADD COLUMN rubric_hash TEXT;
        ALTER TABLE judgments ADD COLUMN judge_fingerprint TEXT;
        ALTER TABLE judgments ADD COLUMN model_id TEXT;
        ALTER TABLE runs ADD COLUMN rubrics_json TEXT NOT NULL DEFAULT '[]';
        UPDATE runs SET rubrics_json = json_array(rubric_name || '@' || rubric_hash) WHERE rubric_hash != '';
        """
    )


def _m005_verdict_key(db: sqlite3.Connection) -> None:
    # A verdict is keyed by (run, item, sample, repeat, judge), so a panel of judges, or one judge asked
    # several times, can grade the same answer; a score is a real number (an aggregate may be fractional).
    # SQLite cannot change a primary key or a column type in place: the table is rebuilt, in one
    # transaction (the connection autocommits), so a crash leaves the old table or the new one.
    db.executescript(
        """
        BEGIN;
        CREATE TABLE judgments_new (
            run_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            sample INTEGER NOT NULL,
            score REAL CHECK (score BETWEEN 1 AND 5),
            rationale TEXT,
            raw TEXT,
            judge TEXT NOT NULL,
            cache_key TEXT NOT NULL,
            cached INTEGER NOT NULL DEFAULT 0,
            tokens_in INTEGER,
            tokens_out INTEGER,
            latency_ms REAL,
            error TEXT,
            rubric_hash TEXT,
            judge_fingerprint TEXT,
            model_id TEXT,
            repeat INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, item_id, sample, repeat, judge),
            FOREIGN KEY (run_id, item_id) REFERENCES items (run_id, item_id)
        );
        INSERT INTO judgments_new (
            run_id, item_id, sample, score, rationale, raw, judge, cache_key, cached, tokens_in, tokens_out,
            latency_ms, error, rubric_hash, judge_fingerprint, model_id
        )
        SELECT run_id, item_id, sample, score, rationale, raw, judge, cache_key, cached, tokens_in, tokens_out,
            latency_ms, error, rubric_hash, judge_fingerprint, model_id
        FROM judgments;
        DROP TABLE judgments;
        ALTER TABLE judgments_new RENAME TO judgments;
        CREATE INDEX judgments_cache ON judgments (cache_key) WHERE score IS NOT NULL;
        COMMIT;
        """
    )


def _m006_aggregates(db: sqlite3.Connection) -> None:
    # Per-area sufficient statistics of each finished run (``evals.store.aggregates``), one row per area
    # and one for the whole run: history, trend and index read these instead of every item of every run.
    # Runs stored before get theirs on first read.
    db.executescript(
        """
        CREATE TABLE run_areas (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            area TEXT NOT NULL,
            pass_score REAL NOT NULL,
            n_rows INTEGER NOT NULL,
            n_items INTEGER NOT NULL,
            n_scores INTEGER NOT NULL,
            sum_means REAL NOT NULL,
            sumsq_means REAL NOT NULL,
            min_mean REAL,
            max_mean REAL,
            ci_low REAL,
            ci_high REAL,
            pass_sum REAL NOT NULL,
            pass_ci_low REAL,
            pass_ci_high REAL,
            answer_errors INTEGER NOT NULL,
            judge_errors INTEGER NOT NULL,
            truncated INTEGER NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            judge_tokens_in INTEGER NOT NULL,
            judge_tokens_out INTEGER NOT NULL,
            judge_calls INTEGER NOT NULL,
            latency_p50 REAL,
            latency_p95 REAL,
            PRIMARY KEY (run_id, area)
        );
        """
    )


def _m015_answer_times(db: sqlite3.Connection) -> None:
    # When each answer came back: with its latency, the interval the model's server was busy with it.
    db.executescript("ALTER TABLE answers ADD COLUMN finished_at REAL;")


def _m016_routes(db: sqlite3.Connection) -> None:
    # Each routing table's recommendation per area (``evals route``), so the next one says what changed.
    db.executescript(
        """
        CREATE TABLE route_decisions (
            decided_at TEXT NOT NULL,
            suite TEXT NOT NULL,
            local_model TEXT NOT NULL,
            frontier_model TEXT NOT NULL,
            area TEXT NOT NULL,
            local_run TEXT NOT NULL,
            frontier_run TEXT NOT NULL,
            recommendation TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (suite, local_model, frontier_model, area, decided_at)
        );
        """
    )


def _m009_retention(db: sqlite3.Connection) -> None:
    # When ``evals purge`` removed a run's text (``evals.store.purge``); such a run keeps its scores, but can
    # no longer be resumed or judged again.
    db.executescript("ALTER TABLE runs ADD COLUMN purged_at TEXT;")


def _m008_audit(db: sqlite3.Connection) -> None:
    # The audit trail (``evals.outbound.audit``): one hash chain of records per run (or other chain), and the
    # chains' head hashes chained in turn when a run ends. Append-only: nothing updates or deletes them.
    db.executescript(
        """
        CREATE TABLE audit_records (
            chain_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            run_id TEXT,
            item_id TEXT,
            sample INTEGER,
            role TEXT,
            endpoint TEXT,
            url TEXT,
            model TEXT,
            sha256 TEXT,
            redactions_json TEXT NOT NULL,
            status TEXT,
            attempt INTEGER,
            details_json TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (chain_id, seq)
        );
        CREATE INDEX audit_records_item ON audit_records (item_id, run_id);
        CREATE TABLE audit_heads (
            seq INTEGER PRIMARY KEY,
            chain_id TEXT NOT NULL,
            head_hash TEXT NOT NULL,
            count INTEGER NOT NULL,
            at TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_heads_chain ON audit_heads (chain_id, seq);
        """
    )


def _m010_calibrations(db: sqlite3.Connection) -> None:
    # One row per judge calibration against people (``evals judge calibrate``), found by the judge's
    # fingerprint and rubric hash; ``record_json`` is the whole ``Calibration`` without its answers.
    db.executescript(
        """
        CREATE TABLE calibrations (
            calibration_id TEXT PRIMARY KEY,
            judge_fingerprint TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            judge_name TEXT NOT NULL,
            judge_model TEXT NOT NULL,
            rubric_name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            labels TEXT NOT NULL,
            labels_hash TEXT NOT NULL,
            n INTEGER NOT NULL,
            kappa REAL,
            kappa_low REAL,
            kappa_high REAL,
            min_kappa REAL NOT NULL,
            passed INTEGER,
            record_json TEXT NOT NULL
        );
        CREATE INDEX calibrations_judge ON calibrations (judge_fingerprint, rubric_hash, created_at);
        """
    )


def _m007_redactions(db: sqlite3.Connection) -> None:
    # Identifiers replaced by placeholders in what one call sent to an external endpoint, by kind (JSON).
    db.executescript(
        """
        CREATE TABLE redactions (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            item_id TEXT NOT NULL,
            sample INTEGER NOT NULL,
            role TEXT NOT NULL,
            counts_json TEXT NOT NULL,
            PRIMARY KEY (run_id, item_id, sample, role)
        );
        """
    )


def _m012_answer_signals(db: sqlite3.Connection) -> None:
    # Where each answer addresses the grader (evals.judge.grader_attacks, JSON) and its length in characters,
    # which stays when a purge removes the text (the scorecard's length-bias figure needs it).
    db.executescript(
        """
        ALTER TABLE answers ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE answers ADD COLUMN length INTEGER;
        UPDATE answers SET length = length(text) WHERE text IS NOT NULL;
        """
    )


def _m011_canary(db: sqlite3.Connection) -> None:
    # The judge's drift canary (``evals.trust.canary``): frozen anchor sets per (judge fingerprint, suite) with
    # their own copy of each anchor's text (a purge of runs' text keeps them), every re-judging of a set
    # (one observation per run, one score per anchor) and the resets people made.
    db.executescript(
        """
        CREATE TABLE canary_sets (
            set_id TEXT PRIMARY KEY,
            judge_fingerprint TEXT NOT NULL,
            judge_name TEXT NOT NULL,
            suite_name TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            source_run TEXT NOT NULL,
            created_at TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX canary_sets_key ON canary_sets (judge_fingerprint, suite_name, active);
        CREATE TABLE canary_anchors (
            set_id TEXT NOT NULL REFERENCES canary_sets (set_id),
            item_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            area TEXT NOT NULL,
            item_json TEXT NOT NULL,
            answer TEXT NOT NULL,
            truncated INTEGER NOT NULL DEFAULT 0,
            score REAL NOT NULL,
            human_score REAL,
            PRIMARY KEY (set_id, item_id)
        );
        CREATE TABLE canary_observations (
            set_id TEXT NOT NULL REFERENCES canary_sets (set_id),
            run_id TEXT NOT NULL,
            observed_at TEXT NOT NULL,
            run_started_at TEXT NOT NULL,
            min_shift REAL NOT NULL,
            model_ids_json TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (set_id, run_id)
        );
        CREATE TABLE canary_scores (
            set_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            score REAL,
            error TEXT,
            model_id TEXT,
            tokens_in INTEGER,
            tokens_out INTEGER,
            PRIMARY KEY (set_id, run_id, item_id)
        );
        CREATE TABLE canary_events (
            judge_name TEXT NOT NULL,
            suite_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            who TEXT NOT NULL,
            reason TEXT,
            set_id TEXT
        );
        """
    )


# ------------------------------------------------- _m017: runs the audit trail does not cover (both dialects)

_AUDIT_IMPORTS = """
    CREATE TABLE audit_imports (
        run_id TEXT PRIMARY KEY,
        how TEXT NOT NULL,
        source TEXT,
        at TEXT NOT NULL
    );
    INSERT INTO audit_imports (run_id, how, source, at)
    SELECT run_id, 'unmarked', NULL, CAST(CURRENT_TIMESTAMP AS TEXT) FROM runs
    WHERE NOT EXISTS (SELECT 1 FROM audit_records WHERE audit_records.chain_id = runs.run_id)
      AND NOT EXISTS (SELECT 1 FROM audit_heads WHERE audit_heads.chain_id = runs.run_id);
"""
"""Runs brought from elsewhere (``how``: ``import`` for ``evals import``, ``copy`` for ``evals store copy``;
``source``: the export folder or the source store, without credentials): their calls are on the trail of the
store that made them, so ``evals audit verify`` lists them instead of failing them. Runs already here without
a chain when the step runs are entered as ``unmarked``: an import made before imports were marked cannot be
told from a deleted chain any more, and verify says so. The same SQL in both dialects."""


def _m017_audit_imports(db: sqlite3.Connection) -> None:
    db.executescript(_AUDIT_IMPORTS)


def _pg_m017_audit_imports(execute: Execute) -> None:
    execute(_AUDIT_IMPORTS)


SQLITE_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial,
    _m002_baselines,
    _m003_answer_finish,
    _m004_provenance,
    _m005_verdict_key,
    _m006_aggregates,
    _m007_redactions,
    _m008_audit,
    _m009_retention,
    _m010_calibrations,
    _m011_canary,
    _m012_answer_signals,
    _m015_answer_times,
    _m016_routes,
    _m017_audit_imports,
]
"""Applied in order, each once; append new steps, never edit an applied one."""

# ------------------------------------------------------------------------------------------ PostgreSQL

Execute = Callable[[str], Any]
"""Runs one SQL statement (``psycopg.Connection.execute``)."""


def _pg_m001_initial(execute: Execute) -> None:
    execute(
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
            tokens_in BIGINT,
            tokens_out BIGINT,
            latency_ms DOUBLE PRECISION,
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
            tokens_in BIGINT,
            tokens_out BIGINT,
            latency_ms DOUBLE PRECISION,
            error TEXT,
            PRIMARY KEY (run_id, item_id, sample),
            FOREIGN KEY (run_id, item_id) REFERENCES items (run_id, item_id)
        );
        CREATE INDEX judgments_cache ON judgments (cache_key) WHERE score IS NOT NULL;
        """
    )


def _pg_m002_baselines(execute: Execute) -> None:
    # ``seq`` orders approvals made within one second, as SQLite's rowid does.
    execute(
        """
        CREATE TABLE baselines (
            name TEXT NOT NULL,
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            set_at TEXT NOT NULL,
            note TEXT,
            seq BIGSERIAL
        );
        CREATE INDEX baselines_name ON baselines (name, set_at);
        """
    )


def _pg_m003_answer_finish(execute: Execute) -> None:
    execute(
        """
        ALTER TABLE answers ADD COLUMN finish_reason TEXT;
        ALTER TABLE answers ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE answers ADD COLUMN reasoning TEXT;
        """
    )


def _pg_m004_provenance(execute: Execute) -> None:
    execute(
        """
        ALTER TABLE judgments ADD COLUMN rubric_hash TEXT;
        ALTER TABLE judgments ADD COLUMN judge_fingerprint TEXT;
        ALTER TABLE judgments ADD COLUMN model_id TEXT;
        ALTER TABLE runs ADD COLUMN rubrics_json TEXT NOT NULL DEFAULT '[]';
        UPDATE runs SET rubrics_json = json_build_array(rubric_name || '@' || rubric_hash)::text
            WHERE rubric_hash != '';
        """
    )


def _pg_m005_verdict_key(execute: Execute) -> None:
    execute(
        """
        ALTER TABLE judgments ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE judgments ALTER COLUMN score TYPE DOUBLE PRECISION;
        ALTER TABLE judgments DROP CONSTRAINT judgments_pkey;
        ALTER TABLE judgments ADD PRIMARY KEY (run_id, item_id, sample, repeat, judge);
        """
    )


def _pg_m006_aggregates(execute: Execute) -> None:
    execute(
        """
        CREATE TABLE run_areas (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            area TEXT NOT NULL,
            pass_score DOUBLE PRECISION NOT NULL,
            n_rows INTEGER NOT NULL,
            n_items INTEGER NOT NULL,
            n_scores INTEGER NOT NULL,
            sum_means DOUBLE PRECISION NOT NULL,
            sumsq_means DOUBLE PRECISION NOT NULL,
            min_mean DOUBLE PRECISION,
            max_mean DOUBLE PRECISION,
            ci_low DOUBLE PRECISION,
            ci_high DOUBLE PRECISION,
            pass_sum DOUBLE PRECISION NOT NULL,
            pass_ci_low DOUBLE PRECISION,
            pass_ci_high DOUBLE PRECISION,
            answer_errors INTEGER NOT NULL,
            judge_errors INTEGER NOT NULL,
            truncated INTEGER NOT NULL,
            tokens_in BIGINT NOT NULL,
            tokens_out BIGINT NOT NULL,
            judge_tokens_in BIGINT NOT NULL,
            judge_tokens_out BIGINT NOT NULL,
            judge_calls INTEGER NOT NULL,
            latency_p50 DOUBLE PRECISION,
            latency_p95 DOUBLE PRECISION,
            PRIMARY KEY (run_id, area)
        );
        """
    )


def _pg_m015_answer_times(execute: Execute) -> None:
    execute("ALTER TABLE answers ADD COLUMN finished_at DOUBLE PRECISION;")


def _pg_m016_routes(execute: Execute) -> None:
    execute(
        """
        CREATE TABLE route_decisions (
            decided_at TEXT NOT NULL,
            suite TEXT NOT NULL,
            local_model TEXT NOT NULL,
            frontier_model TEXT NOT NULL,
            area TEXT NOT NULL,
            local_run TEXT NOT NULL,
            frontier_run TEXT NOT NULL,
            recommendation TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (suite, local_model, frontier_model, area, decided_at)
        );
        """
    )


def _pg_m009_retention(execute: Execute) -> None:
    execute("ALTER TABLE runs ADD COLUMN purged_at TEXT")


def _pg_m008_audit(execute: Execute) -> None:
    execute(
        """
        CREATE TABLE audit_records (
            chain_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            run_id TEXT,
            item_id TEXT,
            sample INTEGER,
            role TEXT,
            endpoint TEXT,
            url TEXT,
            model TEXT,
            sha256 TEXT,
            redactions_json TEXT NOT NULL,
            status TEXT,
            attempt INTEGER,
            details_json TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (chain_id, seq)
        );
        CREATE INDEX audit_records_item ON audit_records (item_id, run_id);
        CREATE TABLE audit_heads (
            seq BIGINT PRIMARY KEY,
            chain_id TEXT NOT NULL,
            head_hash TEXT NOT NULL,
            count BIGINT NOT NULL,
            at TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_heads_chain ON audit_heads (chain_id, seq);
        """
    )


def _pg_m010_calibrations(execute: Execute) -> None:
    execute(
        """
        CREATE TABLE calibrations (
            calibration_id TEXT PRIMARY KEY,
            judge_fingerprint TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            judge_name TEXT NOT NULL,
            judge_model TEXT NOT NULL,
            rubric_name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            labels TEXT NOT NULL,
            labels_hash TEXT NOT NULL,
            n INTEGER NOT NULL,
            kappa DOUBLE PRECISION,
            kappa_low DOUBLE PRECISION,
            kappa_high DOUBLE PRECISION,
            min_kappa DOUBLE PRECISION NOT NULL,
            passed INTEGER,
            record_json TEXT NOT NULL
        );
        CREATE INDEX calibrations_judge ON calibrations (judge_fingerprint, rubric_hash, created_at);
        """
    )


def _pg_m007_redactions(execute: Execute) -> None:
    execute(
        """
        CREATE TABLE redactions (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            item_id TEXT NOT NULL,
            sample INTEGER NOT NULL,
            role TEXT NOT NULL,
            counts_json TEXT NOT NULL,
            PRIMARY KEY (run_id, item_id, sample, role)
        );
        """
    )


def _pg_m012_answer_signals(execute: Execute) -> None:
    execute(
        """
        ALTER TABLE answers ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE answers ADD COLUMN length INTEGER;
        UPDATE answers SET length = char_length(text) WHERE text IS NOT NULL;
        """
    )


def _pg_m011_canary(execute: Execute) -> None:
    execute(
        """
        CREATE TABLE canary_sets (
            set_id TEXT PRIMARY KEY,
            judge_fingerprint TEXT NOT NULL,
            judge_name TEXT NOT NULL,
            suite_name TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            source_run TEXT NOT NULL,
            created_at TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX canary_sets_key ON canary_sets (judge_fingerprint, suite_name, active);
        CREATE TABLE canary_anchors (
            set_id TEXT NOT NULL REFERENCES canary_sets (set_id),
            item_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            area TEXT NOT NULL,
            item_json TEXT NOT NULL,
            answer TEXT NOT NULL,
            truncated INTEGER NOT NULL DEFAULT 0,
            score DOUBLE PRECISION NOT NULL,
            human_score DOUBLE PRECISION,
            PRIMARY KEY (set_id, item_id)
        );
        CREATE TABLE canary_observations (
            set_id TEXT NOT NULL REFERENCES canary_sets (set_id),
            run_id TEXT NOT NULL,
            observed_at TEXT NOT NULL,
            run_started_at TEXT NOT NULL,
            min_shift DOUBLE PRECISION NOT NULL,
            model_ids_json TEXT NOT NULL,
            rubric_hash TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (set_id, run_id)
        );
        CREATE TABLE canary_scores (
            set_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            score DOUBLE PRECISION,
            error TEXT,
            model_id TEXT,
            tokens_in BIGINT,
            tokens_out BIGINT,
            PRIMARY KEY (set_id, run_id, item_id)
        );
        CREATE TABLE canary_events (
            judge_name TEXT NOT NULL,
            suite_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            who TEXT NOT NULL,
            reason TEXT,
            set_id TEXT
        );
        """
    )


POSTGRES_MIGRATIONS: list[tuple[str, Callable[[Execute], None]]] = [
    ("_m001_initial", _pg_m001_initial),
    ("_m002_baselines", _pg_m002_baselines),
    ("_m003_answer_finish", _pg_m003_answer_finish),
    ("_m004_provenance", _pg_m004_provenance),
    ("_m005_verdict_key", _pg_m005_verdict_key),
    ("_m006_aggregates", _pg_m006_aggregates),
    ("_m007_redactions", _pg_m007_redactions),
    ("_m008_audit", _pg_m008_audit),
    ("_m009_retention", _pg_m009_retention),
    ("_m010_calibrations", _pg_m010_calibrations),
    ("_m011_canary", _pg_m011_canary),
    ("_m012_answer_signals", _pg_m012_answer_signals),
    ("_m015_answer_times", _pg_m015_answer_times),
    ("_m016_routes", _pg_m016_routes),
    ("_m017_audit_imports", _pg_m017_audit_imports),
]
"""The same steps under the same names, in PostgreSQL's dialect."""
