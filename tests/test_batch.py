"""Batch judging (``judging: batch``, issue 22 item 3): a run's verdicts go through Anthropic's Message Batches
API or OpenAI's Batch API, spoken by the fake servers over real HTTP through the real SDKs.

A batch that takes several checks is waited for; what a batch did not answer (errored, expired, missing,
a failed batch) is asked online; ``--detach`` leaves the run pending and ``--resume`` collects without
submitting again, also after the process was killed right after submitting; each request of a batch is on
the audit trail, and batched verdicts are priced at the batch discount.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, FakeServer, Fault, grade_by_reference, text_reply
from evals.outbound.audit import BATCHED, CALL
from evals.outbound.providers.anthropic import AnthropicProvider
from evals.outbound.providers.batching import BatchLimits
from evals.outbound.providers.openai_compat import OpenAIProvider
from evals.store import Store
from evals.store.audit import records

ROOT = Path(__file__).parent.parent
N = 6
ITEMS = [
    {"id": f"q{i}", "area": "math" if i % 2 else "geo", "question": f"What is {i} plus one?", "reference": str(i + 1)}
    for i in range(N)
]  # fmt: skip
"""Answered right when ``i`` is even: the fake judge gives those 5, the others 1."""
KEY_ENV = "BATCH_TEST_KEY"
VENDORS = ("anthropic", "openai")


def answer(question: str) -> str:
    i = int(question.split()[2])
    return f"It is {i + 1}." if i % 2 == 0 else "I do not know."


@dataclass
class Project:
    """A project folder: a fake local model, a fake batch judge of one vendor, evals.yaml and a suite."""

    root: Path
    vendor: str
    judge: FakeServer
    model: FakeServer

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    def run(self, *args: str) -> Result:
        return self.invoke("run", "--suite", "suite.jsonl", *args)

    def configure(self, **judge: Any) -> None:
        config = {
            "models": {"local": {"base_url": self.model.url, "model": "m", "max_retries": 0}},
            "judges": {
                "batcher": {
                    "provider": self.vendor, "base_url": self.judge.url, "model": "judge-model",
                    "api_key_env": KEY_ENV, "judging": "batch", "batch_poll_s": 0.01, "max_retries": 1,
                    "price_in_per_mtok": 3.0, "price_out_per_mtok": 15.0, **judge,
                }
            },
            "judges_dir": str(ROOT / "judges"),
            "canary": {"enabled": False},  # its re-judged anchors are online calls of their own
        }  # fmt: skip
        (self.root / "evals.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def online_gradings(self) -> int:
        """Verdicts the judge fake was asked for one by one (not in a batch)."""
        return self.judge.count(lambda body: "messages" in body)

    def batches(self) -> list[Any]:
        return self.judge.batch_book.batches

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.root / "reports" / "evals.db") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM judgments WHERE run_id = ?", (run_id,))]

    def status(self, run_id: str) -> str:
        with sqlite3.connect(self.root / "reports" / "evals.db") as db:
            return str(db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])


@contextmanager
def project(root: Path, monkeypatch: pytest.MonkeyPatch, vendor: str, **judge: Any) -> Iterator[Project]:
    monkeypatch.setenv(KEY_ENV, "sk-batch-test")
    fake = FakeAnthropic if vendor == "anthropic" else FakeOpenAI
    with (
        fake(grade_by_reference, model_id=f"{vendor}-judge") as judge_server,
        FakeOpenAI(text_reply(answer)) as model,
    ):
        (root / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
        found = Project(root, vendor, judge_server, model)
        found.configure(**judge)
        yield found


def scored(verdicts: list[dict[str, Any]]) -> dict[str, int]:
    return {v["item_id"]: v["score"] for v in verdicts if v["score"] is not None}


EXPECTED = {item["id"]: 5 if i % 2 == 0 else 1 for i, item in enumerate(ITEMS)}


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_batch_judge_grades_the_whole_run_in_one_batch_waiting_through_several_checks(
    vendor, tmp_path, monkeypatch
):
    with project(tmp_path, monkeypatch, vendor) as p:
        p.judge.batch_behaviour.polls = 3  # a slow batch: three checks say it is still in progress
        result = p.run("--run-id", "r1")
        assert result.exit_code == 0, result.output
        (batch,) = p.batches()
        assert len(batch.requests) == N and batch.ended and batch.polls_left == 0
        assert p.online_gradings() == 0
        assert "in progress" in result.output  # the progress line while it waited
        verdicts = p.verdicts("r1")
        assert scored(verdicts) == EXPECTED
        assert {v["batch_id"] for v in verdicts} == {batch.id}
        assert all(v["tokens_in"] and v["tokens_out"] for v in verdicts)
        assert p.status("r1") == "finished"
        with Store(tmp_path / "reports") as store:
            ((collected, outcome),) = store._execute(
                "SELECT collected_at, outcome FROM judge_batches"
            ).fetchall()
        assert collected is not None and outcome == f"{N} answered"


@pytest.mark.parametrize("vendor", VENDORS)
def test_what_a_partial_batch_did_not_answer_is_asked_online(vendor, tmp_path, monkeypatch):
    fates = {1: "errored", 2: "missing", 4: "canceled"}
    with project(tmp_path, monkeypatch, vendor) as p:
        p.judge.batch_behaviour.outcome = lambda index: fates.get(index, "succeeded")  # type: ignore[assignment,return-value]
        result = p.run("--run-id", "r1")
        assert result.exit_code == 0, result.output
        (batch,) = p.batches()
        assert p.online_gradings() == len(fates)
        verdicts = p.verdicts("r1")
        assert scored(verdicts) == EXPECTED
        unanswered = {batch.requests[i][0] for i in fates}
        online = {v["item_id"] for v in verdicts if v["batch_id"] is None}
        assert len(online) == len(fates) and len(unanswered) == len(fates)
        assert "asking the 3 unanswered online" in result.output


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_expired_batch_is_asked_online_and_what_the_cache_holds_is_never_batched(
    vendor, tmp_path, monkeypatch
):
    with project(tmp_path, monkeypatch, vendor) as p:
        p.judge.batch_behaviour.outcome = lambda index: "expired"
        result = p.run("--run-id", "expired")
        assert result.exit_code == 0, result.output
        assert p.online_gradings() == N
        assert scored(p.verdicts("expired")) == EXPECTED
        assert all(v["batch_id"] is None for v in p.verdicts("expired"))

        p.judge.clear()
        result = p.run("--run-id", "again")  # the same answers: the judgment cache holds their verdicts
        assert result.exit_code == 0, result.output
        assert len(p.batches()) == 1 and p.online_gradings() == 0
        assert scored(p.verdicts("again")) == EXPECTED
        assert all(v["cached"] for v in p.verdicts("again"))


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_failed_batch_asks_everything_online(vendor, tmp_path, monkeypatch):
    with project(tmp_path, monkeypatch, vendor) as p:
        p.judge.batch_behaviour.failed = True
        result = p.run("--run-id", "r1")
        assert result.exit_code == 0, result.output
        assert len(p.batches()) == 1
        assert p.online_gradings() == N
        assert scored(p.verdicts("r1")) == EXPECTED


def test_an_upload_the_vendor_refuses_is_asked_online(tmp_path, monkeypatch):
    with project(tmp_path, monkeypatch, "anthropic") as p:
        p.judge.inject(Fault("server_error", status=400))  # the batch create request is refused
        result = p.run("--run-id", "r1")
        assert result.exit_code == 0, result.output
        assert p.batches() == []
        assert "could not be submitted" in result.output
        assert p.online_gradings() == N
        assert scored(p.verdicts("r1")) == EXPECTED


@pytest.mark.parametrize("vendor", VENDORS)
def test_batches_are_cut_within_the_vendors_limits(vendor, tmp_path, monkeypatch):
    provider = AnthropicProvider if vendor == "anthropic" else OpenAIProvider
    monkeypatch.setattr(provider, "batch_limits", BatchLimits(requests=4, bytes=10**9))
    with project(tmp_path, monkeypatch, vendor) as p:
        result = p.run("--run-id", "r1", "--judge-repeats", "2")
        assert result.exit_code == 0, result.output
        sizes = [len(b.requests) for b in p.batches()]
        assert sizes == [4, 4, 4]  # 6 answers x 2 repeats, 4 at most a batch
        ids = [cid for b in p.batches() for cid, _ in b.requests]
        assert len(set(ids)) == 2 * N
        assert p.online_gradings() == 0
        assert len([v for v in p.verdicts("r1") if v["score"] is not None]) == 2 * N

        monkeypatch.setattr(provider, "batch_limits", BatchLimits(requests=1000, bytes=5000))
        result = p.run("--run-id", "r2", "--judge-repeats", "2")  # repeats are asked afresh, never cached
        assert result.exit_code == 0, result.output
        fresh = p.batches()[3:]
        assert len(fresh) > 1 and sum(len(b.requests) for b in fresh) == N  # a judge prompt is over 1 KB
        assert all(len(b.requests) <= 4 for b in fresh)


@pytest.mark.parametrize("vendor", VENDORS)
def test_detach_leaves_the_run_pending_and_resume_collects_without_submitting_again(
    vendor, tmp_path, monkeypatch
):
    with project(tmp_path, monkeypatch, vendor) as p:
        p.judge.batch_behaviour.polls = 10**6  # not ended while we look
        result = p.run("--run-id", "r1", "--detach")
        assert result.exit_code == 0, result.output
        assert "pending: run r1 waits for 1 batch(es)" in result.output
        assert "evals run --resume r1" in result.output
        assert p.status("r1") == "pending"
        assert p.verdicts("r1") == []

        # still not ended: a detached resume checks once and stays pending
        result = p.invoke("run", "--resume", "r1", "--detach")
        assert result.exit_code == 0, result.output
        assert p.status("r1") == "pending"

        p.batches()[0].polls_left = 0
        result = p.invoke("run", "--resume", "r1")
        assert result.exit_code == 0, result.output
        assert len(p.batches()) == 1 and p.online_gradings() == 0
        assert scored(p.verdicts("r1")) == EXPECTED
        assert p.status("r1") == "finished"


def stored_batches(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM judge_batches").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_run_killed_after_submitting_is_resumed_by_collecting_its_batch(vendor, tmp_path, monkeypatch):
    with project(tmp_path, monkeypatch, vendor) as p:
        p.judge.batch_behaviour.polls = 10**6
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "evals", "run", "--suite", "suite.jsonl", "--run-id", "killed"]
        log = tmp_path / "run.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
        db_path = tmp_path / "reports" / "evals.db"
        deadline = time.monotonic() + 60
        while stored_batches(db_path) < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.2)  # it polls the batch now
        assert proc.poll() is None, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert p.status("killed") == "running" and p.verdicts("killed") == []
        assert len(p.batches()) == 1

        p.batches()[0].polls_left = 0
        result = p.invoke("run", "--resume", "killed")
        assert result.exit_code == 0, result.output
        assert "1 batch(es) submitted earlier; collecting them" in result.output
        assert len(p.batches()) == 1  # nothing submitted twice
        assert p.online_gradings() == 0
        verdicts = p.verdicts("killed")
        assert scored(verdicts) == EXPECTED and {v["batch_id"] for v in verdicts} == {p.batches()[0].id}
        assert p.status("killed") == "finished"
        verified = p.invoke("audit", "verify")
        assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_request_of_a_batch_has_its_audit_record_and_the_upload_is_recorded(
    vendor, tmp_path, monkeypatch
):
    with project(tmp_path, monkeypatch, vendor) as p:
        result = p.run("--run-id", "r1")
        assert result.exit_code == 0, result.output
        with Store(tmp_path / "reports") as store:
            found = list(records(store))
        calls = [r for r in found if r.kind == CALL and r.role == "judge"]
        batched = [r for r in found if r.kind == BATCHED]
        (batch,) = p.batches()
        # the upload (OpenAI: the file, then the batch) is a call whose hash is of the bytes received
        uploads = [r for r in p.judge.raw_requests]
        assert sorted(r.sha256 for r in calls) == sorted(hashlib.sha256(raw).hexdigest() for raw in uploads)
        assert {r.run_id for r in calls} == {"r1"}  # the upload is on the run's chain
        assert len(batched) == N
        assert {r.details["custom_id"] for r in batched} == {cid for cid, _ in batch.requests}
        assert {r.details["batch_id"] for r in batched} == {batch.id}
        assert {(r.item_id, r.sample, r.role, r.status) for r in batched} == {
            (i["id"], 0, "judge", "ok") for i in ITEMS
        }
        if vendor == "openai":  # each record hashes its line of the uploaded file
            lines = p.judge.batch_book.files[batch.input_file_id][1].splitlines()
            assert {r.sha256 for r in batched} == {hashlib.sha256(line).hexdigest() for line in lines}
        verified = p.invoke("audit", "verify")
        assert verified.exit_code == 0, verified.output


def test_batched_verdicts_are_priced_at_the_batch_discount(tmp_path, monkeypatch):
    with project(tmp_path, monkeypatch, "anthropic", batch_discount=0.5) as p:
        p.judge.batch_behaviour.outcome = lambda index: "expired" if index == 0 else "succeeded"
        result = p.run("--run-id", "r1")
        assert result.exit_code == 0, result.output
        verdicts = p.verdicts("r1")
        full = sum((v["tokens_in"] * 3.0 + v["tokens_out"] * 15.0) / 1e6 for v in verdicts)
        online = sum(
            (v["tokens_in"] * 3.0 + v["tokens_out"] * 15.0) / 1e6 for v in verdicts if not v["batch_id"]
        )
        report = p.invoke("report", "r1")
        assert report.exit_code == 0, report.output
        card = json.loads((tmp_path / "reports" / "runs" / "r1" / "scorecard.json").read_text())
        cost = card["cost"]["judge"]["cost"]
        assert cost == pytest.approx(online + (full - online) * 0.5)
        assert online > 0 and cost < full


def test_judging_batch_needs_a_vendor_with_a_batch_api(tmp_path, monkeypatch):
    with project(tmp_path, monkeypatch, "anthropic") as p:
        p.configure(provider="offline")
        result = p.run("--run-id", "r1")
        assert result.exit_code == 2, result.output
        line = [ln for ln in result.output.splitlines() if "judging" in ln]
        assert line and "evals.yaml:" in line[0] and "provider: anthropic or openai" in line[0], result.output


def test_a_panel_member_with_judging_batch_sends_its_verdicts_in_a_batch_the_other_online(
    tmp_path, monkeypatch
):
    with project(tmp_path, monkeypatch, "anthropic") as p, FakeOpenAI(grade_by_reference) as other:
        config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
        config["judges"]["online"] = {
            "base_url": other.url,
            "model": "gpt",
            "api_key_env": KEY_ENV,
            "price_in_per_mtok": 1,
        }
        config["models"]["local"]["price_in_per_mtok"] = 0
        config["judges"]["both"] = {"panel": ["batcher", "online"]}
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        result = p.run("--run-id", "r1", "--judge", "both", "--max-cost", "10")
        assert result.exit_code == 0, result.output
        (batch,) = p.batches()
        assert len(batch.requests) == N and p.online_gradings() == 0
        assert other.count() == N and other.batch_book.batches == []
        verdicts = p.verdicts("r1")
        batched = [v for v in verdicts if v["batch_id"]]
        assert len(verdicts) == 2 * N and len(batched) == N
        assert all(v["judge"].startswith("batcher") for v in batched)
        assert all(v["score"] in (1, 5) for v in verdicts)


def test_max_cost_holds_batched_requests_at_the_batch_rate_and_stops_resumable(tmp_path, monkeypatch):
    with project(tmp_path, monkeypatch, "anthropic") as p:
        config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
        config["models"]["local"]["price_in_per_mtok"] = 0
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        # each grading's bound: ~160 prompt tokens at $3/M and 1024 completion tokens at $15/M, halved ~ $0.008
        result = p.run("--run-id", "r1", "--max-cost", "0.02")
        assert result.exit_code == 2, result.output
        assert "--max-cost" in result.output and "evals run --resume r1" in result.output
        (batch,) = p.batches()
        assert len(batch.requests) == 2  # at full price only one would have fit
        assert p.online_gradings() == 0 and len(scored(p.verdicts("r1"))) == 2
        result = p.invoke("run", "--resume", "r1", "--max-cost", "1")
        assert result.exit_code == 0, result.output
        assert [len(b.requests) for b in p.batches()] == [2, N - 2]
        assert scored(p.verdicts("r1")) == EXPECTED
