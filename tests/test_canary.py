"""The judge's drift canary (issue 12.3): anchors drawn from the first run, re-judged on every run without
the cache, a silent provider update caught (the scorecard says the judge moved, the gate cannot decide),
`evals judge drift` lists it, a reset re-anchors, noise does not count, and the anchors outlive a purge of
the runs' text.

End to end through the real SDKs against the fake servers; the shift's arithmetic on both store backends.
"""

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals import stats
from evals.cli import main
from evals.config import Endpoint, JudgeEndpoint
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.judge.cost import Budget
from evals.judge.rubrics import Rubric
from evals.outbound.callcontext import current
from evals.records import Answer, Item, Judgment, RunManifest, Verdict
from evals.scorecard.canary import canary_report
from evals.store import Store
from evals.store import canary as rows
from evals.trust.canary import OVER_BUDGET, _rejudge, draw_anchors

AREAS = ("geo", "math", "chem", "bio")
SUITE = [
    {"id": f"{area}-{i}", "area": area, "question": f"{area} question {i}?", "reference": f"{area}ref{i}"}
    for area in AREAS
    for i in range(6)
] + [
    {"id": "geo-secret", "area": "geo", "question": "geo secret?", "reference": "hidden",
     "sensitivity": "restricted"},
]  # fmt: skip
REFERENCES = {item["question"]: item["reference"] for item in SUITE}
WORDING = ["It is"]
"""How the model words its answers; a new wording is a new answer, judged anew rather than from the cache."""
SHIFT = [0]
"""Points the fake judge takes off every verdict (a silent provider update), never below 1."""


def model_answer(question: str) -> str:
    if question.endswith("5?"):  # one wrong answer per area: the anchors hold 1s as well as 5s
        return "No idea."
    return f"{WORDING[0]} {REFERENCES[question]}."


def judge_verdict(body):
    verdict = grade_by_reference(body)
    return {**verdict, "score": max(1, verdict["score"] - SHIFT[0])}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose fake judge keeps its reported model id while its grading may shift; yields it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    WORDING[0], SHIFT[0] = "It is", 0
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    (tmp_path / "policy.yaml").write_text("min_pairs: 10\n")
    label = {"question": "geo question 0?", "answer": "It is georef0.", "human_score": 4}
    (tmp_path / "labels.jsonl").write_text(json.dumps(label) + "\n")
    with (
        FakeOpenAI(text_reply(model_answer)) as model,
        FakeAnthropic(judge_verdict, model_id="claude-test-20261101") as judge,
    ):
        config = {
            "models": {"local": {"base_url": model.url, "model": "qwen", "max_retries": 0}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test",
                                  "max_retries": 0}},
            "canary": {"labels": "labels.jsonl"},
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        yield judge


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run(run_id: str) -> None:
    result = invoke("run", "--suite", "suite.jsonl", "--run-id", run_id)
    assert result.exit_code == 0, result.output


def card(run_id: str) -> dict:
    result = invoke("report", run_id)
    assert result.exit_code == 0, result.output
    return json.loads(Path(f"reports/runs/{run_id}/scorecard.json").read_text())


def test_a_silent_judge_update_is_caught_and_the_gate_refuses(project, tmp_path):
    run("r1")
    with Store(tmp_path / "reports") as store:
        (anchor_set,) = rows.sets(store)
        anchors = rows.anchors(store, anchor_set.set_id)
    assert anchor_set.source_run == "r1" and anchor_set.judge_name == "claude" and len(anchors) == 20
    assert {a.item.area for a in anchors} == set(AREAS)  # round-robin: 5 of each area's 6 items
    assert all(sum(a.item.area == area for a in anchors) == 5 for area in AREAS)
    assert "geo-secret" not in {a.item.id for a in anchors}  # restricted text never goes out again
    assert {a.score for a in anchors} <= {1.0, 5.0}
    drop = -sum(a.score == 5 for a in anchors) / 20  # the shifted judge takes 5s to 4s; 1s stay 1s
    labelled = {a.item.id: a.human_score for a in anchors if a.human_score is not None}
    assert labelled in ({"geo-0": 4.0}, {})  # labelled when drawn; the label matches question and answer
    assert ("geo-0" in {a.item.id for a in anchors}) == bool(labelled)
    first = card("r1")["canary"]
    assert first["previous_run"] is None and first["anchors"] == 20 and not first["moved"]
    with Store(tmp_path / "reports") as store:
        store._execute("UPDATE answers SET text = NULL")  # governance purges the runs' text; anchors stay

    before = project.count()
    run("r2")  # same answers: the run's verdicts come from the cache, the canary's may not
    assert project.count() - before == 20
    steady = card("r2")["canary"]
    assert steady["previous_run"] == "r1" and steady["n_pairs"] == 20
    assert steady["shift"] == 0 and not steady["moved"] and steady["model_ids"] == ["claude-test-20261101"]
    assert steady["calls"] == 20 and steady["tokens_in"] > 0 and first["calls"] == 0

    SHIFT[0], WORDING[0] = 1, "The answer is"  # the provider updates the judge; the model words anew
    run("r3")
    moved = card("r3")["canary"]
    assert moved["moved"] and moved["previous_run"] == "r2" and moved["shift"] == pytest.approx(drop)
    assert moved["ci_high"] < 0
    md = Path("reports/runs/r3/scorecard.md").read_text()
    html = Path("reports/runs/r3/scorecard.html").read_text()
    said = f"the judge moved: its canary shifted by {drop:+.2f} [{moved['ci_low']:+.2f}, {moved['ci_high']:+.2f}]"
    assert said.replace("[", "\\[").replace("]", "\\]") in md
    assert said + " since run r2" in html and 'id="canary-moved"' in html
    terminal = invoke("report", "r3").output
    assert said + " since run r2" in terminal
    assert "drift below may be the judge's, not the model's" in terminal

    refused = invoke("gate", "--candidate", "r3", "--baseline", "r1", "--policy", "policy.yaml")
    assert refused.exit_code == 2, refused.output
    assert f"the judge moved: its canary shifted by {drop:+.2f}" in refused.output
    assert "since run r1" in refused.output
    # Without the canary the gate would have blamed the model for the judge's drop.
    blamed = invoke("gate", "--candidate", "r3", "--baseline", "r1", "--policy", "policy.yaml",
                    "--allow-judge-change")  # fmt: skip
    assert blamed.exit_code == 1, blamed.output

    history = json.loads(invoke("judge", "drift", "--judge", "claude", "--format", "json").output)
    assert [(h["run_id"], h["moved"]) for h in history] == [("r1", False), ("r2", False), ("r3", True)]
    assert history[2]["model_ids"] == ["claude-test-20261101"]
    table = invoke("judge", "drift", "--suite", "suite").output
    assert "MOVED" in table and "r3" in table
    # The anchors the judge now grades differently go to people, as review rows.
    assert invoke("review", "export", "r3", "--out", "rev").exit_code == 0
    exported = [json.loads(line) for line in Path("rev/review.jsonl").read_text().splitlines()]
    movers = [r for r in exported if r["id"].startswith("canary/")]
    assert len(movers) == sum(a.score == 5 for a in anchors) > 0
    assert all(r["reason"] == "canary anchor graded 5 on run r2, 4 now" for r in movers)

    reset = invoke("judge", "canary", "reset", "--judge", "claude", "--suite", "suite", "--from-latest",
                   "--reason", "provider update accepted")  # fmt: skip
    assert reset.exit_code == 0 and "anchored now on run r3" in reset.output
    run("r4")
    after = card("r4")["canary"]
    assert after["previous_run"] == "r3" and not after["moved"] and after["shift"] == 0
    assert after["source_run"] == "r3"
    assert after["resets"][0]["reason"] == "provider update accepted"
    assert "canary re-anchored on" in Path("reports/runs/r4/scorecard.md").read_text()
    assert "provider update accepted" in invoke("judge", "drift").output
    across = invoke("gate", "--candidate", "r4", "--baseline", "r1", "--policy", "policy.yaml")
    assert (
        across.exit_code == 2
        and "re-anchored on" in across.output
        and "after the baseline r1" in across.output
    )
    since = invoke("gate", "--candidate", "r4", "--baseline", "r3", "--policy", "policy.yaml")
    assert since.exit_code == 0, since.output  # one judge since the reset: the gate decides again


def test_a_reset_without_from_latest_anchors_at_the_next_run(project, tmp_path):
    run("r1")
    reason = "<script>alert(1)</script> see [docs](http://x) @team"
    reset = invoke("judge", "canary", "reset", "--judge", "claude", "--suite", "suite", "--reason", reason)
    assert reset.exit_code == 0 and "the next run draws a new anchor set" in reset.output
    before = project.count()
    run("r2")
    assert project.count() == before  # all verdicts cached, and the new set is drawn from r2's: no call
    report = card("r2")["canary"]
    assert report["source_run"] == "r2" and report["previous_run"] is None
    assert report["resets"][0]["reason"] == reason  # kept as written, shown inert in every view
    html = Path("reports/runs/r2/scorecard.html").read_text()
    md = Path("reports/runs/r2/scorecard.md").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "](http" not in md and "@\u200bteam" in md and "canary re-anchored on" in md


def test_a_judge_failing_on_the_canary_is_recorded_and_the_run_still_finishes(project, tmp_path):
    run("r1")
    project.responder = lambda body: "not a verdict"
    run("r2")  # its answers are cached verdicts: only the canary meets the broken judge
    report = card("r2")["canary"]
    assert report["scored"] == 0 and report["shift"] is None and not report["moved"]


def test_a_run_resumed_with_nothing_left_gets_the_canary_it_missed(project, tmp_path):
    run("r1")
    run("r2")
    with Store(tmp_path / "reports") as store:  # the process ended between the last verdict and the canary
        store._execute("DELETE FROM canary_scores WHERE run_id = 'r2'")
        store._execute("DELETE FROM canary_observations WHERE run_id = 'r2'")
    before = project.count()
    assert invoke("run", "--resume", "r2").exit_code == 0
    assert project.count() - before == 20 and card("r2")["canary"]["previous_run"] == "r1"
    assert invoke("run", "--resume", "r2").exit_code == 0
    assert project.count() - before == 20  # observed once: a second resume calls nothing


def test_canary_calls_are_marked_as_the_canary_s(tmp_path):
    seen = []

    class Recorder:  # a scripted judge: what is checked is the call context around each grading
        max_concurrency = 2

        async def grade(self, item, answer, *, truncated=False):
            context = current()
            seen.append((context.run_id, context.item_id, context.role, answer))
            return Verdict(score=3, rationale="ok", model_id="j-1")

    anchors = [
        rows.Anchor(Item(id=f"i{n}", area="a", question="q?"), f"ans {n}", False, 3.0) for n in range(3)
    ]
    scores = asyncio.run(_rejudge("run-7", Recorder(), anchors))
    assert sorted(seen) == [("run-7", f"i{n}", "canary", f"ans {n}") for n in range(3)]
    assert [(s.item_id, s.score, s.model_id) for s in scores] == [(f"i{n}", 3, "j-1") for n in range(3)]


def test_canary_gradings_stay_within_max_cost():
    calls = []

    class Judge:  # scripted: what is checked is that no grading starts past the budget
        name, max_concurrency = "j", 1

        def rubric_for(self, item):
            return Rubric("correctness", "d", ("c",), {s: str(s) for s in range(1, 6)}, True, "")

        async def grade(self, item, answer, *, truncated=False):
            calls.append(item.id)
            return Verdict(score=3, rationale="ok", tokens_in=1000, tokens_out=100)  # $0.0045

    priced = {"price_in_per_mtok": 3.0, "price_out_per_mtok": 15.0}
    model = Endpoint(model="m", **priced)
    judge = JudgeEndpoint(provider="anthropic", model="j", max_tokens=100, **priced)
    anchors = [rows.Anchor(Item(id=f"i{n}", area="a", question="q?"), "ans", False, 3.0) for n in range(20)]
    budget = Budget.for_run(0.03, "m", model, "j", judge)  # room for a few gradings only
    scores = asyncio.run(_rejudge("run-8", Judge(), anchors, budget))
    graded = [s for s in scores if s.score is not None]
    assert 0 < len(graded) == len(calls) < 20
    assert {s.error for s in scores if s.score is None} == {OVER_BUDGET}


def test_a_bad_labels_file_is_a_clear_error_before_any_call(project, tmp_path):
    (tmp_path / "labels.jsonl").write_text('{"question": "q", "answer": "a", "human_score": 9}\n')
    before = project.count()
    result = CliRunner().invoke(main, ["run", "--suite", "suite.jsonl"])
    assert result.exit_code == 2 and "labels.jsonl:1: human_score" in result.output
    assert project.count() == before


# -- the shift's arithmetic, on both backends ---------------------------------------------------------


def _observe(
    store: Store, run_id: str, started: str, scores: list[float], min_shift: float = 0.25, rubric: str = "r"
) -> None:
    rows.save_observation(
        store,
        rows.Observation("s1", run_id, started, started, min_shift, ("judge-v1",), rubric),
        [rows.AnchorScore(f"i{n:02d}", s) for n, s in enumerate(scores)],
    )


@pytest.fixture
def anchored(open_store):
    with open_store() as store:
        anchors = [
            rows.Anchor(Item(id=f"i{n:02d}", area=f"a{n % 4}", question=f"q{n}?"), f"answer {n}", False, 4.0)
            for n in range(20)
        ]
        rows.create_set(
            store, rows.AnchorSet("s1", "fp", "claude", "demo", "r", "run1", "2026-11-01"), anchors
        )
        _observe(store, "run1", "2026-11-01", [5.0, 3.0] * 10)
        yield store


def test_small_noise_does_not_count_as_moved(anchored):
    noisy = [5.0, 3.0] * 10
    noisy[0], noisy[3] = 4.0, 2.0  # one point off on 2 of 20 anchors
    _observe(anchored, "run2", "2026-11-02", noisy)
    report = canary_report(anchored, "run2")
    assert report is not None and report.previous_run == "run1" and report.n_pairs == 20
    expected = stats.paired_delta({f"i{n:02d}": [s] for n, s in enumerate([5.0, 3.0] * 10)},
                                  {f"i{n:02d}": [s] for n, s in enumerate(noisy)})  # fmt: skip
    assert report.shift == pytest.approx(-0.1) == pytest.approx(expected.delta)
    assert report.ci_low == expected.ci_low and report.ci_low < 0 < report.ci_high
    assert not report.moved


def test_a_whole_shift_moves_and_min_shift_bounds_it(anchored):
    _observe(anchored, "run2", "2026-11-02", [4.0, 2.0] * 10)
    report = canary_report(anchored, "run2")
    assert report is not None and report.moved and report.shift == -1.0
    assert (report.ci_low, report.ci_high) == (-1.0, -1.0)  # every anchor moved alike: no spread at all
    assert report.moved_message().startswith("the judge moved: its canary shifted by -1.00 [-1.00, -1.00]")
    assert not report.rubric_changed
    _observe(anchored, "run3", "2026-11-03", [3.0, 1.0] * 10, min_shift=1.5, rubric="edited")
    smaller = canary_report(anchored, "run3")
    assert smaller is not None and smaller.shift == -1.0 and not smaller.moved  # below min_shift
    assert smaller.rubric_changed and "graded with another rubric" in smaller.summary()


def test_the_store_keeps_sets_anchors_and_resets(anchored):
    assert rows.active_set(anchored, "fp", "demo") == rows.anchor_set(anchored, "s1")
    assert [a.item.id for a in rows.anchors(anchored, "s1")] == [f"i{n:02d}" for n in range(20)]
    assert rows.retire_sets(anchored, "claude", "demo") == 1
    assert rows.active_set(anchored, "fp", "demo") is None
    rows.record_event(anchored, rows.CanaryEvent("claude", "demo", "reset", "2026-11-05", "ana", "new model"))
    assert [e.reason for e in rows.events(anchored, "claude")] == ["new model"]
    assert rows.events(anchored, "other") == []


def test_anchors_are_drawn_round_robin_and_the_same_for_the_same_run(tmp_path):
    with Store(tmp_path) as store:
        manifest = RunManifest("run-x", "demo", "s", "h", "local", "m", "claude", "c", "correctness", "r", 1,
                               "2026-11-01T00:00:00+00:00")  # fmt: skip
        items = [Item(id=f"{a}-{i}", area=a, question=f"{a}{i}?") for a in ("x", "y") for i in range(9)]
        items.append(Item(id="z-0", area="z", question="z?"))
        store.create_run(manifest, items)
        for item in items:
            store.save_answer(Answer("run-x", item.id, 0, f"ans {item.id}"))
            store.save_judgment(Judgment("run-x", item.id, 0, 3.0, "ok", "raw", "claude", item.id,
                                         judge_fingerprint="fp"))  # fmt: skip
        drawn = draw_anchors(store, "run-x", "fp", 7)
        assert [a.item.area for a in drawn] == ["x", "y", "z", "x", "y", "x", "y"]
        assert drawn == draw_anchors(store, "run-x", "fp", 7)
        assert draw_anchors(store, "run-x", "another judge", 7) == []


def test_an_encrypted_stores_anchors_are_sealed_and_not_rejudged_without_the_key(
    project, tmp_path, monkeypatch
):
    from evals.store.crypto import new_key

    monkeypatch.setenv("EVALS_STORE_KEY", new_key())
    run("r1")
    with Store(tmp_path / "reports") as store:
        raw = store._execute("SELECT item_json, answer FROM canary_anchors").fetchall()
        assert raw and all(r[1].startswith("fernet:") and '"question":"fernet:' in r[0] for r in raw)
        (anchor_set,) = rows.sets(store)
        assert all(a.answer.startswith(("It is", "No idea")) for a in rows.anchors(store, anchor_set.set_id))
    monkeypatch.delenv("EVALS_STORE_KEY")
    before = project.count()
    run("r2")
    assert project.count() - before == 0  # the run's verdicts from the cache; the sealed anchors not sent
    assert "EVALS_STORE_KEY is not set" in card("r2")["canary"]["error"]
