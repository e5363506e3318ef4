"""`evals run` end to end: real SDKs against fake servers, then the store and the exports are checked."""

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.cli.run import _execute
from evals.config import load_config
from evals.errors import EvalsError
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, grade_by_reference, text_reply
from evals.store import Store
from evals.suites import load_suite

SECRET = "sk-ant-test-SECRET-4242"
ANSWERS = {
    "Capital of France?": "Paris.",
    "Capital of Peru?": "I think it is Quito.",
    "What is 2 + 2?": "4",
    "What is 6 x 7?": "42",
}
SUITE = [
    {"id": "geo-1", "area": "geography", "question": "Capital of France?", "reference": "Paris"},
    {"id": "geo-2", "area": "geography", "question": "Capital of Peru?", "reference": "Lima"},
    {"id": "math-1", "area": "math", "question": "What is 2 + 2?", "reference": "4"},
    {"id": "math-2", "area": "math", "question": "What is 6 x 7?", "reference": "42"},
]


@pytest.fixture
def model_server():
    with FakeOpenAI(text_reply(lambda q: ANSWERS.get(q, "no idea")), model_id="qwen-test-7b") as server:
        yield server


@pytest.fixture
def judge_server():
    with FakeAnthropic(grade_by_reference, model_id="claude-test") as server:
        yield server


@pytest.fixture
def project(tmp_path, model_server, judge_server, monkeypatch):
    """A project folder: evals.yaml pointing at the fakes, a suite, the default rubric."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    config = {
        "models": {
            "local": {"base_url": model_server.url, "model": "qwen", "max_concurrency": 2, "max_retries": 0},
        },
        "judges": {
            "claude": {"provider": "anthropic", "base_url": judge_server.url, "model": "claude-test",
                       "max_retries": 1, "max_concurrency": 2},
        },
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
        "canary": {"enabled": False},  # the judge calls counted here are the run's own (see test_canary.py)
    }  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def run_ids(reports: Path) -> list[str]:
    db = sqlite3.connect(reports / "evals.db")
    return [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY started_at")]


def test_run_answers_and_judges_every_item_and_stores_it(project, model_server, judge_server):
    result = invoke(
        "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "claude", "--tag", "nightly"
    )
    assert result.exit_code == 0, result.output
    [run_id] = run_ids(project / "reports")
    db = sqlite3.connect(project / "reports" / "evals.db")
    scores = dict(db.execute("SELECT item_id, score FROM judgments WHERE run_id = ?", (run_id,)))
    assert scores == {"geo-1": 5, "geo-2": 1, "math-1": 5, "math-2": 5}
    run = db.execute("SELECT model_id, status, tags_json, judge_model FROM runs").fetchone()
    assert run == ("qwen-test-7b", "finished", '["nightly"]', "claude-test")
    assert model_server.count() == 4 and judge_server.count() == 4
    # the judge was asked for a structured verdict through forced tool use
    assert all(body["tool_choice"]["type"] == "tool" for body in judge_server.requests)
    rows = [
        json.loads(line)
        for line in (project / "reports/runs" / run_id / "results.jsonl").read_text().splitlines()
    ]
    assert {r["id"]: r["score"] for r in rows} == scores
    assert rows[0]["answer"] == "Paris." and rows[0]["rationale"] == "matches the reference"
    assert run_id in result.output and "geography" in result.output and "math" in result.output
    assert "run: 4/4 done" in result.output  # progress lines where no bar can be drawn (CI logs)


def test_no_api_key_in_store_exports_or_output(project):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude")
    assert result.exit_code == 0
    for path in (project / "reports").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.output
    db = sqlite3.connect(project / "reports" / "evals.db")
    config = json.loads(db.execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["judge"]["api_key_env"] == "ANTHROPIC_API_KEY"


def test_provider_failures_are_recorded_per_item_and_the_run_finishes(project, model_server, judge_server):
    model_server.inject(Fault("server_error", status=503))  # max_retries 0: one item loses its answer
    judge_server.responder = lambda body: "I refuse to give a score."  # unparseable, twice
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude")
    # Every error is kept per item and the run finishes; with not one score left it exits 2 (issue 19.6).
    assert result.exit_code == 2, result.output
    assert "ended with no score: every verdict was unparseable" in result.output
    db = sqlite3.connect(project / "reports" / "evals.db")
    answer_errors = db.execute("SELECT count(*) FROM answers WHERE error IS NOT NULL").fetchone()[0]
    assert answer_errors == 1
    judged = db.execute("SELECT score, error, raw FROM judgments").fetchall()
    assert len(judged) == 3
    assert all(score is None and "unparseable" in error and raw for score, error, raw in judged)
    assert judge_server.count() == 6  # each bad verdict asked once more, then recorded as an error


def test_a_model_that_never_answers_is_an_error_not_a_finished_run(project, model_server):
    model_server.inject(*[Fault("server_error", status=502)] * 4)
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "down")
    assert result.exit_code == 2
    assert "every one of 4 model calls failed" in result.output and "--resume down" in result.output
    assert "Traceback" not in result.output


def test_invalid_suite_is_reported_before_any_call(project, model_server):
    (project / "bad.jsonl").write_text('{"id": "a", "area": "x", "question": "q", "refrence": "r"}\n')
    result = invoke("run", "--suite", "bad.jsonl", "--judge", "claude")
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output and "did you mean 'reference'" in result.output
    assert "Traceback" not in result.output
    assert model_server.count() == 0


def test_unchanged_answers_are_never_judged_twice(project, judge_server):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude").exit_code == 0
    assert judge_server.count() == 4
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude").exit_code == 0
    assert judge_server.count() == 4  # the second run reused all four judgments
    db = sqlite3.connect(project / "reports" / "evals.db")
    second = run_ids(project / "reports")[-1]
    cached = db.execute(
        "SELECT count(*) FROM judgments WHERE run_id = ? AND cached = 1", (second,)
    ).fetchone()
    assert cached[0] == 4


def test_samples_ask_each_item_k_times(project, model_server, judge_server):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--samples", "3").exit_code == 0
    assert model_server.count() == 12
    assert judge_server.count() == 4  # identical answers of one item are judged once
    db = sqlite3.connect(project / "reports" / "evals.db")
    assert db.execute("SELECT count(*) FROM judgments WHERE score IS NOT NULL").fetchone()[0] == 12


def test_resume_of_a_finished_run_asks_nothing(project, model_server, judge_server):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    result = invoke("run", "--resume", "r1")
    assert result.exit_code == 0, result.output
    assert model_server.count() == 4 and judge_server.count() == 4


def test_resume_retries_only_failed_answers(project, model_server, judge_server):
    model_server.inject(Fault("server_error"), Fault("server_error"))
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    assert model_server.count() == 4
    assert invoke("run", "--resume", "r1").exit_code == 0
    assert model_server.count() == 6  # only the two failed items were asked again
    db = sqlite3.connect(project / "reports" / "evals.db")
    assert db.execute("SELECT count(*) FROM judgments WHERE score IS NOT NULL").fetchone()[0] == 4


def test_resume_refuses_a_changed_suite(project):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    with (project / "suite.jsonl").open("a") as f:
        f.write(json.dumps({"id": "new", "area": "math", "question": "1+1?", "reference": "2"}) + "\n")
    result = invoke("run", "--resume", "r1")
    assert result.exit_code == 2 and "start a new run" in result.output


def test_unknown_judge_and_missing_key_are_clear_errors(project, monkeypatch):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "nope")
    assert result.exit_code == 2 and "unknown judge 'nope'" in result.output
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude")
    assert result.exit_code == 2 and "ANTHROPIC_API_KEY" in result.output


def test_offline_judge_is_the_default_without_keys_and_is_named(project, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = invoke("run", "--suite", "suite.jsonl")
    assert result.exit_code == 0, result.output
    assert "offline" in result.output
    db = sqlite3.connect(project / "reports" / "evals.db")
    assert db.execute("SELECT judge_name, judge_model FROM runs").fetchone() == (
        "offline",
        "offline-reference",
    )
    scores = dict(db.execute("SELECT item_id, score FROM judgments"))
    assert scores["geo-1"] == 5 and scores["geo-2"] < 5


def test_a_run_whose_server_is_gone_after_it_says_how_to_start_again(project, model_server):
    """The demo's bundled server stops with the demo: its hint is to run it again, never `--resume`."""
    model_server.inject(*[Fault("server_error", status=502)] * 4)
    config = load_config(project / "evals.yaml")
    name, model = config.model("local")
    judge_name, judge = config.judge("offline")
    with Store(project / "reports") as store, pytest.raises(EvalsError) as caught:
        _execute(
            config, store, load_suite(project / "suite.jsonl"), name, model, judge_name, judge, 1, (), None, None,
            again="run evals demo again",
        )  # fmt: skip
    assert str(caught.value).endswith("run evals demo again") and "--resume" not in str(caught.value)


# --judge-repeats: every answer graded K times, all but the first fresh, resumable per verdict


def stored_verdicts(project, run_id):
    db = sqlite3.connect(project / "reports" / "evals.db")
    return db.execute(
        "SELECT item_id, sample, repeat, cached, score FROM judgments WHERE run_id = ? ORDER BY 1, 2, 3",
        (run_id,),
    ).fetchall()


def test_each_answer_gets_k_verdicts_and_only_the_first_may_be_cached(project, judge_server):
    args = ("run", "--suite", "suite.jsonl", "--judge", "claude", "--judge-repeats", "3")
    assert invoke(*args, "--run-id", "r1").exit_code == 0
    assert judge_server.count() == 12  # 4 answers x 3 askings: repeats never reuse the first verdict
    rows = stored_verdicts(project, "r1")
    assert [(r[0], r[2]) for r in rows] == [
        (i, k) for i in ("geo-1", "geo-2", "math-1", "math-2") for k in range(3)
    ]
    assert all(score is not None for *_, score in rows)

    assert invoke(*args, "--run-id", "r2").exit_code == 0
    assert judge_server.count() == 20  # the first verdict of each answer came from the cache, 2 x 4 fresh
    second = stored_verdicts(project, "r2")
    assert {(r[2], r[3]) for r in second} == {(0, 1), (1, 0), (2, 0)}


def test_resume_asks_only_the_missing_repeats(project, judge_server):
    judge_server.inject(*[Fault("server_error")] * 4)  # max_retries 1: two verdicts fail for good
    args = ("run", "--suite", "suite.jsonl", "--judge", "claude", "--judge-repeats", "2", "--run-id", "r1")
    assert invoke(*args).exit_code == 0
    failed = [r for r in stored_verdicts(project, "r1") if r[4] is None]
    assert len(failed) == 2
    asked = judge_server.count()
    result = invoke("run", "--resume", "r1")
    assert result.exit_code == 0, result.output
    assert judge_server.count() == asked + 2  # only the two failed verdicts were asked again
    assert all(r[4] is not None for r in stored_verdicts(project, "r1"))
    assert len(stored_verdicts(project, "r1")) == 8


def test_dry_run_counts_every_repeat(project):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--judge-repeats", "3", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "judge claude (claude-test): 12 calls" in result.output


# Issue 20.3: every run has its page. Before, only `evals report` and `evals demo` wrote a scorecard.


def test_run_writes_its_scorecard_and_the_index_links_it(project):
    first = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1")
    assert first.exit_code == 0, first.output
    page = project / "reports/runs/r1/scorecard.html"
    assert page.is_file() and f"scorecard: {page}" in first.output.replace("\n", "")
    assert "Capital of Peru?" in page.read_text()  # the run's own items, escaped into the page
    second = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r2")
    assert second.exit_code == 0, second.output
    card = json.loads((project / "reports/runs/r2/scorecard.json").read_text())
    assert card["baseline"]["run_id"] == "r1"  # compared as `evals report` would
    index = (project / "reports/index.html").read_text()
    assert (
        '<a href="runs/r1/scorecard.html">r1</a>' in index
        and '<a href="runs/r2/scorecard.html">r2</a>' in index
    )


def test_a_run_stopped_early_still_gets_its_page_and_keeps_its_exit_code(project, judge_server):
    judge_server.responder = lambda body: "I refuse to give a score."  # no score at all: exit 2
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "stopped")
    assert result.exit_code == 2 and "ended with no score" in result.output, result.output
    assert (project / "reports/runs/stopped/scorecard.html").is_file()
    assert '<a href="runs/stopped/scorecard.html">' in (project / "reports/index.html").read_text()


def test_a_run_refused_before_it_starts_leaves_no_page(project):
    (project / "bad.jsonl").write_text('{"id": "a", "area": "x", "question": "q", "refrence": "r"}\n')
    assert invoke("run", "--suite", "bad.jsonl", "--judge", "claude", "--run-id", "never").exit_code == 2
    assert not (project / "reports/runs/never").exists() and not (project / "reports/index.html").exists()
