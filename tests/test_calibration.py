"""``evals judge calibrate``: labels files, the judge on the fake Anthropic server and offline, the exit
code against --min-kappa, the stored record, and the scorecard's calibration line."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.errors import LabelsError
from evals.fakes import FakeAnthropic, FakeOpenAI, last_user_text, text_reply
from evals.outbound.callcontext import current
from evals.records import Verdict
from evals.render.pages import render_html, render_markdown
from evals.scorecard import build_scorecard
from evals.store import Store
from evals.trust.calibration import (
    Calibration,
    calibrations,
    distinct_answers,
    judge_labels,
    latest_calibration,
    save_calibration,
)
from evals.trust.calibration import calibrate as run_calibration
from evals.trust.labels import LabelRow, Labels, load_labels

FAST = ["--resamples", "100"]
"""Fewer resamples than the default: the tests check figures and verdicts, not interval precision."""


def _rows(n: int = 30) -> list[dict]:
    """Labelled rows whose people's score is in the answer's text (``score N``), every score 1-5, two areas."""
    rows = []
    for i in range(n):
        score = i % 5 + 1
        rows.append({
            "id": f"a{i}", "area": "math" if i % 2 else "geo", "question": f"q{i}?", "reference": f"r{i}",
            "answer": f"answer {i} <b>bold</b> score {score}", "human_score": score, "rater": "A",
        })  # fmt: skip
    rows.append({**rows[0], "human_score": rows[0]["human_score"], "rater": "B"})
    rows.append({**rows[1], "human_score": rows[1]["human_score"] + 1, "rater": "B"})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _judge_by(offset: int):
    """A fake judge that gives the people's score (read back from the answer) plus ``offset``, clamped."""

    def respond(body: dict) -> dict:
        answer = re.search(r"<answer>(.*?)</answer>", last_user_text(body), re.S)
        assert answer, "the grading prompt carries the answer in its block"
        score = int(answer.group(1).split("score")[-1])
        return {"rationale": "as I see it", "score": max(1, min(5, score + offset))}

    return respond


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A config with a Claude judge on the fake Anthropic server; yields the server."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    with FakeAnthropic(_judge_by(0), model_id="claude-test-1") as server:
        config = {"judges": {"claude": {"provider": "anthropic", "base_url": server.url, "model": "claude-test",
                                        "max_retries": 0, "max_concurrency": 4}}}  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        _write_jsonl(tmp_path / "labels.jsonl", _rows())
        yield server


def calibrate(*args: str):
    return CliRunner().invoke(main, ["judge", "calibrate", *args, *FAST], catch_exceptions=False)


def test_a_judge_that_agrees_is_calibrated_and_stored(project, tmp_path):
    result = calibrate("--labels", "labels.jsonl", "--judge", "claude", "--out", "cal")
    assert result.exit_code == 0, result.output
    assert "calibrated: kappa's lower bound" in result.output
    # 30 distinct answers, each judged once (the second rater's rows are not judged again)
    assert project.count() == 30
    card = Calibration.model_validate_json((tmp_path / "cal" / "calibration.json").read_text())
    assert card.overall.n == 30 and card.rows == 32
    # the judge gives the consensus (the lower median: row a1's raters said 2 and 3 -> 2)
    assert card.overall.kappa.value == pytest.approx(1.0)
    assert card.overall.exact.value == 1.0 and card.overall.bias.value == 0.0
    assert card.overall.n_multi == 2
    assert [a.area for a in card.areas] == ["geo", "math"]
    html = (tmp_path / "cal" / "calibration.html").read_text()
    assert 'id="confusion"' in html and "Calibrated" in html
    with Store(tmp_path / "reports") as store:
        (stored,) = calibrations(store)
    assert stored.judge_fingerprint == card.judge_fingerprint and stored.answers == []


def test_a_lenient_judge_is_below_min_kappa_and_exits_1(project, tmp_path):
    project.responder = _judge_by(+2)
    result = calibrate("--labels", "labels.jsonl", "--judge", "claude", "--out", "cal", "--min-kappa", "0.8")
    assert result.exit_code == 1, result.output
    assert "NOT calibrated" in result.output
    card = Calibration.model_validate_json((tmp_path / "cal" / "calibration.json").read_text())
    assert card.passed is False
    assert card.overall.bias.value is not None and card.overall.bias.value > 1
    assert card.overall.within_one.value is not None and card.overall.within_one.value < 0.5
    html = (tmp_path / "cal" / "calibration.html").read_text()
    # the answers 2+ points apart are listed, their text escaped (labelled answers are untrusted text)
    assert "answer 0 &lt;b&gt;bold&lt;/b&gt; score 1" in html and "<b>bold</b>" not in html
    assert "Below the bar" in html


def test_judge_errors_are_counted_and_left_out(project, tmp_path):
    def sometimes_broken(body: dict) -> dict | str:
        if "answer 3 " in last_user_text(body):
            return "no verdict here"
        return _judge_by(0)(body)

    project.responder = sometimes_broken
    result = calibrate("--labels", "labels.jsonl", "--judge", "claude", "--out", "cal")
    assert result.exit_code == 0, result.output
    card = Calibration.model_validate_json((tmp_path / "cal" / "calibration.json").read_text())
    assert card.overall.n == 29 and card.overall.judge_errors == 1
    assert "judge-errors" in (tmp_path / "cal" / "calibration.html").read_text()


def test_a_judge_that_fails_every_answer_is_an_error(project):
    project.responder = lambda body: "nothing"
    result = calibrate("--labels", "labels.jsonl", "--judge", "claude", "--out", "cal")
    assert result.exit_code == 2
    assert "failed on all 30 labelled answers" in result.output


def test_offline_judge_on_the_shipped_set_from_an_empty_folder(tmp_path):
    result = calibrate("--labels", "demo", "--judge", "offline", "--min-kappa", "0.3")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "reports" / "calibration").iterdir()
    assert folder.name.startswith("offline-correctness-")
    card = Calibration.model_validate_json((folder / "calibration.json").read_text())
    assert card.overall.n >= 60 and card.overall.human_alpha.value is not None
    assert {a.area for a in card.areas} >= {"arithmetic", "geography", "science"}


def test_the_shipped_set_covers_every_score_and_the_demo_areas():
    labels = load_labels("demo")
    scores = [r.human_score for r in labels.rows]
    assert all(scores.count(s) >= 8 for s in range(1, 6))
    assert len({r.id for r in labels.rows}) >= 60
    assert {r.area for r in labels.rows} == {
        "arithmetic", "definitions", "geography", "language", "science", "unit-conversion"
    }  # fmt: skip


# -- labels files --------------------------------------------------------------------------------------


def test_labels_errors_name_file_and_line(tmp_path):
    rows = _rows(3)
    rows[1] = {**rows[1], "human_score": 6}
    rows[2] = {**rows[2], "human_score": "4"}
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with path.open("a") as f:
        f.write('{"question": "q", "answer": "a", "human_score": 3, "colour": "red"}\n')
        f.write("{not json\n")
    with pytest.raises(LabelsError) as caught:
        load_labels(path)
    text = str(caught.value)
    assert f"{path}:2: human_score: expected an integer from 1 to 5, got 6" in text
    assert f"{path}:3: human_score: expected an integer from 1 to 5" in text
    assert f"{path}:6: colour: unknown column" in text
    assert f"{path}:7: invalid JSON" in text


def test_labels_csv_with_line_numbers_and_conflicting_ids(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "id,area,question,reference,answer,human_score,rater\n"
        "x1,geo,Capital of France?,Paris,Paris,5,A\n"
        'x1,geo,Capital of France?,Paris,"Lyon,\nsurely",2,B\n'
        "x2,geo,Capital of Peru?,Lima,Lima,five,A\n"
        "x3,geo,Capital of Peru?,Lima,Lima,4,A\n"
        "x3,geo,Capital of Peru?,Lima,Lima,5,A\n"
    )
    with pytest.raises(LabelsError) as caught:
        load_labels(path)
    text = str(caught.value)
    assert f"{path}:3: id: 'x1' is another answer than on line 2" in text
    assert f"{path}:5: human_score: expected an integer from 1 to 5" in text
    assert f"{path}:7: rater: 'A' already scored 'x3' on line 6" in text


def test_labels_csv_reads(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("question,reference,answer,human_score\nq?,,an answer,3\n")
    (row,) = load_labels(path).rows
    assert (row.human_score, row.reference, row.area, row.id) == (3, None, "general", "line-2")


def test_labels_cli_error_exits_2(tmp_path):
    _write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a"}])
    result = calibrate("--labels", "bad.jsonl", "--judge", "offline")
    assert result.exit_code == 2
    assert "bad.jsonl:1: human_score: required" in result.output


# -- the scorecard line --------------------------------------------------------------------------------


@functools.cache
def _base_calibration() -> Calibration:
    labels = Labels(path="labels.jsonl", rows=[LabelRow.model_validate(r) for r in _rows(10)])
    verdicts = {r.id: Verdict(score=r.human_score, rationale="ok") for r in labels.rows}
    record = run_calibration(
        labels, verdicts, judge_name="claude", judge_model="claude-test", judge_fingerprint="fp",
        rubric_name="correctness", rubric_hash="r0", resamples=100,
    )  # fmt: skip
    return record


def _calibration(fingerprint: str, rubric_hash: str, created_at: str, kappa: float) -> Calibration:
    """A calibration record of the given judge and rubric whose kappa is set to ``kappa``."""
    record = _base_calibration()
    kappa_estimate = record.overall.kappa.model_copy(update={"value": kappa})
    overall = record.overall.model_copy(update={"kappa": kappa_estimate})
    return record.model_copy(
        update={"judge_fingerprint": fingerprint, "rubric_hash": rubric_hash, "created_at": created_at,
                "overall": overall}
    )  # fmt: skip


def test_the_scorecard_shows_the_latest_calibration_of_its_judge_and_rubric(open_store):
    with open_store() as store:
        make_run(store, "run-01", {"geo-1": [5], "geo-2": [3]}, rubric_hash="r1")
        for j in store.verdicts("run-01"):
            store.save_judgment(dataclasses.replace(j, judge_fingerprint="fp-claude"))
        card = build_scorecard(store, "run-01")
        assert card.calibration is None
        assert "judge not calibrated" in render_html(card) and "judge not calibrated" in render_markdown(card)

        save_calibration(store, _calibration("fp-claude", "r1", "2026-11-01T00:00:00+00:00", 0.71))
        save_calibration(store, _calibration("fp-claude", "r1", "2026-11-02T00:00:00+00:00", 0.82))
        save_calibration(store, _calibration("fp-other", "r1", "2026-11-03T00:00:00+00:00", 0.10))
        save_calibration(store, _calibration("fp-claude", "r2", "2026-11-04T00:00:00+00:00", 0.20))
        found = latest_calibration(store, frozenset({"fp-claude"}), "r1")
        assert found is not None and found.overall.kappa.value == pytest.approx(0.82)

        card = build_scorecard(store, "run-01")
    assert card.calibration is not None
    assert card.calibration.kappa == pytest.approx(0.82)
    assert card.calibration.created_at == "2026-11-02T00:00:00+00:00"
    html, markdown = render_html(card), render_markdown(card)
    assert "judge not calibrated" not in html and "0.82" in html
    assert "weighted κ 0.82" in markdown


def test_a_run_graded_by_a_calibrated_judge_says_so(project, tmp_path):
    """The whole loop: a run judged by Claude is 'not calibrated'; after calibrating that judge with that
    rubric, the run's report carries the calibration (matched by fingerprint and rubric hash)."""
    (tmp_path / "suite.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "area": "geo", "question": f"q{i}?", "reference": "r"}) + "\n"
                for i in range(3))
    )  # fmt: skip
    with FakeOpenAI(text_reply(lambda q: "my answer score 4")) as model:
        config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
        config["models"] = {"local": {"base_url": model.url, "model": "qwen", "max_retries": 0}}
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        runner = CliRunner()
        ran = runner.invoke(main, ["run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1"])
        assert ran.exit_code == 0, ran.output
    before = runner.invoke(main, ["report", "r1"])
    assert "judge not calibrated" in before.output
    assert calibrate("--labels", "labels.jsonl", "--judge", "claude", "--out", "cal").exit_code == 0
    after = runner.invoke(main, ["report", "r1"])
    assert after.exit_code == 0, after.output
    assert "judge calibration: weighted kappa 1.00" in after.output
    markdown = (tmp_path / "reports" / "runs" / "r1" / "scorecard.md").read_text()
    assert "Judge calibration: weighted κ 1.00" in markdown
    # another judge (other settings: another fingerprint) is not covered by that calibration
    config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
    config["judges"]["claude"]["temperature"] = 0.7
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    with FakeOpenAI(text_reply(lambda q: "my answer score 4")) as model:
        config["models"] = {"local": {"base_url": model.url, "model": "qwen", "max_retries": 0}}
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        assert (
            runner.invoke(
                main, ["run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r2"]
            ).exit_code
            == 0
        )
    assert "judge not calibrated" in runner.invoke(main, ["report", "r2"]).output


class _ScriptedJudge:
    """An in-process judge (runner logic only): records the call context and how many gradings overlap."""

    name, model, max_concurrency, offline = "scripted", "scripted-1", 3, False

    def __init__(self) -> None:
        self.roles: list[tuple[str | None, str | None]] = []
        self.in_flight = self.peak = 0
        self.closed = False

    async def grade(self, item, answer, *, truncated=False):
        context = current()
        self.roles.append((context.role if context else None, context.item_id if context else None))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return Verdict(score=3, rationale="fine")

    async def aclose(self) -> None:
        self.closed = True


def test_each_answer_is_judged_once_in_the_calibrate_role_within_max_concurrency():
    labels = Labels(path="labels.jsonl", rows=[LabelRow.model_validate(r) for r in _rows(12)])
    judge = _ScriptedJudge()
    verdicts = asyncio.run(judge_labels(judge, distinct_answers(labels)))  # type: ignore[arg-type]
    assert sorted(verdicts) == sorted({r.id for r in labels.rows})
    assert sorted(judge.roles) == sorted(("calibrate", r) for r in verdicts)
    assert 1 < judge.peak <= judge.max_concurrency
    assert judge.closed


def test_a_gate_that_requires_a_calibrated_judge_cannot_decide_until_it_is(project, tmp_path):
    """gate: {require_calibration}: an uncalibrated judge is "cannot decide" naming the command; once that
    judge (fingerprint and rubric) is calibrated above the floor, the same two runs are decided."""
    from datetime import UTC, datetime, timedelta

    from evals.config import RequireCalibration
    from evals.scorecard.calibration import calibration_reasons
    from evals.store import Store

    (tmp_path / "suite.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "area": "geo", "question": f"q{i}?", "reference": "r"}) + "\n"
                for i in range(6))
    )  # fmt: skip
    config = yaml.safe_load((tmp_path / "evals.yaml").read_text())
    config["gate"] = {"min_pairs": 5, "require_calibration": {"min_kappa": 0.6, "max_age_days": 90}}
    runner = CliRunner()
    with FakeOpenAI(text_reply(lambda q: "my answer score 4")) as model:
        config["models"] = {"local": {"base_url": model.url, "model": "qwen", "max_retries": 0}}
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        for run_id in ("r1", "r2"):
            ran = runner.invoke(
                main, ["run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", run_id]
            )
            assert ran.exit_code == 0, ran.output
    gate = ["gate", "--candidate", "r2", "--baseline", "r1", "--markdown"]
    before = runner.invoke(main, gate)
    assert before.exit_code == 2 and "has no calibration" in before.output
    assert "evals judge calibrate --labels LABELS --judge claude" in before.output
    assert calibrate("--labels", "labels.jsonl", "--judge", "claude", "--out", "cal").exit_code == 0
    after = runner.invoke(main, gate)
    assert after.exit_code == 0, after.output
    with Store(tmp_path / "reports") as store:
        run = store.run("r2")
        assert calibration_reasons(store, run, RequireCalibration()) == []
        later = datetime.now(UTC) + timedelta(days=91)
        [stale] = calibration_reasons(store, run, RequireCalibration(), now=later)
        assert "days ago (the gate allows 90)" in stale
    # people who disagree with the judge: its newest calibration's kappa is far below the floor
    time.sleep(1.1)  # calibrations are stamped to the second: this one must be the newer
    reversed_rows = [{**r, "human_score": 6 - r["human_score"]} for r in _rows()]
    _write_jsonl(tmp_path / "reversed.jsonl", reversed_rows)
    assert calibrate("--labels", "reversed.jsonl", "--judge", "claude", "--out", "cal2").exit_code == 1
    refused = runner.invoke(main, gate)
    assert refused.exit_code == 2 and "below the 0.6 the gate requires" in refused.output
    # people far from the judge: every answer's conformal interval is wide, so each straddles the pass score
    report = runner.invoke(main, ["report", "r2", "--baseline", "r1"])
    assert "answers whose interval straddles the pass score" in report.output and "geo 6" in report.output
    card = json.loads((tmp_path / "reports/runs/r2/scorecard.json").read_text())
    assert (
        card["calibration"]["uncertain"] == {"geo": 6} and "split conformal" in card["calibration"]["doubt"]
    )
    # and they go to people first, with the reason
    exported = runner.invoke(main, ["review", "export", "r2", "--out", "doubt"])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in (tmp_path / "doubt" / "review.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(
        r["reason"].startswith("uncertain: a person could score it 1–5") for r in rows
    )
