"""Moving history: `evals store copy` between SQLite and PostgreSQL, `evals import` of run exports, and
`evals export history` as Parquet; with the provenance every judgment now carries."""

import json
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import JudgeEndpoint
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.judge.judging import build_judge
from evals.judge.rubrics import RubricBook
from evals.outbound.gateway import Gateway
from evals.store import Store

ANSWERS = {"Capital of France?": "Paris.", "Capital of Peru?": "Quito.", "What is 2 + 2?": "4"}
SUITE = [
    {"id": "geo-1", "area": "geography", "question": "Capital of France?", "reference": "Paris"},
    {"id": "geo-2", "area": "geography", "question": "Capital of Peru?", "reference": "Lima"},
    {"id": "math-1", "area": "math", "question": "What is 2 + 2?", "reference": "4", "rubric": "strict"},
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project: the fakes as model and judge, a suite whose math item names a second rubric."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-SECRET-9999")
    judges = tmp_path / "judges"
    judges.mkdir()
    default = Path(__file__).parent.parent / "evals" / "defaults" / "judges" / "correctness.yaml"
    shutil.copy(default, judges / "correctness.yaml")
    (judges / "strict.yaml").write_text(default.read_text().replace("name: correctness", "name: strict"))
    with (
        FakeOpenAI(text_reply(lambda q: ANSWERS.get(q, "no idea")), model_id="qwen-test-7b") as model,
        FakeAnthropic(grade_by_reference, model_id="claude-test-20261101") as judge,
    ):
        config = {
            "models": {"local": {"base_url": model.url, "model": "qwen", "max_concurrency": 2, "max_retries": 0}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test",
                                  "max_retries": 0, "max_concurrency": 2}},
            "judges_dir": str(judges),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
        yield tmp_path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run(*args):
    result = invoke("run", "--suite", "suite.jsonl", "--samples", "2", *args)
    assert result.exit_code == 0, result.output
    return re.search(r"results: .*runs/([^/]+)/results.jsonl", result.output.replace("\n", "")).group(1)


def history(store: Store) -> dict:
    """Everything a store holds, in a comparable form."""
    runs = store.runs()
    return {
        "runs": runs,
        "items": {m.run_id: store.items(m.run_id) for m in runs},
        "answers": {m.run_id: store.answers(m.run_id) for m in runs},
        "judgments": {m.run_id: store.judgments(m.run_id) for m in runs},
        "baselines": store.baselines(history=True),
    }


def test_each_judgment_records_its_rubric_judge_fingerprint_and_model_id_and_the_run_every_rubric(project):
    run_id = run()
    rubrics = RubricBook(project / "judges", "correctness")
    correctness, strict = rubrics.get("correctness"), rubrics.get("strict")
    assert correctness.hash != strict.hash
    with Store(project / "reports") as store:
        manifest = store.run(run_id)
        judgments = store.judgments(run_id)
    assert manifest.rubrics == tuple(sorted([correctness.label, strict.label]))
    # several rubrics: the run names them all, and its hash is of the whole set
    assert manifest.rubric_name == "correctness+strict"
    assert manifest.rubric_hash not in (correctness.hash, strict.hash)
    config = yaml.safe_load((project / "evals.yaml").read_text())
    judge = build_judge("claude", JudgeEndpoint(**config["judges"]["claude"]), project / "judges", Gateway())
    for (item_id, _), j in judgments.items():
        assert j.rubric_hash == (strict.hash if item_id == "math-1" else correctness.hash)
        assert j.judge_fingerprint == judge.identity.digest
        assert j.model_id == "claude-test-20261101"
    # the same answer twice (two samples) is judged once: the reused verdict keeps all three
    reused = [j for j in judgments.values() if j.cached]
    assert reused and all(j.model_id == "claude-test-20261101" and j.rubric_hash for j in reused)


def test_history_copies_sqlite_to_postgres_and_back_unchanged_and_twice_is_harmless(project, postgres_url):
    first, second = run(), run("--tag", "nightly")
    assert invoke("baseline", "set", first, "--name", "prod").exit_code == 0
    with Store(project / "reports") as store:
        original = history(store)

    result = invoke("store", "copy", "reports", postgres_url)
    assert result.exit_code == 0, result.output
    assert "copied 2 new run(s)" in result.output and "1 baseline approval(s) added" in result.output
    again = invoke("store", "copy", "reports", postgres_url)
    assert "copied 0 new run(s)" in again.output and "2 already there" in again.output
    with Store(project, url=postgres_url) as pg:
        assert history(pg) == original

    back = invoke("store", "copy", postgres_url, project / "elsewhere" / "evals.db")
    assert back.exit_code == 0, back.output
    with Store(project / "elsewhere") as copy:
        assert history(copy) == original
        assert copy.baseline("prod").run_id == first
        assert {m.run_id for m in copy.runs()} == {first, second}


def test_a_copy_from_a_missing_store_is_one_line_and_creates_nothing(project):
    result = invoke("store", "copy", "nowhere", "target")
    assert result.exit_code == 2 and "no run store here" in result.output
    assert not (project / "nowhere").exists() and not (project / "target").exists()


def test_import_loads_exported_runs_equal_to_the_originals_idempotently(project, postgres_url):
    run_ids = {run(), run()}
    for run_id in run_ids:
        assert (project / "reports" / "runs" / run_id / "manifest.json").is_file()
    with Store(project / "reports") as store:
        original = {r: list(store.results(r)) for r in run_ids}
        manifests = {r: store.run(r) for r in run_ids}

    for _ in range(2):  # the second import changes nothing
        result = invoke("import", "reports/runs", "--reports", "imported")
        assert result.exit_code == 0, result.output
    assert "imported 0 new run(s)" in result.output and "2 already there" in result.output
    with Store(project / "imported") as imported:
        assert {r: list(imported.results(r)) for r in run_ids} == original
        assert {r: imported.run(r) for r in run_ids} == manifests

    # EVALS_STORE sends an import to a PostgreSQL store
    result = CliRunner(env={"EVALS_STORE": postgres_url}).invoke(main, ["import", "reports"])
    assert result.exit_code == 0, result.output
    with Store(project, url=postgres_url) as pg:
        assert {r: list(pg.results(r)) for r in run_ids} == original


def test_a_malformed_export_is_one_line_naming_file_and_line_and_nothing_is_written(project):
    first = run()
    bad = project / "broken" / "r9"
    bad.mkdir(parents=True)
    shutil.copy(project / "reports" / "runs" / first / "manifest.json", bad / "manifest.json")
    good_lines = (project / "reports" / "runs" / first / "results.jsonl").read_text().splitlines()
    (bad / "results.jsonl").write_text(good_lines[0] + "\n{not json\n")
    result = invoke("import", "broken", "--reports", "target")
    assert result.exit_code == 2
    assert "broken/r9/results.jsonl:2: not a result row exported by lookingglass" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with Store(project / "target") as target:
        assert target.runs() == []


def test_export_history_writes_parquet_that_pandas_and_duckdb_read(project):
    first, second = run(), run()
    result = invoke("export", "history", "--format", "parquet", "--out", "history")
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(project / "history" / "runs.parquet")
    areas = pd.read_parquet(project / "history" / "areas.parquet")
    results = pd.read_parquet(project / "history" / "results.parquet")
    assert set(runs["run_id"]) == {first, second}
    assert list(runs["scored"]) == [len(SUITE) * 2] * 2 and list(runs["errors"]) == [0, 0]
    assert len(results) == 2 * len(SUITE) * 2
    # geography: geo-1 right (5, 5), geo-2 wrong (1, 1): the mean of item means is 3.0
    geo = areas[(areas["run_id"] == first) & (areas["area"] == "geography")].iloc[0]
    assert (geo["items"], geo["scored"], geo["errors"], geo["mean"], geo["pass_rate"]) == (2, 4, 0, 3.0, 0.5)
    assert "UTC" in str(areas["started_at"].dtype)  # tz-aware: trends sort and plot by real time
    counts = duckdb.sql(
        f"SELECT r.model_name, count(*) AS n, avg(score) AS mean FROM '{project}/history/results.parquet' s "
        f"JOIN '{project}/history/runs.parquet' r USING (run_id) GROUP BY r.model_name"
    ).fetchall()
    # per run: geo-1 5,5 · geo-2 1,1 · math-1 5,5
    assert counts == [("local", 12, pytest.approx((5 + 5 + 1 + 1 + 5 + 5) / 6))]
