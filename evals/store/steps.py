"""The store's schema steps, in order: the data ``evals.store.migrations`` renders and applies (SQLite and
PostgreSQL). Append a new step at the end, never edit an applied one."""

from __future__ import annotations

from evals.store.schema import (
    BIGINT,
    INSERTION_ORDER,
    INTEGER,
    REAL,
    TEXT,
    AddColumn,
    Column,
    ForeignKey,
    Index,
    Reshape,
    Sql,
    Step,
    Table,
)

STEPS: tuple[Step, ...] = (
    Step(
        "_m001_initial",
        (
            Table(
                "runs",
                (
                    Column("run_id", TEXT, primary_key=True),
                    Column("schema_version", INTEGER, not_null=True),
                    Column("suite_name", TEXT, not_null=True),
                    Column("suite_path", TEXT, not_null=True),
                    Column("suite_hash", TEXT, not_null=True),
                    Column("model_name", TEXT, not_null=True),
                    Column("model", TEXT),
                    Column("model_id", TEXT),
                    Column("judge_name", TEXT, not_null=True),
                    Column("judge_model", TEXT, not_null=True),
                    Column("rubric_name", TEXT, not_null=True),
                    Column("rubric_hash", TEXT, not_null=True),
                    Column("samples", INTEGER, not_null=True),
                    Column("config_json", TEXT, not_null=True),
                    Column("tags_json", TEXT, not_null=True),
                    Column("status", TEXT, not_null=True),
                    Column("started_at", TEXT, not_null=True),
                    Column("ended_at", TEXT),
                    Column("lookingglass_version", TEXT, not_null=True),
                ),
            ),
            Index("runs_suite", "runs", ("suite_name", "started_at")),
            Table(
                "items",
                (
                    Column("run_id", TEXT, not_null=True, references="runs"),
                    Column("item_id", TEXT, not_null=True),
                    Column("position", INTEGER, not_null=True),
                    Column("area", TEXT, not_null=True),
                    Column("content_hash", TEXT, not_null=True),
                    Column("item_json", TEXT, not_null=True),
                ),
                primary_key=("run_id", "item_id"),
            ),
            Table(
                "answers",
                (
                    Column("run_id", TEXT, not_null=True),
                    Column("item_id", TEXT, not_null=True),
                    Column("sample", INTEGER, not_null=True),
                    Column("text", TEXT),
                    Column("tokens_in", BIGINT),
                    Column("tokens_out", BIGINT),
                    Column("latency_ms", REAL),
                    Column("model_id", TEXT),
                    Column("error", TEXT),
                ),
                primary_key=("run_id", "item_id", "sample"),
                foreign_keys=(ForeignKey(("run_id", "item_id"), "items"),),
            ),
            Table(
                "judgments",
                (
                    Column("run_id", TEXT, not_null=True),
                    Column("item_id", TEXT, not_null=True),
                    Column("sample", INTEGER, not_null=True),
                    Column("score", INTEGER, check="score BETWEEN 1 AND 5"),
                    Column("rationale", TEXT),
                    Column("raw", TEXT),
                    Column("judge", TEXT, not_null=True),
                    Column("cache_key", TEXT, not_null=True),
                    Column("cached", INTEGER, not_null=True, default="0"),
                    Column("tokens_in", BIGINT),
                    Column("tokens_out", BIGINT),
                    Column("latency_ms", REAL),
                    Column("error", TEXT),
                ),
                primary_key=("run_id", "item_id", "sample"),
                foreign_keys=(ForeignKey(("run_id", "item_id"), "items"),),
            ),
            Index("judgments_cache", "judgments", ("cache_key",), where="score IS NOT NULL"),
        ),
    ),
    # Append-only: the current baseline of a name is its latest row; older rows are the approval history,
    # in insertion order (approvals made within one second).
    Step(
        "_m002_baselines",
        (
            Table(
                "baselines",
                (
                    Column("name", TEXT, not_null=True),
                    Column("run_id", TEXT, not_null=True, references="runs"),
                    Column("set_at", TEXT, not_null=True),
                    Column("note", TEXT),
                    Column("seq", INSERTION_ORDER),
                ),
            ),
            Index("baselines_name", "baselines", ("name", "set_at")),
        ),
    ),
    # Why the model stopped (a cut-off answer is graded knowing it) and the reasoning kept apart from it.
    Step(
        "_m003_answer_finish",
        (
            AddColumn("answers", Column("finish_reason", TEXT)),
            AddColumn("answers", Column("truncated", INTEGER, not_null=True, default="0")),
            AddColumn("answers", Column("reasoning", TEXT)),
        ),
    ),
    # Which rubric version and which judge graded each answer, and the model the judge's server said it
    # was; a run's rubrics are every rubric its items name. Older runs knew only their first item's rubric
    # (the JSON functions differ: PostgreSQL's builds a json value, stored as text).
    Step(
        "_m004_provenance",
        (
            AddColumn("judgments", Column("rubric_hash", TEXT)),
            AddColumn("judgments", Column("judge_fingerprint", TEXT)),
            AddColumn("judgments", Column("model_id", TEXT)),
            AddColumn("runs", Column("rubrics_json", TEXT, not_null=True, default="'[]'")),
            Sql(
                "UPDATE runs SET rubrics_json = json_array(rubric_name || '@' || rubric_hash)"
                " WHERE rubric_hash != ''",
                postgres="UPDATE runs SET rubrics_json = json_build_array(rubric_name || '@' || rubric_hash)::text"
                " WHERE rubric_hash != ''",
            ),
        ),
    ),
    # A verdict is keyed by (run, item, sample, repeat, judge), so a panel of judges, or one judge asked
    # several times, can grade the same answer; a score is a real number (an aggregate may be fractional).
    # PostgreSQL alters the table in place; SQLite rebuilds it (``schema.Reshape``).
    Step(
        "_m005_verdict_key",
        (
            Reshape(
                "judgments",
                add=(Column("repeat", INTEGER, not_null=True, default="0"),),
                retype=(("score", REAL),),
                primary_key=("run_id", "item_id", "sample", "repeat", "judge"),
            ),
        ),
    ),
    # Per-area sufficient statistics of each finished run (``evals.store.aggregates``), one row per area
    # and one for the whole run: history, trend and index read these instead of every item of every run.
    # Runs stored before get theirs on first read.
    Step(
        "_m006_aggregates",
        (
            Table(
                "run_areas",
                (
                    Column("run_id", TEXT, not_null=True, references="runs"),
                    Column("area", TEXT, not_null=True),
                    Column("pass_score", REAL, not_null=True),
                    Column("n_rows", INTEGER, not_null=True),
                    Column("n_items", INTEGER, not_null=True),
                    Column("n_scores", INTEGER, not_null=True),
                    Column("sum_means", REAL, not_null=True),
                    Column("sumsq_means", REAL, not_null=True),
                    Column("min_mean", REAL),
                    Column("max_mean", REAL),
                    Column("ci_low", REAL),
                    Column("ci_high", REAL),
                    Column("pass_sum", REAL, not_null=True),
                    Column("pass_ci_low", REAL),
                    Column("pass_ci_high", REAL),
                    Column("answer_errors", INTEGER, not_null=True),
                    Column("judge_errors", INTEGER, not_null=True),
                    Column("truncated", INTEGER, not_null=True),
                    Column("tokens_in", BIGINT, not_null=True),
                    Column("tokens_out", BIGINT, not_null=True),
                    Column("judge_tokens_in", BIGINT, not_null=True),
                    Column("judge_tokens_out", BIGINT, not_null=True),
                    Column("judge_calls", INTEGER, not_null=True),
                    Column("latency_p50", REAL),
                    Column("latency_p95", REAL),
                ),
                primary_key=("run_id", "area"),
            ),
        ),
    ),
    # Identifiers replaced by placeholders in what one call sent to an external endpoint, by kind (JSON).
    Step(
        "_m007_redactions",
        (
            Table(
                "redactions",
                (
                    Column("run_id", TEXT, not_null=True, references="runs"),
                    Column("item_id", TEXT, not_null=True),
                    Column("sample", INTEGER, not_null=True),
                    Column("role", TEXT, not_null=True),
                    Column("counts_json", TEXT, not_null=True),
                ),
                primary_key=("run_id", "item_id", "sample", "role"),
            ),
        ),
    ),
    # The audit trail (``evals.outbound.audit``): one hash chain of records per run (or other chain), and
    # the chains' head hashes chained in turn when a run ends. Append-only: nothing updates or deletes them.
    Step(
        "_m008_audit",
        (
            Table(
                "audit_records",
                (
                    Column("chain_id", TEXT, not_null=True),
                    Column("seq", BIGINT, not_null=True),
                    Column("at", TEXT, not_null=True),
                    Column("kind", TEXT, not_null=True),
                    Column("run_id", TEXT),
                    Column("item_id", TEXT),
                    Column("sample", INTEGER),
                    Column("role", TEXT),
                    Column("endpoint", TEXT),
                    Column("url", TEXT),
                    Column("model", TEXT),
                    Column("sha256", TEXT),
                    Column("redactions_json", TEXT, not_null=True),
                    Column("status", TEXT),
                    Column("attempt", INTEGER),
                    Column("details_json", TEXT, not_null=True),
                    Column("prev_hash", TEXT, not_null=True),
                    Column("hash", TEXT, not_null=True),
                ),
                primary_key=("chain_id", "seq"),
            ),
            Index("audit_records_item", "audit_records", ("item_id", "run_id")),
            Table(
                "audit_heads",
                (
                    Column("seq", BIGINT, primary_key=True),
                    Column("chain_id", TEXT, not_null=True),
                    Column("head_hash", TEXT, not_null=True),
                    Column("count", BIGINT, not_null=True),
                    Column("at", TEXT, not_null=True),
                    Column("prev_hash", TEXT, not_null=True),
                    Column("hash", TEXT, not_null=True),
                ),
            ),
            Index("audit_heads_chain", "audit_heads", ("chain_id", "seq")),
        ),
    ),
    # When ``evals purge`` removed a run's text (``evals.store.purge``); such a run keeps its scores, but
    # can no longer be resumed or judged again.
    Step("_m009_retention", (AddColumn("runs", Column("purged_at", TEXT)),)),
    # One row per judge calibration against people (``evals judge calibrate``), found by the judge's
    # fingerprint and rubric hash; ``record_json`` is the whole ``Calibration`` without its answers.
    Step(
        "_m010_calibrations",
        (
            Table(
                "calibrations",
                (
                    Column("calibration_id", TEXT, primary_key=True),
                    Column("judge_fingerprint", TEXT, not_null=True),
                    Column("rubric_hash", TEXT, not_null=True),
                    Column("judge_name", TEXT, not_null=True),
                    Column("judge_model", TEXT, not_null=True),
                    Column("rubric_name", TEXT, not_null=True),
                    Column("created_at", TEXT, not_null=True),
                    Column("labels", TEXT, not_null=True),
                    Column("labels_hash", TEXT, not_null=True),
                    Column("n", INTEGER, not_null=True),
                    Column("kappa", REAL),
                    Column("kappa_low", REAL),
                    Column("kappa_high", REAL),
                    Column("min_kappa", REAL, not_null=True),
                    Column("passed", INTEGER),
                    Column("record_json", TEXT, not_null=True),
                ),
            ),
            Index("calibrations_judge", "calibrations", ("judge_fingerprint", "rubric_hash", "created_at")),
        ),
    ),
    # The judge's drift canary (``evals.trust.canary``): frozen anchor sets per (judge fingerprint, suite)
    # with their own copy of each anchor's text (a purge of runs' text keeps them), every re-judging of a
    # set (one observation per run, one score per anchor) and the resets people made.
    Step(
        "_m011_canary",
        (
            Table(
                "canary_sets",
                (
                    Column("set_id", TEXT, primary_key=True),
                    Column("judge_fingerprint", TEXT, not_null=True),
                    Column("judge_name", TEXT, not_null=True),
                    Column("suite_name", TEXT, not_null=True),
                    Column("rubric_hash", TEXT, not_null=True),
                    Column("source_run", TEXT, not_null=True),
                    Column("created_at", TEXT, not_null=True),
                    Column("active", INTEGER, not_null=True, default="1"),
                ),
            ),
            Index("canary_sets_key", "canary_sets", ("judge_fingerprint", "suite_name", "active")),
            Table(
                "canary_anchors",
                (
                    Column("set_id", TEXT, not_null=True, references="canary_sets"),
                    Column("item_id", TEXT, not_null=True),
                    Column("position", INTEGER, not_null=True),
                    Column("area", TEXT, not_null=True),
                    Column("item_json", TEXT, not_null=True),
                    Column("answer", TEXT, not_null=True),
                    Column("truncated", INTEGER, not_null=True, default="0"),
                    Column("score", REAL, not_null=True),
                    Column("human_score", REAL),
                ),
                primary_key=("set_id", "item_id"),
            ),
            Table(
                "canary_observations",
                (
                    Column("set_id", TEXT, not_null=True, references="canary_sets"),
                    Column("run_id", TEXT, not_null=True),
                    Column("observed_at", TEXT, not_null=True),
                    Column("run_started_at", TEXT, not_null=True),
                    Column("min_shift", REAL, not_null=True),
                    Column("model_ids_json", TEXT, not_null=True),
                    Column("rubric_hash", TEXT, not_null=True),
                    Column("error", TEXT),
                ),
                primary_key=("set_id", "run_id"),
            ),
            Table(
                "canary_scores",
                (
                    Column("set_id", TEXT, not_null=True),
                    Column("run_id", TEXT, not_null=True),
                    Column("item_id", TEXT, not_null=True),
                    Column("score", REAL),
                    Column("error", TEXT),
                    Column("model_id", TEXT),
                    Column("tokens_in", BIGINT),
                    Column("tokens_out", BIGINT),
                ),
                primary_key=("set_id", "run_id", "item_id"),
            ),
            Table(
                "canary_events",
                (
                    Column("judge_name", TEXT, not_null=True),
                    Column("suite_name", TEXT, not_null=True),
                    Column("kind", TEXT, not_null=True),
                    Column("at", TEXT, not_null=True),
                    Column("who", TEXT, not_null=True),
                    Column("reason", TEXT),
                    Column("set_id", TEXT),
                ),
            ),
        ),
    ),
    # Where each answer addresses the grader (evals.judge.grader_attacks, JSON) and its length in
    # characters, which stays when a purge removes the text (the scorecard's length-bias figure needs it).
    Step(
        "_m012_answer_signals",
        (
            AddColumn("answers", Column("flags", TEXT, not_null=True, default="'[]'")),
            AddColumn("answers", Column("length", INTEGER)),
            Sql("UPDATE answers SET length = length(text) WHERE text IS NOT NULL"),
        ),
    ),
    # When each answer came back: with its latency, the interval the model's server was busy with it.
    Step("_m015_answer_times", (AddColumn("answers", Column("finished_at", REAL)),)),
    # Each routing table's recommendation per area (``evals route``), so the next one says what changed.
    Step(
        "_m016_routes",
        (
            Table(
                "route_decisions",
                (
                    Column("decided_at", TEXT, not_null=True),
                    Column("suite", TEXT, not_null=True),
                    Column("local_model", TEXT, not_null=True),
                    Column("frontier_model", TEXT, not_null=True),
                    Column("area", TEXT, not_null=True),
                    Column("local_run", TEXT, not_null=True),
                    Column("frontier_run", TEXT, not_null=True),
                    Column("recommendation", TEXT, not_null=True),
                    Column("reason", TEXT, not_null=True),
                ),
                primary_key=("suite", "local_model", "frontier_model", "area", "decided_at"),
            ),
        ),
    ),
    # Runs the audit trail does not cover: brought by ``evals import`` (``how``: ``import``) or ``evals store
    # copy`` (``copy``) from the store whose trail holds their calls, so ``evals audit verify`` lists them
    # instead of failing them. Runs already here without a chain are entered as ``unmarked``: an import made
    # before imports were marked cannot be told from a deleted chain any more, and verify says so.
    Step(
        "_m017_audit_imports",
        (
            Table(
                "audit_imports",
                (
                    Column("run_id", TEXT, primary_key=True),
                    Column("how", TEXT, not_null=True),
                    Column("source", TEXT),
                    Column("at", TEXT, not_null=True),
                ),
            ),
            Sql(
                "INSERT INTO audit_imports (run_id, how, source, at) "
                "SELECT run_id, 'unmarked', NULL, CAST(CURRENT_TIMESTAMP AS TEXT) FROM runs "
                "WHERE NOT EXISTS (SELECT 1 FROM audit_records WHERE audit_records.chain_id = runs.run_id) "
                "AND NOT EXISTS (SELECT 1 FROM audit_heads WHERE audit_heads.chain_id = runs.run_id)"
            ),
        ),
    ),
    # The store's key check value (``evals.store.keycheck``): a known token sealed with the store's key the
    # first time a key was used, so a process with another key is refused before it writes anything.
    Step(
        "_m018_key_check",
        (
            Table(
                "store_key",
                (
                    Column("name", TEXT, primary_key=True),
                    Column("token", TEXT, not_null=True),
                    Column("set_at", TEXT, not_null=True),
                ),
            ),
        ),
    ),
    # People's scores of a run's answers (``evals review import --run``, ``evals.store.human``): one per
    # (answer, rater), an integer 1-5, with whether it belongs to a random draw of the run. A draw
    # (``evals review export --random``) keeps its seed, its size, each area's answers and picks, and the
    # answers it picked, so an import can tell a row of a random sample from one picked for being doubtful.
    Step(
        "_m019_human_scores",
        (
            Table(
                "review_draws",
                (
                    Column("draw_id", TEXT, primary_key=True),
                    Column("run_id", TEXT, not_null=True, references="runs"),
                    Column("seed", BIGINT, not_null=True),
                    Column("asked", INTEGER, not_null=True),
                    Column("drawn_at", TEXT, not_null=True),
                    Column("areas_json", TEXT, not_null=True),
                    Column("picked_json", TEXT, not_null=True),
                ),
            ),
            Index("review_draws_run", "review_draws", ("run_id", "drawn_at")),
            Table(
                "human_scores",
                (
                    Column("run_id", TEXT, not_null=True),
                    Column("item_id", TEXT, not_null=True),
                    Column("sample", INTEGER, not_null=True),
                    Column("rater", TEXT, not_null=True),
                    Column("score", INTEGER, not_null=True, check="score BETWEEN 1 AND 5"),
                    Column("scored_at", TEXT, not_null=True),
                    Column("at_random", INTEGER, not_null=True, default="0"),
                    Column("draw_id", TEXT, references="review_draws"),
                ),
                primary_key=("run_id", "item_id", "sample", "rater"),
                foreign_keys=(ForeignKey(("run_id", "item_id"), "items"),),
            ),
        ),
    ),
    # Batch judging (``judging: batch``, evals.judge.batch): each batch a run submitted to a vendor's batch
    # API, and each request in it (its custom id, the verdict it asks for, the SHA-256 of its line as
    # submitted), so a run stopped after submitting collects them instead of paying twice; and which batch
    # answered each verdict (priced at the judge's batch_discount).
    Step(
        "_m020_judge_batches",
        (
            Table(
                "judge_batches",
                (
                    Column("batch_id", TEXT, primary_key=True),
                    Column("run_id", TEXT, not_null=True, references="runs"),
                    Column("judge", TEXT, not_null=True),
                    Column("endpoint", TEXT, not_null=True),
                    Column("vendor", TEXT, not_null=True),
                    Column("requests", INTEGER, not_null=True),
                    Column("submitted_at", TEXT, not_null=True),
                    Column("collected_at", TEXT),
                    Column("outcome", TEXT),
                ),
            ),
            Index("judge_batches_run", "judge_batches", ("run_id", "judge")),
            Table(
                "judge_batch_requests",
                (
                    Column("batch_id", TEXT, not_null=True, references="judge_batches"),
                    Column("custom_id", TEXT, not_null=True),
                    Column("run_id", TEXT, not_null=True),
                    Column("item_id", TEXT, not_null=True),
                    Column("sample", INTEGER, not_null=True),
                    Column("repeat", INTEGER, not_null=True),
                    Column("sha256", TEXT, not_null=True),
                ),
                primary_key=("batch_id", "custom_id"),
            ),
            AddColumn("judgments", Column("batch_id", TEXT)),
        ),
    ),
    # One run worked by many processes (``evals worker``, ``evals.store.leases``): each unit of a run (an
    # item and sample; sample -1 is the run's finish) leased by one worker until ``expires_at`` (seconds
    # since the epoch, the database's clock), and the limits the workers hold together: an endpoint's call
    # slots, its request and token buckets, and each run's ``--max-cost``.
    Step(
        "_m021_workers",
        (
            Table(
                "run_units",
                (
                    Column("run_id", TEXT, not_null=True),
                    Column("item_id", TEXT, not_null=True),
                    Column("sample", INTEGER, not_null=True),
                    Column("position", INTEGER, not_null=True),
                    Column("holder", TEXT),
                    Column("expires_at", REAL),
                    Column("done", INTEGER, not_null=True, default="0"),
                ),
                primary_key=("run_id", "item_id", "sample"),
            ),
            Index("run_units_todo", "run_units", ("run_id", "done", "position")),
            Table(
                "fleet_slots",
                (
                    Column("endpoint", TEXT, not_null=True),
                    Column("slot", INTEGER, not_null=True),
                    Column("holder", TEXT),
                    Column("expires_at", REAL),
                ),
                primary_key=("endpoint", "slot"),
            ),
            Table(
                "fleet_buckets",
                (
                    Column("name", TEXT, primary_key=True),
                    Column("level", REAL, not_null=True),
                    Column("at", REAL, not_null=True),
                ),
            ),
            Table(
                "fleet_budgets",
                (
                    Column("run_id", TEXT, primary_key=True),
                    Column("max_cost", REAL, not_null=True),
                    Column("spent", REAL, not_null=True, default="0"),
                ),
            ),
        ),
    ),
)
"""Applied in order, each once; append new steps, never edit an applied one."""
