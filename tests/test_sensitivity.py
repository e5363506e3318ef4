"""Sensitivity levels and external endpoints: levels resolve item > area > suite > internal, which endpoints
are external, and restricted items never reach an external endpoint (the run is refused before it exists)."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Config, Endpoint
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, last_user_text, text_reply
from evals.perimeter import is_external
from evals.suites import find_problems, load_suite

SUITE = {
    "suite": "care",
    "sensitivity": "public",
    "areas": {"records": {"sensitivity": "restricted"}},
    "items": [
        {"id": "rec-1", "area": "records", "question": "Who is patient 7?", "reference": "Ann Lee"},
        {"id": "rec-2", "area": "records", "question": "Ward of patient 7?", "reference": "B2",
         "sensitivity": "internal"},
        {"id": "gen-1", "area": "general", "question": "Capital of France?", "reference": "Paris"},
        {"id": "gen-2", "area": "general", "question": "Capital of Peru?", "reference": "Lima",
         "sensitivity": "restricted"},
    ],
}  # fmt: skip


def _write(path, data) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_levels_resolve_item_then_area_then_suite_then_internal(tmp_path):
    levels = {item.id: item.sensitivity for item in load_suite(_write(tmp_path / "s.yaml", SUITE)).items}
    assert levels == {"rec-1": "restricted", "rec-2": "internal", "gen-1": "public", "gen-2": "restricted"}
    bare = {**SUITE, "items": SUITE["items"][2:3]}
    del bare["sensitivity"], bare["areas"]
    assert load_suite(_write(tmp_path / "b.yaml", bare)).items[0].sensitivity == "internal"


def test_a_folder_shares_its_yaml_levels_with_its_jsonl_rows(tmp_path):
    folder = tmp_path / "suite"
    folder.mkdir()
    _write(folder / "a.yaml", {**SUITE, "items": SUITE["items"][:1]})
    rows = [{"id": "j1", "area": "records", "question": "q?"}, {"id": "j2", "area": "x", "question": "q?"},
            {"id": "j3", "area": "x", "question": "q?", "sensitivity": "restricted"}]  # fmt: skip
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    levels = {item.id: item.sensitivity for item in load_suite(folder).items}
    assert levels == {"rec-1": "restricted", "j1": "restricted", "j2": "public", "j3": "restricted"}


def test_sensitivity_does_not_change_the_suite_hash(tmp_path):
    plain = {**SUITE}
    del plain["sensitivity"], plain["areas"]
    assert (
        load_suite(_write(tmp_path / "a.yaml", plain)).hash
        == load_suite(_write(tmp_path / "b.yaml", SUITE)).hash
    )


def test_bad_levels_and_unknown_areas_are_file_line_problems(tmp_path):
    text = (
        "suite: s\n"
        "sensitivity: secret\n"
        "areas:\n"
        "  recrods: {sensitivity: restricted}\n"
        "  general: {sensitivity: top}\n"
        "items:\n"
        "  - {id: a, area: general, question: q, sensitivity: private}\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    problems = [str(p) for p in find_problems(tmp_path / "s.yaml")]
    where = str(tmp_path / "s.yaml")
    assert problems == [
        f"{where}:2: sensitivity: expected one of public, internal, restricted, got 'secret'",
        f"{where}:4: areas.recrods: no item has area 'recrods'; areas: general",
        f"{where}:5: areas.general.sensitivity: expected one of public, internal, restricted, got 'top'",
        f"{where}:7: items[0].sensitivity: expected 'public', 'internal' or 'restricted', got a string ('private')",
    ]


def test_two_files_of_a_folder_disagreeing_on_a_level_is_a_problem(tmp_path):
    folder = tmp_path / "suite"
    folder.mkdir()
    _write(folder / "a.yaml", {**SUITE, "items": SUITE["items"][:1]})
    _write(folder / "b.yaml", {"sensitivity": "restricted", "items": SUITE["items"][2:3]})
    [problem] = find_problems(folder)
    assert problem.field == "sensitivity" and "'restricted' here but 'public'" in problem.message


def test_a_csv_row_with_a_bad_level_names_its_line(tmp_path):
    (tmp_path / "s.csv").write_text("id,area,question,sensitivity\na,b,q?,public\nc,d,q?,hush\n")
    [problem] = find_problems(tmp_path / "s.csv")
    assert (problem.line, problem.field) == (3, "sensitivity")


@pytest.mark.parametrize(
    ("url", "hosts", "explicit", "external"),
    [
        ("http://127.0.0.1:8000/v1", [], None, False),
        ("http://127.8.9.1/v1", [], None, False),
        ("http://[::1]:8000/v1", [], None, False),
        ("http://localhost:8000/v1", [], None, False),
        ("https://api.anthropic.com", [], None, True),
        (None, [], None, True),
        ("http://vllm.internal:8000/v1", ["vllm.internal"], None, False),
        ("http://gpu3.corp.example/v1", ["*.corp.example"], None, False),
        ("http://corp.example.evil.com/v1", ["*.corp.example"], None, True),
        ("http://10.0.0.5/v1", [], None, True),
        ("http://127.0.0.1:8000/v1", [], True, True),
        ("https://api.openai.com/v1", [], False, False),
    ],
)
def test_which_endpoints_are_external(url, hosts, explicit, external):
    assert is_external("openai", url, explicit, hosts) is external


def test_the_config_resolves_external_and_the_offline_judge_is_not():
    config = Config.model_validate(
        {
            "internal_hosts": ["*.corp.example"],
            "models": {"vllm": {"base_url": "http://gpu.corp.example/v1", "model": "q"}},
            "judges": {"claude": {"provider": "anthropic", "model": "c"}},
        }
    )
    assert config.models["vllm"].snapshot()["external"] is False
    assert config.judges["claude"].snapshot()["external"] is True
    assert config.judge("offline")[1].is_external() is False
    assert Endpoint(base_url="http://127.0.0.1:1/v1").is_external() is False


# -- a run with restricted items ------------------------------------------------------------------------


@pytest.fixture
def servers(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    answers = {"Who is patient 7?": "Ann Lee", "Ward of patient 7?": "B2", "Capital of France?": "Paris",
               "Capital of Peru?": "Lima"}  # fmt: skip
    with FakeOpenAI(text_reply(lambda q: answers[q])) as model, FakeAnthropic(grade_by_reference) as judge:
        _write(tmp_path / "suite.yaml", SUITE)
        yield model, judge


def _configure(tmp_path, model, judge, judge_external: bool) -> None:
    config = {
        "models": {"local": {"base_url": model.url, "model": "q", "max_retries": 0}},
        "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "c", "max_retries": 0,
                              "external": judge_external}},
    }  # fmt: skip
    _write(tmp_path / "evals.yaml", config)


def test_an_external_judge_is_refused_before_any_call_and_before_the_run_exists(tmp_path, servers):
    model, judge = servers
    _configure(tmp_path, model, judge, judge_external=True)
    result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert (
        "2 restricted items (areas general, records) would be sent to the external judge 'claude'" in message
    )
    assert "external: false" in message
    assert (model.count(), judge.count()) == (0, 0)
    db = tmp_path / "reports" / "evals.db"
    assert not db.exists() or sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_leaving_the_restricted_items_out_runs_and_sends_none_of_them(tmp_path, servers):
    model, judge = servers
    _configure(tmp_path, model, judge, judge_external=True)
    items = {**SUITE, "items": [SUITE["items"][1], SUITE["items"][2]]}  # rec-2 is internal by its own level
    _write(tmp_path / "suite.yaml", items)
    result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"])
    assert result.exit_code == 0, result.output
    sent = [last_user_text(body) for body in judge.requests]
    assert len(sent) == 2 and not any("patient 7?" in text and "Who" in text for text in sent)


def test_a_local_judge_grades_restricted_items(tmp_path, servers):
    model, judge = servers
    _configure(tmp_path, model, judge, judge_external=False)
    result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"])
    assert result.exit_code == 0, result.output
    assert judge.count() == 4
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    assert {row[0] for row in db.execute("SELECT score FROM judgments")} == {5}
    config = json.loads(db.execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["redaction"]["status"] == "not needed"
    assert config["judge"]["external"] is False
