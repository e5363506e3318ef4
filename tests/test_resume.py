"""A run killed with SIGKILL mid-run leaves a consistent store, and --resume finishes only the missing work."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeOpenAI, last_user_text, text_reply

ROOT = Path(__file__).parent.parent
N = 30


def stored_answers(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute("SELECT count(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_kill_9_mid_run_then_resume_does_only_the_missing_work(tmp_path):
    suite = [{"id": f"q{i}", "area": f"a{i % 3}", "question": f"What is {i} + 1?", "reference": str(i + 1)}
             for i in range(N)]  # fmt: skip
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in suite))
    with FakeOpenAI(text_reply(lambda q: q.split()[2]), latency=0.05) as model:
        config = {"models": {"local": {"base_url": model.url, "model": "m", "max_concurrency": 1}},
                  "judges_dir": str(ROOT / "judges")}  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "evals", "run", "--suite", "suite.jsonl", "--run-id", "crash"]
        log = tmp_path / "run.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
        db_path = tmp_path / "reports" / "evals.db"
        deadline = time.monotonic() + 60
        while stored_answers(db_path) < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            before = dict(db.execute("SELECT item_id, text FROM answers WHERE error IS NULL"))
            status = db.execute("SELECT status FROM runs WHERE run_id = 'crash'").fetchone()[0]
        assert 10 <= len(before) < N
        assert status == "running"  # never reached the end: resumable

        result = CliRunner().invoke(main, ["run", "--resume", "crash"], catch_exceptions=False)
        assert result.exit_code == 0, result.output

        # A request cut off mid-send by the kill reaches the server as a body with no question; it is not an ask.
        asked = Counter(q for q in map(last_user_text, model.requests) if q)
        assert len(asked) == N
        # At most the one call in flight at the kill is asked twice; stored answers never again.
        assert sum(asked.values()) <= N + 1
        for item in suite:
            if item["id"] in before:
                assert asked[item["question"]] == 1
    with sqlite3.connect(db_path) as db:
        after = dict(db.execute("SELECT item_id, text FROM answers WHERE error IS NULL"))
        judged = db.execute("SELECT count(*) FROM judgments WHERE score IS NOT NULL").fetchone()[0]
        status = db.execute("SELECT status FROM runs WHERE run_id = 'crash'").fetchone()[0]
    assert len(after) == N and judged == N and status == "finished"
    assert all(after[k] == v for k, v in before.items())
