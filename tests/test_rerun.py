"""`evals judge rerun` end to end on the fake servers: frozen answers re-judged K times, fresh; resume;
refusals; and how a rerun makes two differently-judged runs comparable."""

import dataclasses
import json
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.defaults import __file__ as defaults_init
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, grade_by_reference, text_reply
from evals.records import RunConfig
from evals.scorecard import build_scorecard
from evals.store import Store

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
DEFAULT_RUBRIC = Path(defaults_init).parent / "judges" / "correctness.yaml"


class WaveringJudge:
    """A judge that changes its mind on the geography answers, by how often it has seen each one:
    "Paris." gets 5, 4, 5, ... (a flip, still a pass at 4); the Quito answer 1, 4, 1, ... (a pass/fail flip).
    The math answers are graded by the reference, the same every time."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, body):
        verdict = grade_by_reference(body)
        text = body["messages"][-1]["content"]
        text = text if isinstance(text, str) else " ".join(b.get("text", "") for b in text)
        for answer, scores in (("Paris.", (5, 4)), ("I think it is Quito.", (1, 4))):
            if f"<answer>\n{answer}\n</answer>" in text:
                with self.lock:
                    n = self.seen[answer]
                    self.seen[answer] += 1
                return {"rationale": "hmm", "score": scores[n % 2]}
        return verdict


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
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-SECRET-4242")
    judges = tmp_path / "judges"
    judges.mkdir()
    rubric = yaml.safe_load(DEFAULT_RUBRIC.read_text())
    (judges / "correctness.yaml").write_text(yaml.safe_dump(rubric))
    (judges / "strict.yaml").write_text(yaml.safe_dump({**rubric, "name": "strict"}))
    judge = {"provider": "anthropic", "base_url": judge_server.url, "max_retries": 1, "max_concurrency": 2}
    config = {
        "models": {"local": {"base_url": model_server.url, "model": "qwen", "max_retries": 0}},
        "judges": {"claude": {**judge, "model": "claude-test"}, "next": {**judge, "model": "claude-next"}},
        "judges_dir": str(judges),
    }
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def source_run(run_id="r1", judge="claude"):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", judge, "--run-id", run_id)
    assert result.exit_code == 0, result.output


def db(project):
    return sqlite3.connect(project / "reports" / "evals.db")


def test_rerun_judges_the_frozen_answers_k_times_fresh_and_measures_the_judge(
    project, model_server, judge_server
):
    source_run()
    asked, graded = model_server.count(), judge_server.count()
    judge_server.responder = WaveringJudge()
    result = invoke("judge", "rerun", "r1", "--repeats", "3", "--run-id", "rr")
    assert result.exit_code == 0, result.output
    assert model_server.count() == asked  # the answers are frozen: the model is not asked
    assert judge_server.count() == graded + 4 * 3  # every verdict fresh, though r1 holds the same keys
    rows = (
        db(project)
        .execute(
            "SELECT run_id, item_id, text FROM answers WHERE run_id IN ('r1', 'rr') ORDER BY item_id, run_id"
        )
        .fetchall()
    )
    assert [(r[1], r[2]) for r in rows if r[0] == "rr"] == [(r[1], r[2]) for r in rows if r[0] == "r1"]
    cached = db(project).execute("SELECT COUNT(*), SUM(cached) FROM judgments WHERE run_id = 'rr'").fetchone()
    assert cached == (12, 0)
    with Store(project / "reports") as store:
        manifest = store.run("rr")
        assert manifest.config.rerun_of == "r1"
        assert manifest.config.judging.model_dump() == {"repeats": 3, "fresh": True}
        card = build_scorecard(store, "rr", "r1")
    geo, math = card.area("geography").judge_noise, card.area("math").judge_noise
    assert geo is not None and math is not None
    assert geo.measured and geo.repeats == 3 and geo.n_answers == 2
    assert geo.flip_rate == 1 and geo.pass_flip_rate == 0.5  # what the wavering judge made them
    assert math.flip_rate == 0 and math.var_judge == 0
    assert "re-judged the frozen answers of run r1" in result.output
    assert "geography: flip rate 100% (pass/fail 50%)" in result.output


def test_a_failed_answer_stays_an_error_in_the_rerun(project, model_server, judge_server):
    model_server.inject(Fault("server_error"))  # max_retries 0: one answer fails for good
    source_run()
    asked = model_server.count()
    assert invoke("judge", "rerun", "r1", "--repeats", "2", "--run-id", "rr").exit_code == 0
    assert model_server.count() == asked
    errors = (
        db(project)
        .execute("SELECT run_id, item_id, error IS NOT NULL FROM answers WHERE text IS NULL ORDER BY run_id")
        .fetchall()
    )
    assert [(r[0], r[2]) for r in errors] == [("r1", 1), ("rr", 1)] and errors[0][1] == errors[1][1]
    with Store(project / "reports") as store:
        assert build_scorecard(store, "rr").overall.answer_errors == 1


def test_an_interrupted_rerun_resumes_without_its_suite_and_asks_only_missing_verdicts(project, judge_server):
    source_run()

    def no_grade_for_peru(body):  # a server error (500) on every try: geo-2's two verdicts fail for good
        if "Capital of Peru?" in json.dumps(body):
            raise RuntimeError("injected: this judge cannot grade geo-2 today")
        return grade_by_reference(body)

    # Failing by item, not by the order requests arrive: two calls in flight took queued faults by turns.
    judge_server.responder = no_grade_for_peru
    assert invoke("judge", "rerun", "r1", "--repeats", "2", "--run-id", "rr").exit_code == 0
    judge_server.responder = grade_by_reference
    failed = db(project).execute("SELECT COUNT(*) FROM judgments WHERE run_id = 'rr' AND score IS NULL")
    assert failed.fetchone() == (2,)
    (project / "suite.jsonl").write_text("")  # a rerun's items are in the store: the suite is not read
    asked = judge_server.count()
    dry = invoke("run", "--resume", "rr", "--dry-run")
    assert dry.exit_code == 0 and "needs 2 more verdicts" in dry.output
    result = invoke("run", "--resume", "rr")
    assert result.exit_code == 0, result.output
    assert judge_server.count() == asked + 2
    scored = db(project).execute("SELECT COUNT(*) FROM judgments WHERE run_id = 'rr' AND score IS NOT NULL")
    assert scored.fetchone() == (8,)


def test_rerun_with_another_judge_makes_two_differently_judged_runs_comparable(project):
    source_run("r1", judge="claude")  # the baseline, judged by the old judge
    source_run("r2", judge="next")  # the candidate, judged by the new one
    with Store(project / "reports") as store:
        assert build_scorecard(store, "r2", "r1").judged_differently  # not comparable as they stand
    assert (
        invoke("judge", "rerun", "r1", "--judge", "next", "--repeats", "1", "--run-id", "r1-next").exit_code
        == 0
    )
    with Store(project / "reports") as store:
        card = build_scorecard(store, "r2", "r1-next")
        assert card.judged_differently == []
        assert card.overall.drift.n_pairs == 4 and card.overall.drift.delta == 0
        assert store.run("r1-next").judge_model == "claude-next"


def test_rerun_with_another_rubric_records_it(project):
    source_run()
    assert (
        invoke("judge", "rerun", "r1", "--rubric", "strict", "--repeats", "1", "--run-id", "rr").exit_code
        == 0
    )
    with Store(project / "reports") as store:
        m = store.run("rr")
        assert m.config.judging.rubric == "strict" and m.rubric_name == "strict"
        assert m.config.judge.rubric == "strict"
        # the rubric is named among what the rerun was judged differently with than its source
        assert any("strict" in d for d in build_scorecard(store, "rr", "r1").judged_differently)


def test_rerun_refuses_an_unknown_run(project):
    source_run()
    result = invoke("judge", "rerun", "nope")
    assert result.exit_code == 2 and "nope" in result.output


def test_rerun_refuses_a_run_without_answers(project, model_server):
    model_server.inject(*[Fault("server_error")] * 4)
    invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1")
    result = invoke("judge", "rerun", "r1")
    assert result.exit_code == 2 and "has no answers to re-judge" in result.output


def test_rerun_refuses_a_purged_run(project):
    source_run()
    with db(project) as conn:
        conn.execute("UPDATE answers SET text = NULL WHERE run_id = 'r1'")
    result = invoke("judge", "rerun", "r1", "--run-id", "rr")
    assert result.exit_code == 2 and "purged" in result.output
    assert db(project).execute("SELECT COUNT(*) FROM runs WHERE run_id = 'rr'").fetchone() == (0,)


def test_rerun_as_a_library_call_on_both_store_backends(open_store, fake_anthropic, monkeypatch):
    from builders import make_run

    from evals.config import JudgeEndpoint
    from evals.defaults import SHIPPED_JUDGES
    from evals.trust import rerun

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    fake_anthropic.responder = grade_by_reference
    endpoint = JudgeEndpoint(
        provider="anthropic", base_url=fake_anthropic.url, model="claude-test", max_retries=0
    )
    with open_store() as store:
        make_run(store, "r01", {"geo-1": [5, 4], "math-1": [3, 3]})
        outcome = rerun.rerun(store, "r01", "claude", endpoint, SHIPPED_JUDGES, repeats=2, run_id="rr")
        assert outcome.judged == 2 * 2 * 2 and outcome.reused == 0
        assert store.answers("rr") == {
            k: dataclasses.replace(a, run_id="rr") for k, a in store.answers("r01").items()
        }
        verdicts = store.verdicts("rr")
        assert sorted((v.item_id, v.sample, v.repeat) for v in verdicts) == [
            (i, s, r) for i in ("geo-1", "math-1") for s in (0, 1) for r in (0, 1)
        ]
        assert rerun.source_of(store.run("rr")) == "r01" and store.run("rr").status == "finished"
        assert rerun.resume(store, "rr", "claude", endpoint, SHIPPED_JUDGES).judged == 0  # nothing missing


def test_a_rerun_keeps_the_perimeter_and_the_audit_trail(project, judge_server, monkeypatch):
    secret = [{**SUITE[0], "question": "Capital of France? Mail ana.perez@example.com"},
              {**SUITE[2], "sensitivity": "restricted"}]  # fmt: skip
    (project / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in secret))
    monkeypatch.chdir(project)
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1").exit_code == 0
    config = yaml.safe_load((project / "evals.yaml").read_text())
    config["judges"]["claude"]["external"] = True
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    refused = CliRunner().invoke(main, ["judge", "rerun", "r1", "--judge", "claude", "--run-id", "rr"])
    assert refused.exit_code == 2 and "restricted" in refused.output
    assert judge_server.count() == 0
    (project / "suite.jsonl").write_text(json.dumps(secret[0]) + "\n")
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r2").exit_code == 0
    done = invoke("judge", "rerun", "r2", "--judge", "claude", "--repeats", "2", "--run-id", "rr2")
    assert done.exit_code == 0, done.output
    assert judge_server.count() == 2
    assert not any("ana.perez@example.com" in json.dumps(body) for body in judge_server.requests)
    shown = invoke("audit", "show", "--item", "geo-1", "--run", "rr2", "--format", "json")
    assert shown.exit_code == 0 and shown.output.count('"judge"') >= 2


def test_the_suite_s_redaction_patterns_are_kept_with_the_run_and_its_rerun(project):
    pattern = {"name": "EMPLOYEE_ID", "regex": r"EMP-\d{6}", "context": ["employee"], "score": 0.6}
    suite = {"suite": "staff", "redact": [pattern], "items": SUITE}
    (project / "suite.yaml").write_text(yaml.safe_dump(suite))
    result = invoke("run", "--suite", "suite.yaml", "--judge", "claude", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert invoke("judge", "rerun", "r1", "--repeats", "1", "--run-id", "rr").exit_code == 0
    for run_id in ("r1", "rr"):
        stored = db(project).execute("SELECT config_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        assert json.loads(stored[0])["patterns"] == [pattern], run_id
    with Store(project / "reports") as store:
        assert [p.name for p in store.run("rr").config.patterns] == ["EMPLOYEE_ID"]
        # a source stored before patterns were kept: its rerun does not claim the suite had none
        old = store.run("r1").config.model_dump(mode="json")
        del old["patterns"]
        store.set_config("r1", RunConfig.model_validate(old))
    assert invoke("judge", "rerun", "r1", "--repeats", "1", "--run-id", "r2").exit_code == 0
    with Store(project / "reports") as store:
        assert not store.run("r2").config.recorded("patterns")
