"""An endpoint whose first calls all fail the same way stops the run early, resumably, with what to change."""

import asyncio
import json
import logging
import socket
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Endpoint
from evals.errors import ProviderError
from evals.fakes import FakeOpenAI, Fault, last_user_text, text_reply
from evals.outbound.providers import build_provider, retry
from evals.outbound.providers.health import FAIL_AFTER
from evals.records import CompletionRequest

JUDGES = Path(__file__).parent.parent / "judges"
N = 20
SUITE = [{"id": f"q{i:02}", "area": "math", "question": f"What is {i} + 1?", "reference": str(i + 1)}
         for i in range(N)]  # fmt: skip


def verdict(body):
    if body.get("response_format"):
        return {"rationale": "matches", "score": 4}
    return "matches the reference\nSCORE: 4"


@pytest.fixture
def model():
    with FakeOpenAI(text_reply(lambda q: q.split()[2])) as server:
        yield server


def write_project(tmp_path: Path, model: dict, judge: dict | None = None) -> None:
    config = {"models": {"local": {"model": "m", "max_retries": 0, "max_concurrency": 1, **model}},
              "judges_dir": str(JUDGES)}  # fmt: skip
    if judge is not None:
        config["judges"] = {"lj": {"model": "j", "max_retries": 0, "max_concurrency": 1, **judge}}
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def status(tmp_path: Path, run_id: str) -> str:
    with sqlite3.connect(tmp_path / "reports" / "evals.db") as db:
        return db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]


def scored(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "reports" / "evals.db") as db:
        return db.execute("SELECT count(*) FROM judgments WHERE score IS NOT NULL").fetchone()[0]


def test_a_judge_refusing_its_fixed_output_mode_stops_the_run_and_resume_continues(tmp_path, model, caplog):
    with FakeOpenAI(verdict, refuses=("json_schema",)) as judge:
        write_project(tmp_path, {"base_url": model.url}, {"base_url": judge.url, "structured": "json_schema"})

        result = invoke("run", "--suite", "suite.jsonl", "--judge", "lj", "--run-id", "r1")

        assert result.exit_code == 2, result.output
        assert judge.count() == FAIL_AFTER, "stopped after the first K calls, not one per item"
        message = result.output
        assert "the first 8 calls all failed with the same error: 500 Internal Server Error" in message
        assert "Input should be 'text' or 'json_object'" in message, "the server's reason is shown"
        assert "'structured: text'" in message and "evals run --resume r1" in message
        assert "Traceback" not in message
        assert status(tmp_path, "r1") == "interrupted"
        assert (tmp_path / "reports" / "runs" / "r1" / "results.jsonl").exists()
        shown = [r for r in caplog.records if "not retried" in r.getMessage()]
        assert len(shown) == 1, "the first failure is shown when it happens, once"

        # The fix: let the judge negotiate. The resumed run judges everything, asking no answer twice.
        write_project(tmp_path, {"base_url": model.url}, {"base_url": judge.url, "structured": "auto"})
        with sqlite3.connect(tmp_path / "reports" / "evals.db") as db:
            stored = {row[0] for row in db.execute("SELECT item_id FROM answers WHERE error IS NULL")}
        model.clear()
        result = invoke("run", "--resume", "r1")

    assert result.exit_code == 0, result.output
    assert status(tmp_path, "r1") == "finished" and scored(tmp_path) == N
    asked = {last_user_text(body) for body in model.requests}
    assert asked == {item["question"] for item in SUITE if item["id"] not in stored}, "stored answers kept"


def test_a_model_name_the_server_does_not_serve_stops_after_k_calls(tmp_path, model):
    model.inject(*[Fault("server_error", status=404)] * N)
    write_project(tmp_path, {"base_url": model.url})

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")

    assert result.exit_code == 2
    assert model.count() == FAIL_AFTER
    assert "404 Not Found" in result.output and "'model: m'" in result.output
    assert status(tmp_path, "r1") == "interrupted"


def test_fail_after_is_configurable_and_zero_never_stops(tmp_path, model):
    model.inject(*[Fault("server_error", status=404)] * N)
    write_project(tmp_path, {"base_url": model.url})

    result = invoke(
        "run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1", "--fail-after", "3"
    )
    assert result.exit_code == 2 and model.count() == 3

    model.clear()
    model.inject(*[Fault("server_error", status=404)] * N)
    result = invoke(
        "run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r2", "--fail-after", "0"
    )
    assert result.exit_code == 2 and model.count() == N  # every call made; "every one of N failed"
    assert "every one of 20 model calls failed" in result.output


def test_first_calls_failing_in_different_ways_or_a_success_do_not_stop_the_run(tmp_path, model):
    model.inject(*[Fault("server_error", status=404)] * (FAIL_AFTER - 1))  # then the server answers
    write_project(tmp_path, {"base_url": model.url})

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")

    assert result.exit_code == 0, result.output
    assert model.count() == N
    assert status(tmp_path, "r1") == "finished"


def test_failures_after_a_success_are_per_item_data(tmp_path, model):
    model.inject(Fault("slow", seconds=0), *[Fault("server_error", status=404)] * (N - 1))
    write_project(tmp_path, {"base_url": model.url})

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")

    assert result.exit_code == 0, result.output
    assert model.count() == N and status(tmp_path, "r1") == "finished"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_endpoint_retries_one_call_then_stops(tmp_path, caplog):
    # Default retries; backoff made fast by the conftest fixture (the real schedule is checked below).
    write_project(tmp_path, {"base_url": f"http://127.0.0.1:{free_port()}/v1", "max_retries": 4})

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")

    assert result.exit_code == 2
    assert "could not connect" in result.output and "is up and is the right base_url" in result.output
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 4, "only the first call is retried; the next ones give up at once"
    assert status(tmp_path, "r1") == "interrupted"


def test_credentials_in_a_dead_base_url_stay_out_of_the_message(tmp_path):
    url = f"http://user:hunter2-SECRET@127.0.0.1:{free_port()}/v1"
    write_project(tmp_path, {"base_url": url, "max_retries": 0})

    result = invoke(
        "run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1", "--fail-after", "2"
    )

    assert result.exit_code == 2 and "the first 2 calls all failed" in result.output
    assert "[credentials]@127.0.0.1" in result.output
    assert "SECRET" not in result.output


def test_a_dead_endpoint_ends_a_run_within_60_s_with_default_settings():
    initial, longest, jitter = retry.DEFAULT_BACKOFF
    retries = Endpoint().max_retries
    worst_wait = sum(min(initial * 2**i + jitter, longest) for i in range(retries))
    # The first wave of calls retries in parallel; every later call fails on its first, refused, attempt.
    assert worst_wait <= 60 - 5
    assert FAIL_AFTER == 8


def test_a_validation_500_is_refused_once_not_retried(tmp_path, model, caplog):
    caplog.set_level(logging.WARNING)
    with FakeOpenAI(verdict, refuses=("json_schema",)) as judge:
        write_project(tmp_path, {"base_url": model.url},
                      {"base_url": judge.url, "structured": "json_schema", "max_retries": 4})  # fmt: skip
        invoke("run", "--suite", "suite.jsonl", "--judge", "lj", "--run-id", "r1")
    assert judge.count() == FAIL_AFTER, "one request per call: a validation error is not transient"
    assert not [r for r in caplog.records if "retrying in" in r.getMessage()]


def _two_calls(server: FakeOpenAI, first: list[Fault], second: list[Fault]) -> tuple[bool, bool]:
    """Two calls in a row on one provider (max_retries 1): did each succeed?"""
    provider = build_provider("local", Endpoint(base_url=server.url, model="m", max_retries=1))
    request = CompletionRequest(messages=({"role": "user", "content": "hi"},))

    async def calls() -> tuple[bool, bool]:
        results = []
        try:
            for faults in (first, second):
                server.inject(*faults)
                try:
                    await provider.complete(request)
                    results.append(True)
                except ProviderError:
                    results.append(False)
        finally:
            await provider.aclose()
        return results[0], results[1]

    return asyncio.run(calls())


def test_after_a_call_failed_for_good_the_same_failure_is_not_retried_until_a_success(fake_openai):
    error = Fault("server_error", status=503)
    assert _two_calls(fake_openai, [error, error], [error]) == (False, False)
    assert fake_openai.count() == 2 + 1, "the second call gave up after its first attempt"


def test_rate_limits_are_always_waited_out(fake_openai):
    limited = Fault("rate_limit", retry_after=0)
    assert _two_calls(fake_openai, [limited, limited], [limited]) == (False, True)
    assert fake_openai.count() == 2 + 2
