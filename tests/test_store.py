"""The run store: migrations, round trips, and the JSONL export."""

import json
import sqlite3

import pytest

from evals.errors import StoreError
from evals.records import Answer, Item, Judgment, RunManifest
from evals.store import MIGRATIONS, Store

ITEMS = [
    Item(id="q1", area="math", question="2+2?", reference="4"),
    Item(id="q2", area="geo", question="Capital of France?", reference="Paris"),
]


def manifest(run_id="r1", samples=1, suite="demo"):
    return RunManifest(
        run_id=run_id, suite_name=suite, suite_path="suites/demo", suite_hash="h", model_name="local",
        model="smollm2", judge_name="offline", judge_model="offline-reference", rubric_name="correctness",
        rubric_hash="rh", samples=samples, started_at=f"2026-11-22T23:00:0{run_id[-1]}+00:00",
        config={"model": {"api_key_env": "LOCAL_KEY"}}, tags=("nightly",),
    )  # fmt: skip


def test_migrations_pin_the_columns(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "evals.db")
    columns = {
        t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in ("runs", "answers", "judgments")
    }
    assert columns["answers"] == [
        "run_id", "item_id", "sample", "text", "tokens_in", "tokens_out", "latency_ms", "model_id", "error",
        "finish_reason", "truncated", "reasoning",
    ]  # fmt: skip
    assert {"score", "rationale", "raw", "cache_key", "cached", "error"} <= set(columns["judgments"])
    assert {"suite_hash", "rubric_hash", "model_id", "config_json", "status", "started_at"} <= set(
        columns["runs"]
    )
    applied = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    assert applied == [m.__name__ for m in MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_applies_no_migration_twice(tmp_path):
    Store(tmp_path).close()
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "evals.db")
    assert db.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_run_items_answers_and_judgments_read_back_equal(tmp_path):
    with Store(tmp_path) as store:
        store.create_run(manifest(), ITEMS)
        answer = Answer("r1", "q1", 0, "4", tokens_in=5, tokens_out=1, latency_ms=3.0, model_id="smol")
        judgment = Judgment("r1", "q1", 0, 5, "right", "raw", "offline", "key1")
        store.save_answer(answer)
        store.save_judgment(judgment)
        assert store.run("r1") == manifest()
        assert store.items("r1") == ITEMS
        assert store.answers("r1") == {("q1", 0): answer}
        assert store.judgments("r1") == {("q1", 0): judgment}
        assert store.cached_judgment("key1") == judgment
        assert store.cached_judgment("other") is None


def test_failed_judgments_are_not_reused_from_the_cache(tmp_path):
    with Store(tmp_path) as store:
        store.create_run(manifest(), ITEMS)
        store.save_judgment(Judgment("r1", "q1", 0, None, None, "junk", "j", "key1", error="unparseable"))
        assert store.cached_judgment("key1") is None


def test_unknown_run_is_a_store_error(tmp_path):
    with Store(tmp_path) as store, pytest.raises(StoreError, match="no run 'nope'"):
        store.run("nope")


def test_export_has_one_line_per_item_and_sample_with_errors_as_null_scores(tmp_path):
    with Store(tmp_path) as store:
        store.create_run(manifest(samples=2), ITEMS)
        store.save_answer(Answer("r1", "q1", 0, "4"))
        store.save_judgment(Judgment("r1", "q1", 0, 5, "right", "raw", "offline", "k"))
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
    assert by_key["q1", 1]["score"] is None and by_key["q1", 1]["error_kind"] == "judge"
    assert by_key["q2", 0]["error_kind"] == "answer" and by_key["q2", 0]["answer"] is None
    assert by_key["q2", 1]["error"] == "not answered"


def test_runs_are_listed_per_suite_oldest_first(tmp_path):
    with Store(tmp_path) as store:
        store.create_run(manifest("r2"), ITEMS)
        store.create_run(manifest("r1"), ITEMS)
        store.create_run(manifest("r3", suite="other"), ITEMS)
        assert [m.run_id for m in store.runs("demo")] == ["r1", "r2"]
        assert len(store.runs()) == 3


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


def test_finish_reason_truncation_and_reasoning_read_back_and_reach_the_export(tmp_path):
    with Store(tmp_path) as store:
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
