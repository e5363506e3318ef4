"""Faults and careless use around a run: trickling servers, SIGTERM, two processes on one run, bad configs,
absurd sizes. Each case fails the way a user can act on (one line, exit 2 or 130) and leaves the store sound.
"""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Endpoint, JudgeEndpoint
from evals.errors import ProviderError, StoreError
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, text_reply
from evals.judge.reference import ReferenceJudge
from evals.outbound.providers import build_provider
from evals.plan import plan_run
from evals.records import Completion, CompletionRequest, Item, Verdict
from evals.runner import execute
from evals.store import Store
from evals.suites import load_suite

ROOT = Path(__file__).parent.parent.parent
JUDGES = ROOT / "judges"
N = 40
SUITE = [{"id": f"q{i:02}", "area": "math", "question": f"What is {i} + 1?", "reference": str(i + 1)}
         for i in range(N)]  # fmt: skip
QUESTION = CompletionRequest(messages=({"role": "user", "content": "What is 1 + 1?"},))


def write_project(tmp_path: Path, models: dict, judges: dict | None = None) -> None:
    config = {"models": models, "judges": judges or {}, "judges_dir": str(JUDGES)}
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def db_rows(tmp_path: Path, sql: str) -> list[tuple]:
    path = tmp_path / "reports" / "evals.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


def start_run(tmp_path: Path, run_id: str) -> subprocess.Popen:
    """``evals run`` in a real process, answering slowly enough to be caught mid-run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "evals", "run", "--suite", "suite.jsonl", "--run-id", run_id,
           "--judge", "offline"]  # fmt: skip
    with (tmp_path / f"{run_id}.log").open("wb") as log:
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_answers(tmp_path: Path, proc: subprocess.Popen, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (
            db_rows(tmp_path, "SELECT count(*) FROM answers")
            and db_rows(tmp_path, "SELECT count(*) FROM answers")[0][0] >= count
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"the run did not get going: {proc.poll()}")


@pytest.fixture
def slow_model():
    with FakeOpenAI(text_reply(lambda q: q.split()[2]), latency=0.05) as server:
        yield server


# -- timeouts ------------------------------------------------------------------------------------------


def test_timeout_bounds_a_whole_call_even_when_the_server_trickles_its_reply(fake_openai):
    # 5 ms a byte: every read gets data long before the 0.5 s read timeout, the whole body takes seconds.
    fake_openai.inject(Fault("trickle", seconds=0.005))
    provider = build_provider(
        "local", Endpoint(base_url=fake_openai.url, model="m", timeout_s=0.5, max_retries=0)
    )

    async def ask() -> Completion:
        try:
            return await provider.complete(QUESTION)
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(ask())
    assert str(caught.value) == "model 'local': no answer within 0.5 s (timeout) after 1 attempt"


def test_a_trickled_reply_within_the_timeout_is_read_whole(fake_openai):
    fake_openai.inject(Fault("trickle", seconds=0.0005))
    provider = build_provider("local", Endpoint(base_url=fake_openai.url, model="m", timeout_s=30))

    async def ask() -> Completion:
        try:
            return await provider.complete(QUESTION)
        finally:
            await provider.aclose()

    assert asyncio.run(ask()).text == "I don't know."


# -- SIGTERM and the run lock --------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_interrupts_a_run_like_ctrl_c_and_it_resumes(tmp_path, slow_model, signum):
    """SIGHUP too: the terminal or ssh session of a run started by hand was closed."""
    write_project(tmp_path, {"local": {"base_url": slow_model.url, "model": "m", "max_concurrency": 1}})
    proc = start_run(tmp_path, "t1")
    wait_for_answers(tmp_path, proc, 5)

    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 130
    output = (tmp_path / "t1.log").read_text()

    assert "evals run --resume t1" in output and "Traceback" not in output
    assert db_rows(tmp_path, "SELECT status FROM runs") == [("interrupted",)]
    exported = (tmp_path / "reports" / "runs" / "t1" / "results.jsonl").read_text().splitlines()
    answered = sum(1 for line in exported if json.loads(line)["answer"] is not None)
    assert answered == db_rows(tmp_path, "SELECT count(*) FROM answers WHERE error IS NULL")[0][0] >= 5

    result = invoke("run", "--resume", "t1")
    assert result.exit_code == 0, result.output
    assert db_rows(tmp_path, "SELECT status FROM runs") == [("finished",)]


def test_a_run_under_nohup_survives_the_hangup(tmp_path, slow_model):
    write_project(tmp_path, {"local": {"base_url": slow_model.url, "model": "m", "max_concurrency": 4}})
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does; the child inherits it
    try:
        proc = start_run(tmp_path, "t1")
    finally:
        signal.signal(signal.SIGHUP, previous)
    wait_for_answers(tmp_path, proc, 2)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=120) == 0
    assert db_rows(tmp_path, "SELECT status FROM runs") == [("finished",)]


def test_a_second_process_cannot_work_a_run_that_one_is_working(tmp_path, slow_model):
    write_project(tmp_path, {"local": {"base_url": slow_model.url, "model": "m", "max_concurrency": 1}})
    proc = start_run(tmp_path, "t1")
    try:
        wait_for_answers(tmp_path, proc, 2)

        second = invoke("run", "--resume", "t1")
        assert second.exit_code == 2
        last = second.output.strip().splitlines()[-1]
        assert last.startswith(f"error: run t1 is being worked by another evals process (pid {proc.pid})")

        again = invoke("run", "--suite", "suite.jsonl", "--run-id", "t1", "--judge", "offline")
        assert again.exit_code == 2 and "run id 't1' is taken" in again.output
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # The holder is gone: the OS released its lock, and the run can be resumed.
    result = invoke("run", "--resume", "t1")
    assert result.exit_code == 0, result.output
    assert db_rows(tmp_path, "SELECT count(*) FROM answers WHERE error IS NULL") == [(N,)]


def test_a_lock_dies_with_its_process(tmp_path):
    with Store(tmp_path / "reports") as store:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from evals.store import Store; "
             "s = Store(sys.argv[1]); held = s.lock_run('r'); held.__enter__(); print('held', flush=True); time.sleep(60)",
             str(tmp_path / "reports")],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
        with pytest.raises(Exception, match="being worked by another"), store.lock_run("r"):
            pass
        proc.kill()
        proc.wait()
        proc.stdout.close()
        with store.lock_run("r"):  # kill -9 left no stale lock
            pass


def test_a_lock_that_cannot_be_made_is_a_store_error(tmp_path):
    with Store(tmp_path / "reports") as store:
        (tmp_path / "reports" / "runs").mkdir()
        (tmp_path / "reports" / "runs" / "r").write_text("a file where the run's folder goes")
        with pytest.raises(StoreError, match="cannot create the run's lock file"), store.lock_run("r"):
            pass


# -- before a run exists -------------------------------------------------------------------------------


def test_a_model_endpoint_that_cannot_be_built_leaves_no_run(tmp_path, fake_anthropic):
    write_project(
        tmp_path, {"claude": {"provider": "anthropic", "base_url": fake_anthropic.url, "model": "c"}}
    )

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "x")

    assert result.exit_code == 2
    assert "ANTHROPIC_API_KEY" in result.output and "Traceback" not in result.output
    assert db_rows(tmp_path, "SELECT run_id, status FROM runs") == []
    assert fake_anthropic.count() == 0
    assert not (tmp_path / "reports" / "runs" / "x").exists(), "no folder either"


def test_resuming_an_unknown_run_makes_nothing(tmp_path, fake_openai):
    write_project(tmp_path, {"local": {"base_url": fake_openai.url, "model": "m"}})
    result = invoke("run", "--resume", "nope")
    assert result.exit_code == 2 and "no run 'nope'" in result.output
    assert not (tmp_path / "reports" / "runs" / "nope").exists()


def test_an_offline_model_is_a_config_error_before_the_run(tmp_path):
    write_project(tmp_path, {"local": {"provider": "offline", "model": "m"}})

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline")

    assert result.exit_code == 2 and "'local' has provider 'offline'" in result.output
    assert "Traceback" not in result.output
    assert db_rows(tmp_path, "SELECT run_id FROM runs") == []


def test_openai_itself_without_a_key_leaves_no_run(tmp_path):
    write_project(tmp_path, {"gpt": {"model": "gpt-4o"}})  # no base_url: api.openai.com

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline")

    assert result.exit_code == 2 and "OPENAI_API_KEY" in result.output
    assert db_rows(tmp_path, "SELECT run_id FROM runs") == []


def test_a_judge_that_cannot_be_built_leaves_no_run(tmp_path, fake_openai, fake_anthropic):
    write_project(tmp_path, {"local": {"base_url": fake_openai.url, "model": "m"}},
                  {"claude": {"provider": "anthropic", "base_url": fake_anthropic.url, "model": "c"}})  # fmt: skip

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude")

    assert result.exit_code == 2 and "ANTHROPIC_API_KEY" in result.output
    assert db_rows(tmp_path, "SELECT run_id FROM runs") == []


def test_reusing_a_run_id_is_a_one_line_error(tmp_path, fake_openai):
    write_project(tmp_path, {"local": {"base_url": fake_openai.url, "model": "m"}})
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1").exit_code == 0
    asked = fake_openai.count()

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")

    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: run id 'r1' is taken")
    assert "--resume r1" in result.output and "Traceback" not in result.output
    assert fake_openai.count() == asked
    assert db_rows(tmp_path, "SELECT status FROM runs") == [("finished",)]


# -- sizes ---------------------------------------------------------------------------------------------


def test_absurd_samples_are_refused_with_the_limit(tmp_path, fake_openai):
    write_project(tmp_path, {"local": {"base_url": fake_openai.url, "model": "m"}})
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--samples", "1000000")
    assert result.exit_code == 2 and "1<=x<=100" in result.output
    assert fake_openai.count() == 0


@pytest.mark.parametrize(("option", "value", "limit"), [("--port", "99999", "0<=x<=65535"), ("--port", "-1", "0<=x<=65535"),
                                                     ("--ctx-per-slot", "-5", "x>=64"), ("--parallel", "0", "1<=x<=64")])  # fmt: skip
def test_serve_local_refuses_a_port_or_context_that_cannot_be(option, value, limit):
    result = invoke("serve-local", option, value)
    assert result.exit_code == 2 and limit in result.output and "serving" not in result.output


@pytest.mark.parametrize("value", ["nan", "inf", "1e309"])
def test_a_max_cost_that_is_no_amount_is_refused(tmp_path, fake_openai, value):
    """NaN passes every range check and every later comparison: the limit would silently be none."""
    write_project(tmp_path, {"local": {"base_url": fake_openai.url, "model": "m", "price_in_per_mtok": 1,
                                       "price_out_per_mtok": 1}})  # fmt: skip
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--max-cost", value)
    assert result.exit_code == 2 and "--max-cost" in result.output and "finite" in result.output
    assert fake_openai.count() == 0 and db_rows(tmp_path, "SELECT run_id FROM runs") == []


@pytest.mark.parametrize("side", ["models", "judges"])
def test_absurd_concurrency_is_refused_with_the_limit(tmp_path, fake_openai, side):
    endpoint = {"base_url": fake_openai.url, "model": "m", "max_concurrency": 3000000}
    models = {"local": endpoint if side == "models" else {"base_url": fake_openai.url, "model": "m"}}
    write_project(tmp_path, models, {"j": endpoint} if side == "judges" else None)

    result = invoke("run", "--suite", "suite.jsonl", "--judge", "j" if side == "judges" else "offline")

    assert result.exit_code == 2
    assert "max_concurrency" in result.output and "1024" in result.output
    assert db_rows(tmp_path, "SELECT run_id FROM runs") == []


class _CountingJudge(ReferenceJudge):
    """The offline judge, claiming a huge concurrency, noting how many tasks exist while it grades."""

    max_concurrency = 100_000
    tasks = 0

    async def grade(self, item: Item, answer: str, *, truncated: bool = False) -> Verdict:
        type(self).tasks = max(type(self).tasks, len(asyncio.all_tasks()))
        return await super().grade(item, answer)


class _Echo:
    name = "echo"
    max_concurrency = 1
    endpoint = Endpoint(model="e")

    async def complete(self, request: CompletionRequest) -> Completion:
        return Completion(text="2")

    async def aclose(self) -> None:
        pass


def test_workers_never_exceed_the_work(tmp_path):
    (tmp_path / "three.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "area": "a", "question": f"{i} + 1?", "reference": "2"}) + "\n"
                for i in range(3))
    )  # fmt: skip
    suite = load_suite(str(tmp_path / "three.jsonl"))
    judge = _CountingJudge("offline", JUDGES)
    with Store(tmp_path / "reports") as store:
        manifest = plan_run(suite, "echo", Endpoint(model="e"), judge, JudgeEndpoint(provider="offline"))
        store.create_run(manifest, list(suite.items))
        outcome = asyncio.run(execute(store, manifest, _Echo(), judge))
    assert outcome.judged + outcome.reused == 3
    assert _CountingJudge.tasks <= 1 + 1 + 1 + 3, "main, feeder, one answerer and at most 3 judge workers"


# -- untrusted usage counts ------------------------------------------------------------------------------


class _BogusUsageOpenAI(FakeOpenAI):
    """Reports token counts no server means: negative, astronomically large, fractional, text."""

    def _reply(self, body, reply):
        data = super()._reply(body, reply)
        data["usage"] = {"prompt_tokens": -5, "completion_tokens": 1e300, "total_tokens": "many"}
        return data


class _BogusUsageAnthropic(FakeAnthropic):
    def _reply(self, body, reply):
        data = super()._reply(body, reply)
        data["usage"] = {"input_tokens": 2.5, "output_tokens": -(10**30)}
        return data


@pytest.mark.parametrize("server_class", [_BogusUsageOpenAI, _BogusUsageAnthropic])
def test_token_counts_a_server_makes_up_are_not_kept(server_class, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    kind = "openai" if server_class is _BogusUsageOpenAI else "anthropic"
    with server_class(text_reply(lambda _: "2")) as server:
        endpoint = Endpoint(provider=kind, base_url=server.url, model="m", max_retries=0)
        provider = build_provider("m", endpoint)

        async def ask():
            try:
                return await provider.complete(QUESTION)
            finally:
                await provider.aclose()

        completion = asyncio.run(ask())
    assert completion.text == "2" and (completion.tokens_in, completion.tokens_out) == (None, None)


def test_a_run_with_made_up_token_counts_still_reports(tmp_path):
    """A negative or 1e300 count once made every later ``evals report`` of the run a crash (and --max-cost
    counted negative spending)."""
    with _BogusUsageOpenAI(text_reply(lambda _: "2")) as server:
        write_project(tmp_path, {"local": {"base_url": server.url, "model": "m", "max_retries": 0}})
        assert invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1").exit_code == 0
    result = invoke("report", "r1")
    assert result.exit_code == 0, result.output


# -- replies of the wrong shape ---------------------------------------------------------------------------


class _Shaped(FakeOpenAI):
    """Replies whose fields hold what the API never sends there."""

    def __init__(self, change):
        super().__init__(text_reply(lambda _: "2"))
        self.change = change

    def _reply(self, body, reply):
        data = super()._reply(body, reply)
        self.change(data, data["choices"][0]["message"])
        return data


def _ask(server: FakeOpenAI) -> Completion:
    provider = build_provider("m", Endpoint(base_url=server.url, model="m", max_retries=0))

    async def ask():
        try:
            return await provider.complete(QUESTION)
        finally:
            await provider.aclose()

    return asyncio.run(ask())


@pytest.mark.parametrize(
    "change",
    [
        lambda data, message: message.update(content=["a", {"b": 1}]),
        lambda data, message: message.update(content={"text": "2"}),
        lambda data, message: message.update(content=42),
    ],
    ids=["list", "object", "number"],
)
def test_content_that_is_not_text_is_a_malformed_reply_not_a_crash(change):
    with _Shaped(change) as server, pytest.raises(ProviderError, match="malformed"):
        _ask(server)


def test_fields_of_the_wrong_type_are_dropped(monkeypatch):
    def change(data, message):
        data["model"] = 123
        message["reasoning_content"] = {"x": 1}
        data["choices"][0]["finish_reason"] = 7

    with _Shaped(change) as server:
        completion = _ask(server)
    assert (completion.text, completion.model_id, completion.finish_reason, completion.reasoning) == (
        "2", None, None, None
    )  # fmt: skip


def test_lone_surrogates_from_a_server_become_replacement_characters(tmp_path):
    """JSON may escape half a surrogate pair (``\\ud800``): no character, and no UTF-8 to store or print."""

    def change(data, message):
        message["content"] = "two \ud800"
        message["reasoning_content"] = "hm \udfff"
        data["model"] = "m\ud83d"

    with _Shaped(change) as server:
        completion = _ask(server)
        assert (completion.text, completion.reasoning, completion.model_id) == (
            "two \ufffd",
            "hm \ufffd",
            "m\ufffd",
        )
        write_project(tmp_path, {"local": {"base_url": server.url, "model": "m", "max_retries": 0}})
        result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert invoke("report", "r1").exit_code == 0


def test_a_lone_surrogate_in_an_error_body_does_not_reach_the_store_as_half_a_character():
    def fail(_body):
        raise ValueError("bad \ud800 thing")

    with FakeOpenAI(fail) as server, pytest.raises(ProviderError) as caught:
        _ask(server)
    assert "bad \ufffd thing" in str(caught.value)
    str(caught.value).encode("utf-8")  # what the store and the terminal need
