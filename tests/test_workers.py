"""One run, many workers (issue 22 item 1): ``evals run --plan-only`` then ``evals worker RUN_ID`` processes
over one PostgreSQL store, as on several machines; killed ones lose their items to the others; the
endpoints' limits and ``--max-cost`` hold for the fleet; SQLite takes one worker at a time."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Endpoint
from evals.errors import StoreError
from evals.fakes import FakeOpenAI, grade_by_reference, text_reply
from evals.outbound.audit import WORKERS
from evals.outbound.audit_verify import verify
from evals.outbound.budget import OverBudget
from evals.outbound.fleet import FleetBudget, FleetLimits, Limits
from evals.records import Completion, CompletionRequest
from evals.store import Store, leases
from evals.store import audit as sql

KEY = "sk-worker-test"


def suite(n: int) -> list[dict[str, str]]:
    return [
        {"id": f"q-{i}", "area": ("math", "sums")[i % 2], "question": f"What is {i} + {i} here?",
         "reference": str(2 * i)}
        for i in range(n)
    ]  # fmt: skip


def write_project(
    root: Path, model: FakeOpenAI, items: int, judge: FakeOpenAI | None = None, **limits: object
):
    """evals.yaml with the fake model (and an LLM judge when given), and a suite of ``items`` items."""
    config: dict[str, object] = {
        "models": {"local": {"base_url": model.url, "model": "qwen", "max_retries": 0, **limits}},
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
    }
    if judge is not None:
        config["judges"] = {"fake": {"base_url": judge.url, "model": "judge", "max_retries": 0}}
    (root / "evals.yaml").write_text(yaml.safe_dump(config))
    (root / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in suite(items)))


def answer(question: str) -> str:
    return str(2 * int(question.split()[2]))


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def evals(root: Path, url: str, *args: str) -> subprocess.Popen[str]:
    """``evals`` in a process of its own, as on another machine: its own reports folder, the shared store."""
    env = {**os.environ, "EVALS_STORE": url, "OPENAI_API_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "evals", *args], cwd=root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def plan(root: Path, url: str, *args: str) -> str:
    done = evals(root, url, "run", "--suite", "suite.jsonl", "--plan-only", *args)
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    found = re.search(r"run id: (\S+)", stdout)
    assert found and "evals worker" in stdout, stdout
    return found.group(1)


def finish(workers: list[subprocess.Popen[str]]) -> list[tuple[str, str]]:
    outputs = [w.communicate(timeout=240) for w in workers]
    for w, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, stdout + stderr
    return outputs


def check_stored_once(store: Store, run_id: str, units: int) -> None:
    """Every unit answered and judged exactly once, all scored; the run finished with its aggregates."""
    m = store.run(run_id)
    assert m.status == "finished" and m.ended_at
    answers = store.db.execute(
        "SELECT count(*), count(DISTINCT (item_id, sample)) FROM answers WHERE run_id = %s", (run_id,)
    ).fetchone()
    verdicts = store.db.execute(
        "SELECT count(*), count(DISTINCT (item_id, sample)) FROM judgments WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert tuple(answers) == tuple(verdicts) == (units, units)
    rows = list(store.results(run_id))
    assert len(rows) == units and all(r.score == 5 and r.error is None for r in rows)
    assert store.aggregates([run_id])[run_id]
    assert leases.progress(store.backend, run_id) == leases.Progress(units, 0, 0, True)


@pytest.fixture
def fakes():
    with (
        FakeOpenAI(text_reply(answer), model_id="qwen-test", latency=0.1) as model,
        FakeOpenAI(grade_by_reference, model_id="judge-test", latency=0.02) as judge,
    ):
        yield model, judge


def test_workers_share_a_planned_run_store_every_answer_and_verdict_once_and_hold_max_concurrency(
    tmp_path, postgres_url, fakes
):
    model, judge = fakes
    write_project(tmp_path, model, 30, judge, max_concurrency=3)
    run_id = plan(tmp_path, postgres_url, "--judge", "fake", "--samples", "2")
    assert model.count() == judge.count() == 0  # planning calls nothing
    with Store(tmp_path, url=postgres_url) as store:
        assert store.run(run_id).status == "planned"
        # workers share the run's lock; a resume needs it alone, so it waits for them to stop
        with store.lock_run(run_id, shared=True), Store(tmp_path / "b", url=postgres_url) as other:
            with other.lock_run(run_id, shared=True):
                pass
            with pytest.raises(StoreError, match="being worked by another"), other.lock_run(run_id):
                pass
    # three machines, each willing to send 3 calls at once: the model's max_concurrency 3 is the fleet's
    workers = [
        evals(tmp_path, postgres_url, "worker", run_id, "--workers-concurrency", "3", "--reports", f"m-{n}")
        for n in range(3)
    ]
    outputs = finish(workers)
    assert model.max_in_flight <= 3 < 3 * 3
    assert model.count() == 60  # nothing asked twice
    done = [int(re.search(r"(\d+) items done here", err).group(1)) for _, err in outputs]  # type: ignore[union-attr]
    assert sum(done) == 60 and sum(1 for n in done if n) >= 2  # they shared it
    finishers = [out for out, err in outputs if "every item is done: this worker finished" in err]
    assert len(finishers) == 1 and "audit head:" in finishers[0]
    with Store(tmp_path, url=postgres_url) as store:
        check_stored_once(store, run_id, 60)
        fresh = store.db.execute(
            "SELECT count(*) FROM judgments WHERE run_id = %s AND cached = 0", (run_id,)
        ).fetchone()[0]
        assert judge.count() == fresh >= 30  # each fresh verdict one call (both samples answer alike: cached)
        assert verify(store).intact  # every worker's calls on its chain, the run's chain naming them
        named = [r for r in sql.records(store, run_id) if r.chain_id == run_id and r.kind == WORKERS]
        chains = {w["chain"] for r in named for w in r.details["workers"]}
        assert chains == set(sql.worker_chains(store, run_id)) and chains
        assert all(chain.startswith(f"{run_id}@") for chain in chains)


def test_a_worker_killed_mid_run_loses_its_items_to_the_others_and_nothing_is_stored_twice(
    tmp_path, postgres_url
):
    with FakeOpenAI(text_reply(answer), model_id="qwen-test", latency=0.2) as model:
        write_project(tmp_path, model, 40, max_concurrency=8)
        run_id = plan(tmp_path, postgres_url, "--judge", "offline")
        lease = ("--lease-seconds", "3", "--workers-concurrency", "2")
        doomed = evals(tmp_path, postgres_url, "worker", run_id, *lease, "--reports", "a")
        deadline = time.monotonic() + 120
        while model.count() < 6 and doomed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        doomed.send_signal(signal.SIGKILL)  # no cleanup at all: its leases must run out
        doomed.communicate()
        sent = model.count()
        with Store(tmp_path, url=postgres_url) as store:
            held = leases.progress(store.backend, run_id)
            stored = len(store.answers(run_id))
        assert held.leased > 0 and not held.finished
        workers = [evals(tmp_path, postgres_url, "worker", run_id, *lease, "--reports", r) for r in "ab"]
        finish(workers)
        # Only calls whose answers it had not stored when it died may be sent again (those in flight, and
        # those answered but still waiting for their audit records: a few more than its concurrency under load).
        assert 40 <= model.count() <= 40 + (sent - stored)
    with Store(tmp_path, url=postgres_url) as store:
        check_stored_once(store, run_id, 40)
        result = verify(store)
        assert result.intact, [str(p) for p in result.problems]


def test_a_sqlite_store_takes_one_worker_and_run_resume_finishes_a_worker_run(tmp_path):
    with FakeOpenAI(text_reply(answer), model_id="qwen-test", latency=0.1) as model:
        write_project(tmp_path, model, 30, max_concurrency=2)
        planned = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--plan-only")
        assert planned.exit_code == 0, planned.output
        assert "one worker at a time" in planned.output
        run_id = re.search(r"run id: (\S+)", planned.output).group(1)
        with Store(tmp_path / "reports") as store, store.lock_run(run_id):  # a first worker holds it
            second = invoke("worker", run_id)
        assert second.exit_code == 2
        lines = second.output.strip().splitlines()
        assert (
            "SQLite store" in lines[-1] and "one worker at a time" in lines[-1] and "PostgreSQL" in lines[-1]
        )
        assert model.count() == 0
        worker = evals(tmp_path, str(tmp_path / "reports" / "evals.db"), "worker", run_id)
        while model.count() < 5 and worker.poll() is None:
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)  # stopped: its items given back, the run interrupted
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 130, stderr
        with Store(tmp_path / "reports") as store:
            assert store.run(run_id).status == "interrupted"
            assert leases.progress(store.backend, run_id).leased == 0
        resumed = invoke("run", "--resume", run_id)
        assert resumed.exit_code == 0, resumed.output
        assert model.count() <= 30 + 2
    with Store(tmp_path / "reports") as store:
        assert store.run(run_id).status == "finished"
        rows = list(store.results(run_id))
        assert len(rows) == 30 and all(r.score == 5 for r in rows)
        assert len(store.answers(run_id)) == 30
        assert verify(store).intact


def test_requests_per_minute_holds_across_workers_and_in_one_process(postgres_url, tmp_path):
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", requests_per_minute=600)  # 10 a second
    request = CompletionRequest(messages=({"role": "user", "content": "hi"},))
    started: list[float] = []

    async def calls(limits: Limits, n: int) -> None:
        for _ in range(n):
            async with limits.call(endpoint, request):
                started.append(time.monotonic())

    async def fleet() -> None:
        with Store(tmp_path, url=postgres_url) as a, Store(tmp_path, url=postgres_url) as b:
            one, two = FleetLimits(a.backend, "w1", 30), FleetLimits(b.backend, "w2", 30)
            try:
                await asyncio.gather(calls(one, 15), calls(two, 15))
            finally:
                one.close()
                two.close()

    asyncio.run(fleet())
    # 30 calls at 10 a second, the first second's 10 at once: the last starts 2 s after the first at least
    assert max(started) - min(started) >= 1.9
    started.clear()
    asyncio.run(calls(Limits(), 15))  # one process on its own holds it too
    assert max(started) - min(started) >= 0.45


def test_max_cost_holds_across_workers(postgres_url, tmp_path):
    paid = Endpoint(
        base_url="http://127.0.0.1:9/v1", model="m", price_in_per_mtok=1e6, price_out_per_mtok=0, max_tokens=1
    )  # fmt: skip  ($1 a prompt token)
    turns = ({"role": "user", "content": "x" * 16},)  # 4 tokens: $4 a call at most
    with Store(tmp_path, url=postgres_url) as store:
        twin = store.backend.twin()  # another worker's connection
        one = FleetBudget(10.0, {"m": paid}, store.backend, "r1")
        two = FleetBudget(10.0, {"m": paid}, twin, "r1")
        held = [one.hold("m", turns, answering=True), two.hold("m", turns, answering=True)]
        with pytest.raises(OverBudget):  # $8 held by two workers: a third $4 would cross $10
            one.hold("m", turns, answering=True)
        two.settle(held[1], "m", 1, 0, failed=False)  # it cost $1
        assert two.hold("m", turns, answering=True) == 4.0  # $4 + $1 + $4 fits
        with pytest.raises(OverBudget):  # the refused worker asks no new question (it stops)
            one.hold("m", turns, answering=True)
        assert leases.budget_spent(store.backend, "r1") == pytest.approx(9.0)
        twin.close()


def test_evals_run_holds_an_endpoints_requests_per_minute(tmp_path):
    arrived: list[float] = []

    def responder(question: str) -> str:
        arrived.append(time.monotonic())
        return answer(question)

    with FakeOpenAI(text_reply(responder), model_id="qwen-test") as model:
        write_project(tmp_path, model, 25, max_concurrency=8, requests_per_minute=600)  # 10 a second
        result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline")
    assert result.exit_code == 0, result.output
    # the first second's 10 at once, then 10 a second: the 25th call comes 1.5 s after the first at least
    assert len(arrived) == 25 and max(arrived) - min(arrived) >= 1.4


def test_tokens_per_minute_counts_each_call_at_its_bound_then_at_what_the_server_reported():
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", tokens_per_minute=6000, max_tokens=10)
    request = CompletionRequest(messages=({"role": "user", "content": "x" * 36},))  # 9 + 10 tokens at most
    started: list[float] = []

    async def calls(n: int, reported: tuple[int, int] | None) -> float:
        limits, started[:] = Limits(), []
        for _ in range(n):
            async with limits.call(endpoint, request) as usage:
                started.append(time.monotonic())
                if reported is not None:
                    usage.completion = Completion(text="", tokens_in=reported[0], tokens_out=reported[1])
        return max(started) - min(started)

    # 100 tokens a second: 5 calls of 19 at once, then one each 0.19 s
    assert asyncio.run(calls(15, None)) >= 1.7
    # each call used 2: the bucket gets 17 back after each, and 15 calls pass at once
    assert asyncio.run(calls(15, (1, 1))) < 0.5
