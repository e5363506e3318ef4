"""`evals suite references` (a model fills missing references, marked as such) and `evals export weak`
(training data that never takes a closed frontier model's text as its target)."""

import json

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, grade_by_reference, text_reply
from evals.suites import load_suite

QUESTIONS = [
    {"id": "q1", "area": "geo", "question": "Capital of France?"},
    {"id": "q2", "area": "geo", "question": "Capital of Peru?", "reference": "Lima"},
    {"id": "q3", "area": "math", "question": "2 + 2?"},
    {"id": "q4", "area": "vault", "question": "Patient 7 dose?", "sensitivity": "restricted"},
]
FRONTIER = {"Capital of France?": "Paris", "2 + 2?": "4", "Patient 7 dose?": "10 mg"}
LOCAL = {
    "Capital of France?": "Lyon",
    "Capital of Peru?": "Lima",
    "2 + 2?": "5",
    "Patient 7 dose?": "no idea",
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with (
        FakeAnthropic(text_reply(lambda q: FRONTIER.get(q, "?")), model_id="claude-x-1") as frontier,
        FakeOpenAI(text_reply(lambda q: LOCAL.get(q, "?")), model_id="qwen-1") as local,
        FakeOpenAI(text_reply(lambda q: FRONTIER.get(q, "?")), model_id="qwen-teacher") as teacher,
        FakeAnthropic(grade_by_reference, model_id="judge-1") as judge,
    ):
        config = {
            "models": {
                "local": {"base_url": local.url, "model": "qwen"},
                "claude": {"provider": "anthropic", "base_url": frontier.url, "model": "claude-x", "max_retries": 0,
                           "external": True},
                "teacher": {"base_url": teacher.url, "model": "qwen-72b", "open_weights": True},
            },
            "judges": {"judge": {"provider": "anthropic", "base_url": judge.url, "model": "judge"}},
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
        monkeypatch.chdir(tmp_path)
        yield tmp_path, frontier


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_missing_references_are_filled_and_marked_and_restricted_items_stay_home(project):
    folder, frontier = project
    result = invoke("suite", "references", "questions.jsonl", "--model", "claude", "--out", "filled.jsonl")
    assert result.exit_code == 0, result.output
    assert (
        "2 reference(s) written by claude, 1 kept" in result.output
        and "1 restricted left out" in result.output
    )
    suite = {i.id: i for i in load_suite(folder / "filled.jsonl").items}  # a suite validate accepts
    assert suite["q1"].reference == "Paris" and suite["q3"].reference == "4"
    assert suite["q1"].metadata["reference_source"]["model_id"] == "claude-x-1"
    assert suite["q1"].metadata["reference_source"]["open_weights"] is False
    assert suite["q2"].reference == "Lima" and "reference_source" not in suite["q2"].metadata
    assert suite["q4"].reference is None
    assert not any("Patient" in json.dumps(body) for body in frontier.requests)
    assert invoke("suite", "validate", "filled.jsonl").exit_code == 0


def test_a_reference_is_capped_at_the_models_max_answer_chars(project):
    folder, frontier = project
    frontier.responder = text_reply(lambda q: "word " * 10_000)  # 50,000 characters
    config = yaml.safe_load((folder / "evals.yaml").read_text())
    config["models"]["claude"]["max_answer_chars"] = 300
    (folder / "evals.yaml").write_text(yaml.safe_dump(config))
    result = invoke("suite", "references", "questions.jsonl", "--model", "claude", "--out", "filled.jsonl")
    assert result.exit_code == 0, result.output
    written = [i for i in load_suite(folder / "filled.jsonl").items if "reference_source" in i.metadata]
    assert written and all(len(i.reference or "") <= 300 for i in written)


def test_an_interrupted_fill_resumes_without_asking_again(project):
    _, frontier = project
    frontier.inject(Fault("server_error"))  # max_retries 0: one item fails
    first = invoke("suite", "references", "questions.jsonl", "--model", "claude", "--out", "filled.jsonl")
    assert first.exit_code == 0 and "1 failed" in first.output
    asked = frontier.count()
    again = invoke("suite", "references", "questions.jsonl", "--model", "claude", "--out", "filled.jsonl")
    assert "1 reference(s) written by claude, 2 kept" in again.output
    assert frontier.count() == asked + 1


def weak_export(*extra):
    assert (
        invoke(
            "run", "--suite", "filled.jsonl", "--model", "local", "--judge", "judge", "--run-id", "r1"
        ).exit_code
        == 0
    )
    return CliRunner().invoke(main, ["export", "weak", "r1", "--out", "weak.jsonl", *extra])


def test_a_closed_frontier_models_reference_is_refused_as_a_training_target(project):
    folder, _ = project
    invoke("suite", "references", "questions.jsonl", "--model", "claude", "--out", "filled.jsonl")
    result = weak_export()
    assert result.exit_code == 2
    assert "frontier model terms" in result.output and "open_weights" in result.output
    assert not (folder / "weak.jsonl").exists()
    # Leaving those items out exports the rest: q2's reference was written by people.
    skipped = CliRunner().invoke(
        main, ["export", "weak", "r1", "--out", "weak.jsonl", "--skip-model-references"]
    )
    assert skipped.exit_code == 0, skipped.output
    lines = [json.loads(line) for line in (folder / "weak.jsonl").read_text().splitlines()]
    assert lines == []  # q2 was answered right: nothing weak written by people remains


def test_an_open_weights_teachers_references_make_sft_and_preference_records(project):
    folder, _ = project
    invoke("suite", "references", "questions.jsonl", "--model", "teacher", "--out", "filled.jsonl")
    assert weak_export("--format", "preference").exit_code == 0
    records = {
        r["metadata"]["item_id"]: r for r in map(json.loads, (folder / "weak.jsonl").read_text().splitlines())
    }
    # the answers the judge scored below 4; the teacher is inside the perimeter, so restricted q4 got one too
    assert set(records) == {"q1", "q3", "q4"}
    assert records["q1"]["chosen"] == "Paris" and records["q1"]["rejected"] == "Lyon"
    assert records["q1"]["metadata"]["judge_rationale"] == "wrong"
    assert CliRunner().invoke(main, ["export", "weak", "r1", "--out", "sft.jsonl"]).exit_code == 0
    sft = {
        r["metadata"]["item_id"]: r for r in map(json.loads, (folder / "sft.jsonl").read_text().splitlines())
    }
    assert sft["q1"]["messages"] == [
        {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"},
    ]  # fmt: skip
