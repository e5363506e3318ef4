"""A judge entry may name an in-house judge for restricted text (``restricted_judge``, issue 18 item 2): a
run with an external judge grades its restricted items with the in-house one in the same run, the
external judge never reads them, and the scorecard says which items were judged in-house.

End to end through the CLI and the real SDKs: the external judge is a fake Anthropic server marked
``external: true``, the in-house judge a fake OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, grade_by_reference, last_user_text, text_reply

SUITE = {
    "suite": "care",
    "areas": {"records": {"sensitivity": "restricted"}},
    "items": [
        {"id": "rec-1", "area": "records", "question": "Who is patient 7?", "reference": "Ann Lee"},
        {"id": "rec-2", "area": "records", "question": "Ward of patient 7?", "reference": "B2"},
        {"id": "gen-1", "area": "general", "question": "Capital of France?", "reference": "Paris"},
        {"id": "gen-2", "area": "general", "question": "Capital of Peru?", "reference": "Lima"},
    ],
}
ANSWERS = {"Who is patient 7?": "Ann Lee", "Ward of patient 7?": "B2", "Capital of France?": "Paris",
           "Capital of Peru?": "Lima"}  # fmt: skip
RESTRICTED = ("Who is patient 7?", "Ward of patient 7?", "Ann Lee")


@pytest.fixture
def servers(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with (
        FakeOpenAI(text_reply(lambda q: ANSWERS[q])) as model,
        FakeAnthropic(grade_by_reference) as outside,
        FakeOpenAI(grade_by_reference) as inside,
    ):
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False))
        yield model, outside, inside


def configure(tmp_path: Path, model, outside, inside, **claude) -> None:
    config = {
        "models": {"local": {"base_url": model.url, "model": "q", "max_retries": 0}},
        "judges": {
            "claude": {"provider": "anthropic", "base_url": outside.url, "model": "c", "max_retries": 0,
                       "external": True, **claude},
            "house": {"provider": "openai", "base_url": inside.url, "model": "qwen-judge", "max_retries": 0},
        },
    }  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run(*args: str):
    return CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude", *args])


def test_restricted_items_are_judged_in_house_in_the_same_run(tmp_path, servers):
    model, outside, inside = servers
    configure(tmp_path, model, outside, inside, restricted_judge="house")
    result = run("--run-id", "r1")
    assert result.exit_code == 0, result.output
    sent_out = " ".join(json.dumps(body) for body in outside.requests)
    assert outside.count() == 2 and not any(text in sent_out for text in RESTRICTED)
    read_inside = [last_user_text(body) for body in inside.requests]  # the restricted items, and only them
    assert inside.count() == 2 and all("patient 7?" in text for text in read_inside)
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    judged = dict(db.execute("SELECT item_id, judge FROM judgments").fetchall())
    assert {i for i, j in judged.items() if j.startswith("house ")} == {"rec-1", "rec-2"}
    assert {i for i, j in judged.items() if j.startswith("claude ")} == {"gen-1", "gen-2"}
    assert all(score == 5 for (score,) in db.execute("SELECT score FROM judgments"))
    config = json.loads(db.execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["judge"]["restricted_judge"] == "house"
    assert config["judge"]["inhouse"]["model"] == "qwen-judge"

    assert CliRunner().invoke(main, ["report", "r1"]).exit_code == 0
    folder = tmp_path / "reports" / "runs" / "r1"
    card = json.loads((folder / "scorecard.json").read_text())
    assert card["inhouse"] == {"judge": "house", "areas": {"records": 2}, "items": ["rec-1", "rec-2"]}
    assert 'id="inhouse"' in (folder / "scorecard.html").read_text()
    assert "Judged in-house" in (folder / "scorecard.md").read_text()


def test_without_an_in_house_judge_the_run_is_refused_and_the_message_names_the_option(tmp_path, servers):
    model, outside, inside = servers
    configure(tmp_path, model, outside, inside)
    result = run()
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "would be sent to the external judge 'claude'" in message and "restricted_judge" in message
    assert (model.count(), outside.count(), inside.count()) == (0, 0, 0)


@pytest.mark.parametrize(
    ("inhouse", "said"),
    [
        ("nobody", "'nobody' is not another configured single judge"),
        ("claude", "'claude' is not another configured single judge"),
        ("outside", "'outside' is an external endpoint; restricted text stays in-house"),
    ],
)
def test_a_restricted_judge_must_be_another_judge_inside_the_perimeter(tmp_path, servers, inhouse, said):
    model, outside, inside = servers
    configure(tmp_path, model, outside, inside, restricted_judge=inhouse)
    config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
    config["judges"]["outside"] = {"provider": "anthropic", "model": "c2"}  # the vendor's cloud: external
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run()
    assert result.exit_code == 2
    assert "judges.claude.restricted_judge" in result.output and said in " ".join(result.output.split())
    assert (model.count(), outside.count(), inside.count()) == (0, 0, 0)


def test_a_resume_keeps_the_in_house_judge_it_started_with(tmp_path, servers):
    model, outside, inside = servers
    configure(tmp_path, model, outside, inside, restricted_judge="house")
    outside.inject(*[Fault("server_error")] * 8)
    first = run("--run-id", "r1", "--fail-after", "2")
    assert first.exit_code == 2, first.output  # the external judge failed: stopped, resumable
    configure(tmp_path, model, outside, inside)  # restricted_judge removed since
    refused = CliRunner().invoke(main, ["run", "--resume", "r1"])
    assert refused.exit_code == 2 and "restricted_judge" in refused.output
    sent_before = " ".join(json.dumps(body) for body in outside.requests)
    outside.clear()  # the external judge is back
    configure(tmp_path, model, outside, inside, restricted_judge="house")
    resumed = CliRunner().invoke(main, ["run", "--resume", "r1"])
    assert resumed.exit_code == 0, resumed.output
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    scored = {i for (i,) in db.execute("SELECT item_id FROM judgments WHERE score IS NOT NULL")}
    assert scored == {"rec-1", "rec-2", "gen-1", "gen-2"}
    sent_out = sent_before + " ".join(json.dumps(body) for body in outside.requests)
    assert not any(text in sent_out for text in RESTRICTED)


def _judged_by(tmp_path: Path, run_id: str) -> dict[str, set[str]]:
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    query = "SELECT item_id, judge FROM judgments WHERE run_id = ? AND score IS NOT NULL"
    rows = db.execute(query, (run_id,)).fetchall()
    judged: dict[str, set[str]] = {}
    for item, judge in rows:
        judged.setdefault(judge.split()[0], set()).add(item)
    return judged


@pytest.mark.parametrize("variant", ["batch", "worker", "samples", "resume-after-marking"])
def test_restricted_items_go_to_the_in_house_judge_on_every_way_a_run_is_made(tmp_path, servers, variant):
    model, outside, inside = servers
    claude: dict[str, object] = {"restricted_judge": "house"}
    if variant == "batch":
        claude.update(judging="batch", batch_poll_s=0.01)
    configure(tmp_path, model, outside, inside, **claude)
    if variant == "worker":
        planned = run("--run-id", "r1", "--plan-only")
        assert planned.exit_code == 0, planned.output
        result = CliRunner().invoke(main, ["worker", "r1"])
    elif variant == "samples":
        result = run("--run-id", "r1", "--samples", "2")
    elif variant == "resume-after-marking":
        # the records area was internal when the run started; the suite restricts it before the resume
        open_suite = {**SUITE, "areas": {}}
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(open_suite, sort_keys=False))
        outside.inject(*[Fault("server_error")] * 8)
        first = run("--run-id", "r1", "--fail-after", "2")
        assert first.exit_code == 2, first.output
        outside.clear()
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False))
        result = CliRunner().invoke(main, ["run", "--resume", "r1"])
    else:
        result = run("--run-id", "r1")
    assert result.exit_code == 0, result.output
    sent_out = " ".join(json.dumps(body) for body in outside.requests)
    assert not any(text in sent_out for text in RESTRICTED), variant
    judged = _judged_by(tmp_path, "r1")
    assert judged.get("house") == {"rec-1", "rec-2"} and judged.get("claude") == {"gen-1", "gen-2"}, judged
