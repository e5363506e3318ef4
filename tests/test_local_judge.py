"""``--judge local`` (issue 20.3): the bundled model is a judge every project can name, in every command
that names a judge: a running ``evals serve-local`` when it serves at the judge's URL, else the bundled
server started inside the command for its duration; scaffolded in evals.yaml.

Without the real runtime, a fake OpenAI-compatible server listing the bundled model's name stands for a
running ``evals serve-local``. Tests marked ``integration`` start the real bundled model (CI runs them).
"""

import json
import socket
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import load_config
from evals.defaults import EXAMPLE_CONFIG
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, last_user_text, text_reply
from evals.localmodel import MODEL_ALIAS, model_fingerprint

integration = pytest.mark.integration

SUITE = {
    "suite": "care",
    "areas": {"records": {"sensitivity": "restricted"}},
    "items": [
        {"id": "rec-1", "area": "records", "question": "Ward of patient 7?", "reference": "B2"},
        {"id": "gen-1", "area": "general", "question": "Capital of France?", "reference": "Paris"},
        {"id": "gen-2", "area": "general", "question": "Capital of Peru?", "reference": "Lima"},
        {"id": "gen-3", "area": "general", "question": "What is 2 + 2?", "reference": "4"},
    ],
}
ANSWERS = {"Ward of patient 7?": "B2", "Capital of France?": "Paris", "Capital of Peru?": "Quito",
           "What is 2 + 2?": "4"}  # fmt: skip


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def dead_url() -> str:
    """A loopback URL nothing answers at."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def model():
    with FakeOpenAI(text_reply(lambda q: ANSWERS.get(q, "no idea")), model_id="qwen-test") as server:
        yield server


@pytest.fixture
def serve_local():
    """Stands for a running `evals serve-local`: an OpenAI-compatible server listing the bundled model."""
    with FakeOpenAI(grade_by_reference, model_id=MODEL_ALIAS) as server:
        yield server


def project(tmp_path: Path, model: FakeOpenAI, **judges: dict) -> Path:
    config = {
        "models": {"qwen": {"base_url": model.url, "model": "qwen", "max_retries": 0}},
        "judges": judges,
        "canary": {"enabled": False},  # the judge calls counted here are the run's own
    }
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False))
    return tmp_path


def run_row(root: Path, run_id: str) -> tuple[str, dict]:
    db = sqlite3.connect(root / "reports" / "evals.db")
    judge_model, config = db.execute(
        "SELECT judge_model, config_json FROM runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    return judge_model, json.loads(config)["judge"]


def test_the_scaffold_names_the_local_judge_and_never_makes_it_the_default(monkeypatch):
    config = load_config(EXAMPLE_CONFIG)
    local = config.judges["local"]
    assert (local.base_url, local.model) == ("http://127.0.0.1:8000/v1", MODEL_ALIAS)
    assert not local.is_external()  # loopback: restricted items may be graded by it
    assert config.judge(None)[0] == "offline"  # no key set
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert config.judge(None)[0] == "gpt"  # a real OPENAI_API_KEY is no key of the local judge


def test_a_project_without_a_local_judge_grades_on_a_running_serve_local(
    tmp_path, model, serve_local, monkeypatch
):
    monkeypatch.setattr("evals.cli.local_judge.LOCAL_URL", serve_local.url)  # where serve-local listens
    root = project(tmp_path, model)  # no judges at all in evals.yaml
    result = invoke("run", "--suite", "suite.yaml", "--judge", "local", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert f"{MODEL_ALIAS} answers at {serve_local.url}; grading there" in result.output
    judge_model, judge = run_row(root, "r1")
    assert judge_model == MODEL_ALIAS and judge["base_url"] == serve_local.url
    graded = [last_user_text(body) for body in serve_local.requests]
    # on loopback the local judge is in-house: it grades the restricted item too
    assert len(graded) == 4 and any("Ward of patient 7?" in text for text in graded)
    assert (root / "reports/runs/r1/scorecard.html").is_file()
    # every command that names a judge resolves it the same way
    rerun = invoke("judge", "rerun", "r1", "--judge", "local", "--repeats", "1", "--run-id", "r1-again")
    assert rerun.exit_code == 0, rerun.output
    assert serve_local.count() == 8 and run_row(root, "r1-again")[0] == MODEL_ALIAS
    probe = invoke("judge", "probe", "--judge", "local", "--format", "json")
    assert probe.exit_code == 0, probe.output
    assert json.loads(probe.stdout)["judge"].startswith("local") and serve_local.count() > 8


def test_a_configured_local_judge_grades_restricted_items_for_an_external_judge(
    tmp_path, model, serve_local, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with FakeAnthropic(grade_by_reference) as outside:
        root = project(
            tmp_path, model,
            claude={"provider": "anthropic", "base_url": outside.url, "model": "c", "max_retries": 0,
                    "external": True, "restricted_judge": "local"},
            local={"base_url": serve_local.url, "model": MODEL_ALIAS, "api_key_env": "EVALS_LOCAL_KEY"},
        )  # fmt: skip
        result = invoke("run", "--suite", "suite.yaml", "--judge", "claude", "--run-id", "r1")
        assert result.exit_code == 0, result.output
        assert outside.count() == 3 and serve_local.count() == 1
    assert "Ward of patient 7?" in last_user_text(serve_local.requests[0])
    assert run_row(root, "r1")[1]["restricted_judge"] == "local"


def test_without_the_bundled_model_local_is_one_line_saying_what_to_install(tmp_path, model, monkeypatch):
    monkeypatch.setattr("evals.cli.local_judge.LOCAL_URL", dead_url())
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])  # never installed
    root = project(tmp_path, model)
    result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "local"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "judge local: nothing serves smollm2-135m-instruct at http://127.0.0.1:" in line
    assert "evals model fetch" in line and model.count() == 0
    db = sqlite3.connect(root / "reports" / "evals.db")
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # nothing half done


def test_a_dry_run_with_the_local_judge_starts_nothing(tmp_path, model, monkeypatch):
    monkeypatch.setattr("evals.cli.local_judge.LOCAL_URL", dead_url())
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])  # could not start
    project(tmp_path, model)
    result = invoke("run", "--suite", "suite.yaml", "--judge", "local", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"judge local ({MODEL_ALIAS}): 4 calls" in result.output and "starting" not in result.output


@integration
def test_run_with_the_local_judge_starts_the_bundled_model_for_the_run_and_stops_it(
    tmp_path, model, monkeypatch
):
    monkeypatch.setattr("evals.cli.local_judge.LOCAL_URL", dead_url())  # no serve-local running
    root = project(tmp_path, model)
    result = invoke("run", "--suite", "suite.yaml", "--judge", "local", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert "starting the bundled SmolLM2-135M-Instruct in this process" in result.output
    assert "run: 1/4 done" in result.output  # the first verdict is shown as it comes
    db = sqlite3.connect(root / "reports" / "evals.db")
    judgments = db.execute("SELECT score, error FROM judgments").fetchall()
    assert len(judgments) == 4 and all((score is None) != (error is None) for score, error in judgments)
    judge_model, judge = run_row(root, "r1")
    assert judge_model == MODEL_ALIAS and judge["fingerprint"] == model_fingerprint()
    assert (root / "reports/runs/r1/scorecard.html").is_file()
    with pytest.raises(httpx.ConnectError):  # the server stopped with the command
        httpx.get(f"{judge['base_url']}/models", timeout=5)
