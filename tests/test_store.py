"""The run store: migrations, round trips, and the JSONL export, on SQLite and on PostgreSQL alike."""

import json
import sqlite3
from dataclasses import replace

import pytest

from evals.errors import ConfigError, StoreError
from evals.records import Answer, Item, Judgment, RunConfig, RunManifest
from evals.store import MIGRATIONS, Store
from evals.store.migrations import POSTGRES_MIGRATIONS

ITEMS = [
    Item(id="q1", area="math", question="2+2?", reference="4"),
    Item(id="q2", area="geo", question="Capital of France?", reference="Paris"),
]


def manifest(run_id="r1", samples=1, suite="demo", **extra):
    return RunManifest(
        run_id=run_id, suite_name=suite, suite_path="suites/demo", suite_hash="h", model_name="local",
        model="smollm2", judge_name="offline", judge_model="offline-reference", rubric_name="correctness",
        rubric_hash="rh", samples=samples, started_at=f"2026-11-22T23:00:0{run_id[-1]}+00:00",
        config={"model": {"api_key_env": "LOCAL_KEY"}}, tags=("nightly",), **extra,
    )  # fmt: skip


def test_migrations_pin_the_columns(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "evals.db")
    columns = {
        t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in ("runs", "answers", "judgments")
    }
    assert columns["answers"][:12] == [
        "run_id", "item_id", "sample", "text", "tokens_in", "tokens_out", "latency_ms", "model_id", "error",
        "finish_reason", "truncated", "reasoning",
    ]  # fmt: skip
    assert {"flags", "length", "finished_at"} <= set(columns["answers"])
    assert {"score", "rationale", "raw", "cache_key", "cached", "error"} <= set(columns["judgments"])
    assert {"rubric_hash", "judge_fingerprint", "model_id", "repeat"} <= set(columns["judgments"])
    key = [r[1] for r in sorted(db.execute("PRAGMA table_info(judgments)"), key=lambda r: r[5]) if r[5]]
    assert key == ["run_id", "item_id", "sample", "repeat", "judge"]
    assert {"suite_hash", "rubric_hash", "model_id", "config_json", "status", "started_at"} <= set(
        columns["runs"]
    )
    assert "rubrics_json" in columns["runs"]
    applied = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    assert applied == [m.__name__ for m in MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_both_dialects_have_the_same_numbered_steps():
    assert [name for name, _ in POSTGRES_MIGRATIONS] == [m.__name__ for m in MIGRATIONS]


def test_postgres_gets_the_same_tables_and_columns_as_sqlite(tmp_path, postgres_url):
    Store(tmp_path / "a").close()
    with Store(tmp_path / "b", url=postgres_url) as pg:
        pg_columns = {
            t: [r[0] for r in pg.db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (t,),
            )]
            for t in ("runs", "items", "answers", "judgments", "baselines")
        }  # fmt: skip
    db = sqlite3.connect(tmp_path / "a" / "evals.db")
    for table, columns in pg_columns.items():
        sqlite_columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        # PostgreSQL's baselines keep their insertion order in ``seq``, SQLite's in the hidden rowid.
        assert [c for c in columns if c != "seq"] == sqlite_columns


def test_reopening_applies_no_migration_twice(open_store):
    open_store().close()
    with open_store() as store:
        assert store._execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_run_items_answers_and_judgments_read_back_equal(open_store):
    with open_store() as store:
        store.create_run(manifest(rubrics=("correctness@rh", "strict@ab")), ITEMS)
        answer = Answer("r1", "q1", 0, "4", tokens_in=5, tokens_out=1, latency_ms=3.0, model_id="smol")
        judgment = Judgment(
            "r1",
            "q1",
            0,
            5,
            "right",
            "raw",
            "offline",
            "key1",
            rubric_hash="rh",
            judge_fingerprint="fp",
            model_id="claude-x-2026",
        )
        store.save_answer(answer)
        store.save_judgment(judgment)
        assert store.run("r1") == manifest(rubrics=("correctness@rh", "strict@ab"))
        assert store.items("r1") == ITEMS
        assert store.answers("r1") == {("q1", 0): answer}
        assert store.judgments("r1") == {("q1", 0): judgment}
        assert store.cached_judgment("key1") == judgment
        assert store.cached_judgment("other") is None


def test_a_second_answer_of_the_same_sample_replaces_the_first(open_store):
    with open_store() as store:
        store.create_run(manifest(), ITEMS)
        store.save_answer(Answer("r1", "q1", 0, None, error="timeout"))
        store.save_answer(Answer("r1", "q1", 0, "4"))
        store.save_judgment(Judgment("r1", "q1", 0, None, None, "junk", "j", "k", error="unparseable"))
        store.save_judgment(Judgment("r1", "q1", 0, 4, "ok", "raw", "j", "k", cached=True))
        assert store.answers("r1") == {("q1", 0): Answer("r1", "q1", 0, "4")}
        assert store.judgments("r1")[("q1", 0)].score == 4
        assert store.judgments("r1")[("q1", 0)].cached is True


def test_verdicts_of_several_judges_and_repeats_are_kept_apart_and_the_row_reads_their_mean(open_store):
    # What a panel of judges (or one judge asked twice) stores: the results row of the item and sample
    # reads each judge's repeats averaged, then the mean across judges (fractional); a failed verdict adds
    # nothing.
    with open_store() as store:
        store.create_run(manifest(samples=2), ITEMS)
        for sample in (0, 1):
            store.save_answer(Answer("r1", "q1", sample, "4"))
        store.save_judgment(Judgment("r1", "q1", 0, 5, "right", "raw", "claude (a)", "k1"))
        store.save_judgment(Judgment("r1", "q1", 0, 4, "fine", "raw", "gpt (b)", "k2"))
        store.save_judgment(Judgment("r1", "q1", 0, 4, "fine", "raw", "gpt (b)", "k2", repeat=1))
        store.save_judgment(Judgment("r1", "q1", 0, None, None, "??", "llama (c)", "k3", error="unparseable"))
        store.save_judgment(Judgment("r1", "q1", 1, None, None, "??", "claude (a)", "k4", error="timeout"))
        assert len(store.verdicts("r1")) == 5
        rows = {(r.id, r.sample): r for r in store.results("r1")}
        assert rows["q1", 0].score == pytest.approx((5 + (4 + 4) / 2) / 2) and rows["q1", 0].error is None
        assert rows["q1", 0].judge == "claude (a)"  # the details shown are the first scored verdict's
        assert rows["q1", 1].score is None and rows["q1", 1].error == "timeout"
        assert rows["q1", 1].error_kind == "judge"
        # a score is a real number in the store too
        store.save_judgment(Judgment("r1", "q1", 1, 3.5, "panel", "raw", "panel (mean)", "k5"))
        assert store.judgments("r1")[("q1", 1)].score == 3.5
        assert {(r.id, r.sample): r.score for r in store.results("r1")}["q1", 1] == 3.5


def test_failed_judgments_are_not_reused_from_the_cache(open_store):
    with open_store() as store:
        store.create_run(manifest(), ITEMS)
        store.save_judgment(Judgment("r1", "q1", 0, None, None, "junk", "j", "key1", error="unparseable"))
        assert store.cached_judgment("key1") is None


def test_unknown_run_is_a_store_error(open_store):
    with open_store() as store, pytest.raises(StoreError, match="no run 'nope'"):
        store.run("nope")


def test_export_has_one_line_per_item_and_sample_with_errors_as_null_scores(open_store, tmp_path):
    with open_store() as store:
        store.create_run(manifest(samples=2), ITEMS)
        store.save_answer(Answer("r1", "q1", 0, "4"))
        store.save_judgment(Judgment("r1", "q1", 0, 5, "right", "raw", "offline", "k", rubric_hash="rh"))
        store.save_answer(Answer("r1", "q1", 1, "four"))
        store.save_judgment(
            Judgment("r1", "q1", 1, None, None, "??", "offline", "k2", error="unparseable verdict")
        )
        store.save_answer(Answer("r1", "q2", 0, None, error="model 'local': 500 after 5 attempts"))
        path = store.export_jsonl("r1")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert path == tmp_path / "runs" / "r1" / "results.jsonl"
    assert len(rows) == 4
    assert {"id", "area", "question", "reference", "answer", "score", "rationale", "error"} <= set(rows[0])
    by_key = {(r["id"], r["sample"]): r for r in rows}
    assert by_key["q1", 0]["score"] == 5 and by_key["q1", 0]["error"] is None
    assert by_key["q1", 0]["rubric_hash"] == "rh"
    assert by_key["q1", 1]["score"] is None and by_key["q1", 1]["error_kind"] == "judge"
    assert by_key["q2", 0]["error_kind"] == "answer" and by_key["q2", 0]["answer"] is None
    assert by_key["q2", 1]["error"] == "not answered"
    exported = json.loads((path.parent / "manifest.json").read_text())
    assert RunManifest.from_dict(exported) == manifest(samples=2)
    assert [Item.model_validate(i) for i in exported["items"]] == ITEMS


def test_runs_are_listed_per_suite_oldest_first(open_store):
    with open_store() as store:
        store.create_run(manifest("r2"), ITEMS)
        store.create_run(manifest("r1"), ITEMS)
        store.create_run(manifest("r3", suite="other"), ITEMS)
        assert [m.run_id for m in store.runs("demo")] == ["r1", "r2"]
        assert len(store.runs()) == 3


def test_status_model_id_and_config_updates_read_back(open_store):
    with open_store() as store:
        store.create_run(manifest(), ITEMS)
        store.set_model_id("r1", "smol-1")
        store.set_model_id("r1", "smol-2")  # the first reported id stays
        store.set_config("r1", RunConfig(structured="json_object"))
        store.set_status("r1", "finished", "2026-11-22T23:10:00+00:00")
        run = store.run("r1")
    assert (run.model_id, run.config.model_dump(), run.status, run.ended_at) == (
        "smol-1", {"structured": "json_object"}, "finished", "2026-11-22T23:10:00+00:00",
    )  # fmt: skip


def test_baselines_keep_their_history_and_the_latest_wins(open_store):
    with open_store() as store:
        store.create_run(manifest("r1"), ITEMS)
        store.create_run(manifest("r2"), ITEMS)
        store.set_baseline("prod", "r1", "2026-11-23T00:00:00+00:00")
        store.set_baseline("prod", "r2", "2026-11-23T00:00:00+00:00", "same second, later")
        assert store.baseline("prod").run_id == "r2"
        assert [r[1] for r in store.baselines(history=True)] == ["r1", "r2"]
        with pytest.raises(StoreError, match="is the id of a run"):
            store.set_baseline("r1", "r2", "2026-11-23T00:00:00+00:00")


def test_one_process_at_a_time_works_a_run(open_store):
    with open_store() as first, open_store() as second:
        first.create_run(manifest(), ITEMS)
        with first.lock_run("r1"), pytest.raises(StoreError, match="being worked by another"):
            with second.lock_run("r1"):
                pass
        with second.lock_run("r1"):  # released when the holder is done
            pass


def test_a_store_made_before_finish_reasons_gains_the_columns_and_keeps_its_answers(tmp_path):
    db = sqlite3.connect(tmp_path / "evals.db")
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for step in MIGRATIONS[:2]:
        step(db)
        db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (step.__name__,))
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        store.create_run(manifest(), ITEMS)
        # a row as the older code wrote it: only the first nine columns
        store.db.execute("INSERT INTO answers (run_id, item_id, sample, text) VALUES ('r1', 'q1', 0, '4')")
        assert store.answers("r1")[("q1", 0)] == Answer("r1", "q1", 0, "4")


def test_finish_reason_truncation_and_reasoning_read_back_and_reach_the_export(open_store):
    with open_store() as store:
        store.create_run(manifest(), ITEMS)
        cut = Answer("r1", "q1", 0, "The answer is", finish_reason="length", truncated=True, reasoning="hmm")
        store.save_answer(cut)
        store.save_answer(Answer("r1", "q2", 0, "Paris", finish_reason="stop"))
        assert store.answers("r1")[("q1", 0)] == cut
        path = store.export_jsonl("r1")
    rows = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert (rows["q1"]["truncated"], rows["q1"]["finish_reason"], rows["q1"]["reasoning"]) == (
        True, "length", "hmm",
    )  # fmt: skip
    assert (rows["q2"]["truncated"], rows["q2"]["reasoning"]) == (False, None)


@pytest.mark.parametrize(
    "url",
    ["postgresql://evals:hunter2-secret@db.example/evals", "postgresql://evals@db/e?password=hunter2-secret"],
)
def test_a_password_in_the_store_url_is_refused_without_being_shown(tmp_path, url):
    with pytest.raises(ConfigError) as caught:
        Store(tmp_path, url=url)
    assert "PGPASSWORD" in str(caught.value) and "hunter2" not in str(caught.value)


def test_evals_store_selects_the_database(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("EVALS_STORE", postgres_url)
    with Store(tmp_path) as store:
        assert store.dialect == "postgresql"
        store.create_run(manifest(), ITEMS)
    assert not (tmp_path / "evals.db").exists()
    with Store(tmp_path, readonly=True) as store:
        assert store.run("r1") == manifest()


# The schema of lookingglass at commit bcd7456 (migrations _m001_initial and _m002_baselines), as that
# release wrote it: kept here verbatim so the upgrade is tested from a real older store.
SCHEMA_BCD7456 = """
CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, schema_version INTEGER NOT NULL, suite_name TEXT NOT NULL,
    suite_path TEXT NOT NULL, suite_hash TEXT NOT NULL, model_name TEXT NOT NULL, model TEXT, model_id TEXT,
    judge_name TEXT NOT NULL, judge_model TEXT NOT NULL, rubric_name TEXT NOT NULL, rubric_hash TEXT NOT NULL,
    samples INTEGER NOT NULL, config_json TEXT NOT NULL, tags_json TEXT NOT NULL, status TEXT NOT NULL,
    started_at TEXT NOT NULL, ended_at TEXT, lookingglass_version TEXT NOT NULL
);
CREATE INDEX runs_suite ON runs (suite_name, started_at);
CREATE TABLE items (
    run_id TEXT NOT NULL REFERENCES runs (run_id), item_id TEXT NOT NULL, position INTEGER NOT NULL,
    area TEXT NOT NULL, content_hash TEXT NOT NULL, item_json TEXT NOT NULL, PRIMARY KEY (run_id, item_id)
);
CREATE TABLE answers (
    run_id TEXT NOT NULL, item_id TEXT NOT NULL, sample INTEGER NOT NULL, text TEXT, tokens_in INTEGER,
    tokens_out INTEGER, latency_ms REAL, model_id TEXT, error TEXT, PRIMARY KEY (run_id, item_id, sample),
    FOREIGN KEY (run_id, item_id) REFERENCES items (run_id, item_id)
);
CREATE TABLE judgments (
    run_id TEXT NOT NULL, item_id TEXT NOT NULL, sample INTEGER NOT NULL,
    score INTEGER CHECK (score BETWEEN 1 AND 5), rationale TEXT, raw TEXT, judge TEXT NOT NULL,
    cache_key TEXT NOT NULL, cached INTEGER NOT NULL DEFAULT 0, tokens_in INTEGER, tokens_out INTEGER,
    latency_ms REAL, error TEXT, PRIMARY KEY (run_id, item_id, sample),
    FOREIGN KEY (run_id, item_id) REFERENCES items (run_id, item_id)
);
CREATE INDEX judgments_cache ON judgments (cache_key) WHERE score IS NOT NULL;
CREATE TABLE baselines (
    name TEXT NOT NULL, run_id TEXT NOT NULL REFERENCES runs (run_id), set_at TEXT NOT NULL, note TEXT
);
CREATE INDEX baselines_name ON baselines (name, set_at);
INSERT INTO _migrations VALUES ('_m001_initial', '2026-11-20 10:00:00'), ('_m002_baselines', '2026-11-20 10:00:00');
INSERT INTO runs VALUES ('old1', 1, 'demo', 'suites/demo', 'h', 'local', 'smollm2', 'smol-1', 'claude',
    'claude-test', 'correctness', 'rh', 1, '{}', '["nightly"]', 'finished', '2026-11-20T10:00:00+00:00',
    '2026-11-20T10:05:00+00:00', '0.1.0');
INSERT INTO items VALUES ('old1', 'q1', 0, 'math', 'ch', '{"id":"q1","area":"math","question":"2+2?","reference":"4"}');
INSERT INTO answers VALUES ('old1', 'q1', 0, '4', 5, 1, 3.0, 'smol-1', NULL);
INSERT INTO judgments VALUES ('old1', 'q1', 0, 5, 'right', 'raw', 'claude (claude-test)', 'key-old', 0, 50, 20, 300.0, NULL);
INSERT INTO baselines VALUES ('prod', 'old1', '2026-11-20T11:00:00+00:00', NULL);
"""


def test_a_store_made_by_release_bcd7456_upgrades_in_place_and_keeps_everything(tmp_path):
    db = sqlite3.connect(tmp_path / "evals.db")
    db.executescript(SCHEMA_BCD7456)
    db.close()
    with Store(tmp_path) as store:
        run = store.run("old1")
        # The old run knew only its first item's rubric: that is the set it is given.
        assert run.rubrics == ("correctness@rh",) and run.status == "finished"
        assert store.answers("old1") == {("q1", 0): Answer("old1", "q1", 0, "4", 5, 1, 3.0, "smol-1")}
        judgment = store.judgments("old1")[("q1", 0)]
        assert (judgment.score, judgment.rubric_hash, judgment.judge_fingerprint, judgment.model_id) == (
            5, None, None, None,
        )  # fmt: skip
        assert store.cached_judgment("key-old") == judgment
        assert store.baseline("prod").run_id == "old1"
        # and the upgraded store takes new judgments with their provenance
        store.save_judgment(
            replace(judgment, sample=0, rubric_hash="rh2", judge_fingerprint="fp", model_id="m")
        )
        assert store.judgments("old1")[("q1", 0)].judge_fingerprint == "fp"
        # verdicts are keyed by repeat and judge now: a second judge's verdict stands beside the first
        store.save_judgment(replace(judgment, judge="gpt (g)", score=4, cache_key="key-g"))
        assert [(j.judge, j.repeat, j.score) for j in store.verdicts("old1")] == [
            ("claude (claude-test)", 0, 5), ("gpt (g)", 0, 4),
        ]  # fmt: skip
        assert [r.score for r in store.results("old1")] == [4.5]
    applied = [r[0] for r in sqlite3.connect(tmp_path / "evals.db").execute("SELECT name FROM _migrations")]
    assert applied == [m.__name__ for m in MIGRATIONS]


def test_a_postgres_store_of_an_older_release_gains_the_provenance_columns(tmp_path, postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, step in POSTGRES_MIGRATIONS[:3]:
            step(db.execute)
            db.execute("INSERT INTO _migrations VALUES (%s, now()::text)", (name,))
    with Store(tmp_path, url=postgres_url) as store:
        store.create_run(manifest(), ITEMS)
        store.save_judgment(
            Judgment("r1", "q1", 0, 4, "ok", "raw", "j", "k", rubric_hash="rh", judge_fingerprint="fp")
        )
        assert store.judgments("r1")[("q1", 0)].rubric_hash == "rh"
        store.save_judgment(Judgment("r1", "q1", 0, 2.5, "ok", "raw", "j2", "k2", repeat=1))
        assert [(j.judge, j.repeat, j.score) for j in store.verdicts("r1")] == [("j", 0, 4), ("j2", 1, 2.5)]
        assert [r[0] for r in store.db.execute("SELECT name FROM _migrations ORDER BY name")] == [
            m.__name__ for m in MIGRATIONS
        ]


def test_a_postgres_store_with_verdicts_keyed_by_sample_only_upgrades_and_keeps_them(tmp_path, postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, step in POSTGRES_MIGRATIONS[:4]:  # the schema before verdicts had a repeat and a judge key
            step(db.execute)
            db.execute("INSERT INTO _migrations VALUES (%s, now()::text)", (name,))
        db.execute(
            "INSERT INTO runs (run_id, schema_version, suite_name, suite_path, suite_hash, model_name, "
            "judge_name, judge_model, rubric_name, rubric_hash, samples, config_json, tags_json, status, "
            "started_at, lookingglass_version) VALUES ('old1', 1, 'demo', 's', 'h', 'local', 'claude', "
            "'claude-test', 'correctness', 'rh', 1, '{}', '[]', 'finished', '2026-11-20T10:00:00+00:00', '0.1')"
        )
        db.execute(
            "INSERT INTO items VALUES ('old1', 'q1', 0, 'math', 'ch', "
            """'{"id":"q1","area":"math","question":"2+2?","reference":"4"}')"""
        )
        db.execute("INSERT INTO answers (run_id, item_id, sample, text) VALUES ('old1', 'q1', 0, '4')")
        db.execute(
            "INSERT INTO judgments (run_id, item_id, sample, score, rationale, raw, judge, cache_key, rubric_hash) "
            "VALUES ('old1', 'q1', 0, 5, 'right', 'raw', 'claude (claude-test)', 'key-old', 'rh')"
        )
    with Store(tmp_path, url=postgres_url) as store:
        (old,) = store.verdicts("old1")
        assert (old.score, old.repeat, old.judge, old.rubric_hash) == (5, 0, "claude (claude-test)", "rh")
        assert store.cached_judgment("key-old") == old
        store.save_judgment(replace(old, judge="gpt (g)", score=3.5, cache_key="key-g"))
        store.save_judgment(replace(old, score=4))  # the same judge and repeat: replaced, not added
        assert [(j.judge, j.score) for j in store.verdicts("old1")] == [
            ("claude (claude-test)", 4),
            ("gpt (g)", 3.5),
        ]
        assert [r.score for r in store.results("old1")] == [3.75]
