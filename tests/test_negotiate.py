"""`structured: auto` negotiates the judge's output mode with servers that refuse json_schema (or json_object)."""

import json
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner
from openai import APIStatusError, BadRequestError, InternalServerError, UnprocessableEntityError

from evals.cli import main
from evals.fakes import FakeOpenAI, last_user_text, text_reply
from evals.outbound.providers.openai_compat import ERRORS
from evals.outbound.providers.retry import is_transient, rejects_format
from evals.plan import structured_mode
from evals.store import Store

JUDGES = Path(__file__).parent.parent / "judges"
SUITE = [
    {"id": f"q{i}", "area": "math", "question": f"What is {i} + 1?", "reference": str(i + 1)}
    for i in range(6)
]


def verdict(body):
    """A judge that follows whatever protocol it is asked for: JSON when response_format is set, else SCORE."""
    if body.get("response_format"):
        return {"rationale": "matches", "score": 4}
    return "matches the reference\nSCORE: 4"


def formats(server: FakeOpenAI) -> list[str]:
    """The response_format type of each request the judge server received (``text`` when none)."""
    return [(body.get("response_format") or {}).get("type", "text") for body in server.requests]


@pytest.fixture
def model():
    with FakeOpenAI(text_reply(lambda q: q.split()[2])) as server:
        yield server


def project(tmp_path: Path, model: FakeOpenAI, judge: FakeOpenAI, **judge_fields) -> Path:
    config = {
        "models": {"local": {"base_url": model.url, "model": "m", "max_retries": 0}},
        "judges": {"local-judge": {"base_url": judge.url, "model": "j", "max_retries": 0, "max_concurrency": 1,
                                   **judge_fields}},
        "judges_dir": str(JUDGES),
        "canary": {"enabled": False},  # the judge calls counted here are the run's own (see test_canary.py)
    }  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(main, ["run", "--suite", "suite.jsonl", "--judge", "local-judge", *args])


def scores(tmp_path: Path) -> list[int | None]:
    with sqlite3.connect(tmp_path / "reports" / "evals.db") as db:
        return [row[0] for row in db.execute("SELECT score FROM judgments ORDER BY item_id")]


def mode_of(tmp_path: Path, run_id: str) -> str | None:
    with Store(tmp_path / "reports") as store:
        return structured_mode(store.run(run_id))


@pytest.mark.parametrize("refusal", ["llama-cpp-python", "400", "422"])
def test_a_server_refusing_json_schema_gets_json_object_once_per_run(tmp_path, model, refusal, caplog):
    with FakeOpenAI(verdict, refuses=("json_schema",), refusal=refusal) as judge:
        project(tmp_path, model, judge)
        result = run("--run-id", "r1")

    assert result.exit_code == 0, result.output
    assert scores(tmp_path) == [4] * len(SUITE)
    assert formats(judge) == ["json_schema"] + ["json_object"] * len(SUITE), "asked once, then remembered"
    # json_object only promises JSON: the schema travels in the prompt
    assert '"enum": [1, 2, 3, 4, 5]' in judge.requests[1]["messages"][0]["content"]
    assert mode_of(tmp_path, "r1") == "json_object"
    said = [r.getMessage() for r in caplog.records if "refuses json_schema" in r.getMessage()]
    assert len(said) == 1 and "using json_object for the rest of this run" in said[0]


def test_a_server_refusing_json_object_too_gets_the_text_protocol(tmp_path, model, caplog):
    with FakeOpenAI(verdict, refuses=("json_schema", "json_object")) as judge:
        project(tmp_path, model, judge)
        result = run("--run-id", "r1")

    assert result.exit_code == 0, result.output
    assert scores(tmp_path) == [4] * len(SUITE)
    assert formats(judge) == ["json_schema", "json_object"] + ["text"] * len(SUITE)
    assert "SCORE: N" in last_user_text(judge.requests[-1])
    assert mode_of(tmp_path, "r1") == "text"
    assert len([r for r in caplog.records if "the server refuses" in r.getMessage()]) == 2


def test_concurrent_refusals_step_down_once(tmp_path, model, caplog):
    with FakeOpenAI(verdict, refuses=("json_schema",), latency=0.05) as judge:
        project(tmp_path, model, judge, max_concurrency=4)
        result = run("--run-id", "r1")

    assert result.exit_code == 0, result.output
    assert scores(tmp_path) == [4] * len(SUITE)
    assert formats(judge).count("json_schema") <= 4, "at most the calls already in flight were refused"
    assert len([r for r in caplog.records if "the server refuses" in r.getMessage()]) == 1


def test_a_resumed_run_keeps_the_mode_it_settled_on(tmp_path, model):
    with FakeOpenAI(verdict, refuses=("json_schema",)) as judge:
        project(tmp_path, model, judge)
        assert run("--run-id", "r1").exit_code == 0
        with sqlite3.connect(tmp_path / "reports" / "evals.db") as db:  # as if killed before two verdicts
            db.execute("DELETE FROM judgments WHERE item_id IN ('q1', 'q2')")
        judge.clear()

        result = CliRunner().invoke(main, ["run", "--resume", "r1"])

    assert result.exit_code == 0, result.output
    assert formats(judge) == ["json_object", "json_object"], "no second probe of json_schema"
    assert scores(tmp_path) == [4] * len(SUITE)


def test_a_server_that_accepts_json_schema_keeps_it(tmp_path, model):
    with FakeOpenAI(verdict) as judge:
        project(tmp_path, model, judge)
        assert run("--run-id", "r1").exit_code == 0

    assert set(formats(judge)) == {"json_schema"}
    assert mode_of(tmp_path, "r1") == "json_schema"


@pytest.mark.parametrize("mode", ["json_object", "text"])
def test_an_explicit_mode_is_used_from_the_start(tmp_path, model, mode):
    with FakeOpenAI(verdict) as judge:
        project(tmp_path, model, judge, structured=mode)
        result = run("--run-id", "r1")

    assert result.exit_code == 0, result.output
    assert set(formats(judge)) == {mode}
    assert scores(tmp_path) == [4] * len(SUITE)


def test_refusals_are_classified_from_status_and_body():
    def error(cls: type[APIStatusError], status: int, body: object) -> APIStatusError:
        request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
        return cls("refused", response=httpx.Response(status, request=request), body=body)

    llama = {"error": {"message": "1 validation error ... Input should be 'text' or 'json_object'"}}
    refused = [
        error(InternalServerError, 500, llama),
        error(BadRequestError, 400, {"error": {"message": "response_format json_schema is not supported"}}),
        error(
            UnprocessableEntityError, 422, {"detail": [{"loc": ["body", "response_format"], "msg": "bad"}]}
        ),
    ]
    for exc in refused:
        assert rejects_format(exc, ERRORS) and not is_transient(exc, ERRORS)
    outage = error(InternalServerError, 500, {"error": {"message": "CUDA out of memory"}})
    assert is_transient(outage, ERRORS) and not rejects_format(outage, ERRORS)
    too_long = error(BadRequestError, 400, {"error": {"message": "maximum context length is 4096 tokens"}})
    assert not rejects_format(too_long, ERRORS), "not every 400 is about the output format"


def test_the_step_down_is_logged_without_a_key(tmp_path, model, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-SECRET-777")
    with FakeOpenAI(verdict, refuses=("json_schema",)) as judge:
        project(tmp_path, model, judge, api_key_env="JUDGE_KEY")
        assert run("--run-id", "r1").exit_code == 0
    assert "SECRET" not in caplog.text


def test_the_scorecard_says_which_output_the_judge_used(tmp_path, model):
    with FakeOpenAI(verdict, refuses=("json_schema",)) as judge:
        project(tmp_path, model, judge)
        assert run("--run-id", "r1").exit_code == 0
    result = CliRunner().invoke(main, ["report", "r1"])
    assert result.exit_code == 0, result.output

    folder = tmp_path / "reports" / "runs" / "r1"
    assert json.loads((folder / "scorecard.json").read_text())["run"]["judge_output"] == "json_object"
    assert "judge output: json\\_object" in (folder / "scorecard.md").read_text()  # Markdown-escaped
    assert 'id="judge-output">judge output <b>json_object</b>' in (folder / "scorecard.html").read_text()


def test_a_resumed_run_records_a_mode_changed_in_the_config(tmp_path, model):
    with FakeOpenAI(verdict, refuses=("json_schema",)) as judge:
        project(tmp_path, model, judge)
        assert run("--run-id", "r1").exit_code == 0
        with sqlite3.connect(tmp_path / "reports" / "evals.db") as db:
            db.execute("DELETE FROM judgments WHERE item_id = 'q1'")
        project(tmp_path, model, judge, structured="text")
        judge.clear()

        assert CliRunner().invoke(main, ["run", "--resume", "r1"]).exit_code == 0

    assert formats(judge) == ["text"]
    assert mode_of(tmp_path, "r1") == "text"
