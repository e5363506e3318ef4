"""One PostgreSQL store shared by several machines (simulated: processes with their own reports folders)."""

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

from evals.errors import StoreError
from evals.fakes import FakeOpenAI, text_reply
from evals.judge.reference import ReferenceJudge
from evals.plan import judge_fingerprint
from evals.store import Store

SUITE = [
    {"id": f"{area}-{n}", "area": area, "question": f"What is {n} + {n} in {area}?", "reference": str(2 * n)}
    for area in ("math", "sums")
    for n in range(1, 6)
]


@pytest.fixture
def project(tmp_path):
    """A project whose model is a fake server answering every question right; the offline judge grades."""
    with FakeOpenAI(text_reply(lambda q: str(2 * int(q.split()[2]))), model_id="qwen-test") as model:
        config = {
            "models": {"qwen-7b": {"base_url": model.url, "model": "qwen", "max_concurrency": 4, "max_retries": 0}},
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
        yield tmp_path


def evals(project: Path, url: str, *args: str) -> subprocess.Popen:
    """``evals`` in its own process, as on another machine: its own reports folder, the shared store."""
    env = {**os.environ, "EVALS_STORE": url}
    return subprocess.Popen(
        [sys.executable, "-m", "evals", *args], cwd=project, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def evals_done(project: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """``evals`` in its own process, waited for."""
    env = {**os.environ, "EVALS_STORE": url}
    return subprocess.run(
        [sys.executable, "-m", "evals", *args],
        cwd=project,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_several_processes_writing_one_store_lose_and_duplicate_nothing(project, postgres_url):
    workers = [
        evals(project, postgres_url, "run", "--suite", "suite.jsonl", "--samples", "3", "--judge", "offline",
              "--reports", f"machine-{n}")
        for n in range(4)
    ]  # fmt: skip
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    with Store(project, url=postgres_url) as store:
        runs = store.runs()
        assert len(runs) == 4 and len({m.run_id for m in runs}) == 4
        for m in runs:
            # made by new_run_id: the model's name and a random part, so machines never collide
            assert re.fullmatch(r"\d{8}T\d{6}Z-qwen-7b-[0-9a-f]{8}", m.run_id)
            assert m.status == "finished"
            rows = list(store.results(m.run_id))
            assert len(rows) == len(SUITE) * 3
            assert all(r.score == 5 and r.error is None for r in rows)
            assert len(store.answers(m.run_id)) == len(store.judgments(m.run_id)) == len(SUITE) * 3
            # the offline judge's fixed identity and the rubric stand behind every verdict
            assert {(j.judge_fingerprint, j.rubric_hash) for j in store.judgments(m.run_id).values()} == {
                (judge_fingerprint(ReferenceJudge("offline", project / "judges")), m.rubric_hash)
            }
        total = store.db.execute("SELECT count(*), count(DISTINCT (run_id, item_id, sample)) FROM answers")
        assert total.fetchone() == (4 * len(SUITE) * 3, 4 * len(SUITE) * 3)
    for n in range(4):  # each machine has the exports of its own run
        assert len(list((project / f"machine-{n}" / "runs").glob("*/results.jsonl"))) == 1


def test_a_run_worked_on_one_machine_cannot_be_resumed_on_another_until_it_is_released(project, postgres_url):
    first = evals_done(project, postgres_url, "run", "--suite", "suite.jsonl", "--judge", "offline",
                       "--run-id", "r1", "--reports", "machine-a")  # fmt: skip
    assert first.returncode == 0, first.stderr
    with Store(project / "machine-a", url=postgres_url) as holder, holder.lock_run("r1"):
        other = evals_done(project, postgres_url, "run", "--resume", "r1", "--reports", "machine-b")
        assert other.returncode == 2
        assert "run r1 is being worked by another evals process" in other.stderr
        assert "another machine" in other.stderr  # the advisory lock, not the local flock, said no
    again = evals_done(project, postgres_url, "run", "--resume", "r1", "--reports", "machine-b")
    assert again.returncode == 0, again.stderr


HOLD = """
import sys, time
from evals.store import Store
store = Store(sys.argv[1], url=sys.argv[2])
with store.lock_run("r1"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_lock_of_a_process_killed_with_sigkill_is_released_by_the_server(project, postgres_url, tmp_path):
    made = evals_done(project, postgres_url, "run", "--suite", "suite.jsonl", "--judge", "offline",
                      "--run-id", "r1", "--reports", "machine-a")  # fmt: skip
    assert made.returncode == 0, made.stderr
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "machine-c"), postgres_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    with holder.stdout:  # type: ignore[union-attr]
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with Store(project / "machine-b", url=postgres_url) as store:
        with pytest.raises(StoreError, match="being worked by another"), store.lock_run("r1"):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # The server ends the dead client's session when it sees the socket close: poll for that.
        for _ in range(200):
            try:
                with store.lock_run("r1"):
                    break
            except StoreError:
                time.sleep(0.05)
        else:
            pytest.fail("the advisory lock of a killed process was never released")


def test_the_config_store_key_sends_runs_to_postgres(project, postgres_url):
    config = yaml.safe_load((project / "evals.yaml").read_text())
    (project / "evals.yaml").write_text(yaml.safe_dump({**config, "store": postgres_url}))
    env = {k: v for k, v in os.environ.items() if k != "EVALS_STORE"}
    done = subprocess.run(
        [sys.executable, "-m", "evals", "run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "c1"],
        cwd=project, env=env, text=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (project / "reports" / "evals.db").exists()
    assert (project / "reports" / "runs" / "c1" / "results.jsonl").is_file()  # exports stay local
    with Store(project, url=postgres_url) as store:
        assert store.run("c1").status == "finished"


def test_an_unreachable_store_is_one_line_without_the_password(project, tmp_path):
    url = f"postgresql://evals@/evals?host={tmp_path / 'no-server'}&port=5999"
    env = {**os.environ, "EVALS_STORE": url, "EVALS_DB_PASSWORD": "pw-very-secret-4242"}
    (project / "evals.yaml").write_text(
        (project / "evals.yaml").read_text() + "store_password_env: EVALS_DB_PASSWORD\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "evals", "import", "."], cwd=project, env=env, text=True, capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the run store" in lines[0], done.stderr
    assert "pw-very-secret-4242" not in done.stderr + done.stdout
