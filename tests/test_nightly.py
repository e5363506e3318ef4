"""scripts/nightly.sh: every suite run and reported, reports/index.html written, non-zero on a regression."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply

ROOT = Path(__file__).parent.parent
EVALS = Path(sys.executable).parent / "evals"


def write_suite(folder: Path, name: str, areas: tuple[str, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    items = [{"id": f"{a}-{i}", "area": a, "question": f"{a} {i}?", "reference": f"{a}{i}"}
             for a in areas for i in range(12)]  # fmt: skip
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))


def nightly(project: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVALS": str(EVALS), "PYTHONPATH": str(ROOT), **extra}
    return subprocess.run(
        [str(ROOT / "scripts" / "nightly.sh"), "suites"], cwd=project, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_nightly_reports_every_suite_and_fails_on_a_regression(tmp_path):
    write_suite(tmp_path / "suites", "support", ("billing", "refunds"))
    write_suite(tmp_path / "suites", "legal", ("contracts",))
    right = text_reply(lambda q: q.replace(" ", "").rstrip("?"))  # "billing 3?" -> "billing3": the reference
    with FakeOpenAI(right) as model:
        config = {
            "models": {"local": {"base_url": model.url, "model": "m"}},
            "judges_dir": str(ROOT / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        first = nightly(tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        model.responder = text_reply(
            lambda q: "no idea" if q.startswith("refunds") else q.replace(" ", "")[:-1]
        )
        second = nightly(tmp_path)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "regressed: refunds" in second.stderr
    index = (tmp_path / "reports" / "index.html").read_text()
    assert index.count("<tr>") == 4 + 1  # four runs and the header
    cards = sorted((tmp_path / "reports" / "runs").glob("*/scorecard.html"))
    assert len(cards) == 4


def test_nightly_with_a_frontier_model_writes_each_suites_routing_table(tmp_path):
    write_suite(tmp_path / "suites", "support", ("billing", "refunds"))
    right = text_reply(lambda q: q.replace(" ", "").rstrip("?"))
    local = text_reply(lambda q: "no idea" if q.startswith("refunds") else q.replace(" ", "").rstrip("?"))
    with FakeOpenAI(local) as model, FakeOpenAI(right) as frontier:
        config = {
            "models": {"local": {"base_url": model.url, "model": "m"},
                       "frontier": {"base_url": frontier.url, "model": "f"}},
            "judges_dir": str(ROOT / "judges"),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        done = nightly(tmp_path, MODEL="local", FRONTIER="frontier")
    assert done.returncode == 0, done.stdout + done.stderr
    [table] = (tmp_path / "reports" / "runs").glob("*/route.md")
    text = table.read_text()
    assert "| billing | internal | 12 |" in text and "**local**" in text
    assert "| refunds | internal | 12 |" in text and "**frontier**" in text


def test_nightly_with_detach_submits_tonights_batches_and_collects_them_the_next_night(tmp_path):
    write_suite(tmp_path / "suites", "support", ("billing",))
    right = text_reply(lambda q: q.replace(" ", "").rstrip("?"))
    with FakeOpenAI(right) as model, FakeAnthropic(grade_by_reference) as judge:
        judge.batch_behaviour.polls = 10**6  # tonight's batch does not end tonight
        config = {
            "models": {"local": {"base_url": model.url, "model": "m"}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "c",
                                  "api_key_env": "NIGHTLY_KEY", "judging": "batch", "batch_poll_s": 0.01}},
            "judges_dir": str(ROOT / "judges"),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        first = nightly(tmp_path, DETACH="1", NIGHTLY_KEY="sk-test")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "is pending" in first.stdout and not list(
            (tmp_path / "reports" / "runs").glob("*/scorecard.html")
        )
        judge.batch_behaviour.polls = 0
        for batch in judge.batch_book.batches:
            batch.polls_left = 0  # ended by the next night
        second = nightly(tmp_path, DETACH="1", NIGHTLY_KEY="sk-test")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "== collect nightly-support" in second.stdout
    # last night's batch collected, not submitted again; tonight's same answers graded from the cache it filled
    assert len(judge.batch_book.batches) == 1
    cards = sorted((tmp_path / "reports" / "runs").glob("*/scorecard.html"))
    assert len(cards) == 2  # last night's run reported once collected, tonight's once it ended
