"""Confirm before failing (``gate: {confirm_repeats: K}``, issue 21 item 5): a failure that was the judge's
slip is re-graded away; a real drop stays a failure; every page then decides on the confirmed verdicts and
says what confirming found; `evals report` reads them without calling anyone."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter

import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, last_user_text, text_reply

SUITE = [
    {"id": f"{a}-{i:02d}", "area": a, "question": f"{a} question {i}?", "reference": f"{a}{i}"}
    for a, n in (("geo", 10), ("math", 20))
    for i in range(n)
]


def invoke(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)


def judge_slipping_once(drop: int):
    """A judge that grades the candidate's geo answers ``5 - drop`` the first time it sees each of them
    (``drop`` on every asking when negative: a real drop), and every other answer 5."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def respond(body: dict) -> dict:
        answer = re.search(r"<answer>(.*?)</answer>", last_user_text(body), re.S)
        assert answer
        text = answer.group(1)
        with lock:
            seen[text] += 1
            first = seen[text] == 1
        if "v2" in text and "geo" in text and (first or drop < 0):
            return {"rationale": "worse", "score": 5 - abs(drop)}
        return {"rationale": "fine", "score": 5}

    return respond


def _project(tmp_path, monkeypatch, drop: int):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SUITE))
    judge = FakeAnthropic(judge_slipping_once(drop))
    v1 = FakeOpenAI(text_reply(lambda q: f"v1 answer to {q}"))
    v2 = FakeOpenAI(text_reply(lambda q: f"v2 answer to {q}"))
    return judge, v1, v2


def _config(tmp_path, judge, v1, v2, confirm: int | None) -> None:
    config = {
        "models": {"prod": {"base_url": v1.url, "model": "m1"}, "candidate": {"base_url": v2.url, "model": "m2"}},
        "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test", "max_retries": 0}},
        "gate": {"min_pairs": 10, **({"confirm_repeats": confirm} if confirm else {})},
        "canary": {"enabled": False},
    }  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))


def _runs(judge, v1, v2) -> None:
    for model, run_id in (("prod", "base"), ("candidate", "cand")):
        ran = invoke(
            "run", "--suite", "suite.jsonl", "--model", model, "--judge", "claude", "--run-id", run_id
        )
        assert ran.exit_code == 0, ran.output


def test_a_failure_that_was_one_slip_of_the_judge_is_confirmed_away(tmp_path, monkeypatch):
    judge, v1, v2 = _project(tmp_path, monkeypatch, drop=1)
    with judge, v1, v2:
        _config(tmp_path, judge, v1, v2, confirm=None)
        _runs(judge, v1, v2)
        unconfirmed = invoke("gate", "--candidate", "cand", "--baseline", "base", "--markdown")
        assert unconfirmed.exit_code == 1 and "| area geo | **FAIL**" in unconfirmed.output
        _config(tmp_path, judge, v1, v2, confirm=3)
        asked_before = len(judge.requests)
        confirmed = invoke("gate", "--candidate", "cand", "--baseline", "base", "--markdown")
        assert confirmed.exit_code == 0, confirmed.output
        # each geo answer of both runs now has 3 verdicts: 2 more for 10 answers in each run
        assert len(judge.requests) - asked_before == 40
        assert (
            "confirmed before failing: run cand: 10 answers graded again; 10 got a different verdict"
            in confirmed.output
        )
        again = invoke("gate", "--candidate", "cand", "--baseline", "base")
        assert (
            again.exit_code == 0 and len(judge.requests) - asked_before == 40
        )  # stored: nothing asked again
    # the report reads the confirmed verdicts, with the judge's server gone
    report = invoke("report", "cand", "--baseline", "base")
    assert report.exit_code == 0 and report.output.startswith("safe to ship: yes"), report.output
    assert "confirmed before failing: run cand: 10 answers graded again" in report.output
    card = json.loads((tmp_path / "reports/runs/cand/scorecard.json").read_text())
    assert next(a for a in card["areas"] if a["area"] == "geo")["drift"]["status"] != "regressed"


def test_a_real_drop_stays_a_failure_after_confirming(tmp_path, monkeypatch):
    judge, v1, v2 = _project(tmp_path, monkeypatch, drop=-2)
    with judge, v1, v2:
        _config(tmp_path, judge, v1, v2, confirm=3)
        _runs(judge, v1, v2)
        gate = invoke("gate", "--candidate", "cand", "--baseline", "base", "--markdown")
    assert gate.exit_code == 1 and "| area geo | **FAIL**" in gate.output
    assert (
        "confirmed before failing: run cand: 10 answers graded again; 0 got a different verdict"
        in gate.output
    )


def test_a_run_that_knows_its_baseline_confirms_before_its_page_says_fail(tmp_path, monkeypatch):
    """`evals run` writes its page with the decision against its default baseline (the same model name's
    earlier run): with confirm_repeats it re-grades the failing area first, as the gate would."""
    judge, v1, v2 = _project(tmp_path, monkeypatch, drop=1)
    with judge, v1, v2:
        _config(tmp_path, judge, v1, v2, confirm=3)
        ran = invoke(
            "run", "--suite", "suite.jsonl", "--model", "prod", "--judge", "claude", "--run-id", "base"
        )
        assert ran.exit_code == 0, ran.output
        config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
        config["models"]["prod"]["base_url"] = v2.url  # tonight's upgrade behind the same name
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        ran = invoke(
            "run", "--suite", "suite.jsonl", "--model", "prod", "--judge", "claude", "--run-id", "next"
        )
    assert ran.exit_code == 0, ran.output
    assert "safe to ship: yes" in ran.output
    card = json.loads((tmp_path / "reports/runs/next/scorecard.json").read_text())
    assert card["baseline"]["run_id"] == "base" and card["decision"]["outcome"] == "pass"
    assert any(n.startswith("confirmed before failing: run next") for n in card["decision"]["notes"])


def test_a_confirmed_verdict_is_stored_only_once_its_call_is_on_the_runs_chain(
    tmp_path, monkeypatch, store_url
):
    """A gate killed while confirming leaves no verdict whose judge call is not on the chain (else `evals audit
    verify` would call the run tampered): the records are written slowly here, and every stored verdict must
    find its calls' records already stored."""
    from evals.store import Store
    from evals.store import audit as sql

    monkeypatch.setenv("EVALS_STORE", store_url)
    judge, v1, v2 = _project(tmp_path, monkeypatch, drop=1)
    early: list[str] = []
    save_judgment = Store.save_judgment

    def checked(self, judgment):
        if judgment.repeat > 0:  # a confirming verdict
            [[recorded]] = self._execute(
                "SELECT COUNT(*) FROM audit_records WHERE run_id = ? AND item_id = ? AND role = 'judge' "
                "AND status = 'ok'",
                (judgment.run_id, judgment.item_id),
            ).fetchall()
            [[stored]] = self._execute(
                "SELECT COUNT(*) FROM judgments WHERE run_id = ? AND item_id = ? AND cached = 0",
                (judgment.run_id, judgment.item_id),
            ).fetchall()
            if recorded < stored + 1:
                early.append(f"{judgment.run_id} {judgment.item_id} repeat {judgment.repeat}")
        save_judgment(self, judgment)

    with judge, v1, v2:
        _config(tmp_path, judge, v1, v2, confirm=2)
        _runs(judge, v1, v2)
        insert_record = sql.insert_record

        def slowly(store, row):
            time.sleep(0.01)
            insert_record(store, row)

        monkeypatch.setattr(sql, "insert_record", slowly)
        monkeypatch.setattr(Store, "save_judgment", checked)
        gate = invoke("gate", "--candidate", "cand", "--baseline", "base")
    assert "confirmed before failing: run cand: 10 answers graded again" in gate.output, gate.output
    assert early == []
    assert invoke("audit", "verify").exit_code == 0
