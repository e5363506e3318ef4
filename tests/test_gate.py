"""The gate: verdicts, exit codes, JUnit, baselines and rollback; end to end on the fake servers."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.config import GateSettings
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.render.gate import junit
from evals.scorecard.decision import decide
from evals.store import Store

BASE = {f"{area}-{i:02d}": [s] for area, s in (("math", 5), ("geo", 4), ("chem", 5)) for i in range(20)}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "reports") as s:
        yield s


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_same_scores_pass(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE)
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "pass" and verdict.exit_code == 0
    assert {c.name for c in verdict.checks} == {"overall", "area math", "area geo", "area chem", "errors"}


def test_a_drop_in_one_area_fails_and_names_it(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", {k: ([2] if k.startswith("chem") else v) for k, v in BASE.items()})
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "fail" and verdict.exit_code == 1
    failed = [c.name for c in verdict.checks if not c.passed]
    assert "area chem" in failed and "area math" not in failed
    root = ET.fromstring(junit(verdict))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"overall", "area math", "area geo", "area chem", "errors"}
    assert cases["area chem"].find("failure") is not None and cases["area math"].find("failure") is None
    assert root.get("failures") == str(len(failed))


def test_errors_above_the_limit_fail(store):
    make_run(store, "r01", BASE)
    make_run(
        store, "r02", {k: ([None] if k.endswith(("01", "02", "03", "04")) else v) for k, v in BASE.items()}
    )
    verdict = decide(store, "r02", "r01", GateSettings())
    assert [c.name for c in verdict.checks if not c.passed] == ["errors"]


def test_floors_fail_a_weak_area_even_without_a_drop(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE)
    verdict = decide(store, "r02", "r01", GateSettings(floors={"geo": {"mean": 4.5}}))
    assert verdict.outcome == "fail" and "floor" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ({"suite": "other"}, "different suites"),
        ({"judge_model": "gpt-judge"}, "judged differently"),
        ({"rubric_hash": "r2"}, "judged differently"),
    ],
)
def test_refuses_to_decide_across_suites_or_judges(store, candidate, reason):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE, **candidate)
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide" and verdict.exit_code == 2 and reason in verdict.reasons[0]


def test_judge_change_can_be_allowed_explicitly(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE, judge_model="gpt-judge")
    assert decide(store, "r02", "r01", GateSettings(), allow_judge_change=True).outcome == "pass"


def test_too_few_pairs_cannot_decide(store):
    few = {f"math-{i}": [5] for i in range(5)}
    make_run(store, "r01", few)
    make_run(store, "r02", few)
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide" and "only 5 items are scored in both runs" in verdict.reasons[0]


# pairs that are pairs, runs that are finished (issue 11.3) ------------------------------------------------

ITEMS24 = {f"math-{i:02d}": [5] for i in range(24)}


def test_a_baseline_killed_halfway_cannot_decide_and_pairs_count_only_scored_items(store):
    # The baseline was killed with 12 of its 24 items scored: 12 pairs, not "24 paired items".
    make_run(store, "r01", ITEMS24, unanswered=[f"math-{i:02d}" for i in range(12, 24)], status="interrupted")
    make_run(store, "r02", ITEMS24)
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide" and verdict.exit_code == 2
    assert verdict.overall.n_pairs == 12
    why = " ".join(verdict.reasons)
    assert "baseline r01 is interrupted, not finished (12 of 24 answers scored)" in why
    assert "only 12 items are scored in both runs (the gate needs 20)" in why
    assert "24 paired" not in why


def test_a_finished_baseline_with_half_its_items_unscored_is_too_thin(store):
    make_run(store, "r01", {k: ([None] if int(k[-2:]) >= 12 else v) for k, v in ITEMS24.items()})
    make_run(store, "r02", ITEMS24)
    verdict = decide(store, "r02", "r01", GateSettings(min_pairs=10))
    assert verdict.outcome == "cannot decide" and verdict.overall.n_pairs == 12
    assert any(
        "the baseline r01 is too thin: 0 answer and 12 judge errors in 24 answers" in r
        for r in verdict.reasons
    )


def test_a_baseline_whose_every_call_failed_cannot_decide_instead_of_failing(store):
    make_run(store, "r01", {k: [None] for k in BASE})  # a judge outage: every verdict failed
    make_run(store, "r02", BASE)
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide" and verdict.exit_code == 2 and verdict.checks == []
    assert any("the baseline r01 has no scored answer (60 of 60 failed)" in r for r in verdict.reasons)


def test_an_unfinished_candidate_cannot_decide(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE, status="running")
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide"
    assert "the candidate r02 is running, not finished" in verdict.reasons[0]
    assert "evals run --resume r02" in verdict.reasons[0]


def test_items_with_errors_on_one_side_are_not_pairs(store):
    # 25 items; 5 failed in the baseline: 20 pairs, exactly the minimum, and their Δ is over those 20.
    items = {f"math-{i:02d}": [4] for i in range(25)}
    make_run(store, "r01", {k: ([None] if int(k[-2:]) < 5 else [3]) for k in items})
    make_run(store, "r02", items)
    verdict = decide(store, "r02", "r01", GateSettings(max_error_rate=0.25))
    assert verdict.overall.n_pairs == 20 and verdict.overall.delta == pytest.approx(1.0)
    assert verdict.outcome == "pass" and "over 20 paired items" in verdict.checks[0].message


# judged the same way (issue 11.2, gate side) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "named"),
    [
        ({"judge_model": "gpt-judge"}, "judge model 'gpt-judge' vs 'claude-test'"),
        ({"rubric_hash": "r2"}, "rubric correctness@r2 vs correctness@r1"),
        ({"judge_config": {"temperature": 0.7}}, "judge setting temperature 0.7 vs None"),
        ({"judge_config": {"base_url": "https://other.example/v1"}}, "judge setting base_url"),
        ({"judge_config": {"extra_body": {"top_k": 5}}}, "judge setting extra_body differs"),
    ],
)
def test_a_different_judge_identity_or_rubric_cannot_decide_and_is_named(store, candidate, named):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE, **candidate)
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide" and verdict.reasons[0].startswith("judged differently: ")
    assert named in verdict.reasons[0]


def test_judge_settings_that_never_change_a_verdict_do_not_count(store):
    make_run(store, "r01", BASE, judge_config={"max_concurrency": 4, "timeout_s": 60, "price_in_per_mtok": 3})
    make_run(store, "r02", BASE, judge_config={"max_concurrency": 16, "timeout_s": 30, "max_retries": 9})
    assert decide(store, "r02", "r01", GateSettings()).outcome == "pass"


def test_cli_gate_baselines_summary_and_rollback(store, tmp_path, monkeypatch):
    make_run(store, "r01", BASE)
    make_run(store, "r02", {k: ([2] if k.startswith("chem") else v) for k, v in BASE.items()})
    reports = str(tmp_path / "reports")
    assert invoke("baseline", "set", "r01", "--name", "prod", "--reports", reports).exit_code == 0
    listed = invoke("baseline", "list", "--reports", reports)
    assert "prod" in listed.output and "r01" in listed.output
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("gate", "--candidate", "r02", "--baseline", "prod", "--reports", reports,
                    "--junit", str(tmp_path / "junit.xml"))  # fmt: skip
    assert result.exit_code == 1
    assert "FAIL" in summary.read_text() and "area chem" in summary.read_text()
    assert ET.parse(tmp_path / "junit.xml").getroot().get("failures") == "2"  # overall and chem
    missing = invoke("gate", "--candidate", "nope", "--baseline", "prod", "--reports", reports)
    assert missing.exit_code == 2 and "cannot decide" in missing.output

    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"models": {"local": {"model": "new-model"}}}))
    shown = invoke("rollback", "--to", "prod", "--reports", reports)
    assert shown.exit_code == 0 and "qwen" in shown.output
    assert "new-model" in (tmp_path / "evals.yaml").read_text()  # only shown, not written
    assert invoke("rollback", "--to", "prod", "--write", "--reports", reports).exit_code == 0
    assert yaml.safe_load((tmp_path / "evals.yaml").read_text())["models"]["local"]["model"] == "qwen"


def test_compare_prints_the_paired_analysis(store, tmp_path):
    make_run(store, "r01", BASE)
    make_run(store, "r02", {k: ([2] if k.startswith("chem") else v) for k, v in BASE.items()})
    result = invoke("compare", "r01", "r02", "--reports", str(tmp_path / "reports"))
    assert result.exit_code == 0 and "chem" in result.output and "regressed" in result.output


def test_end_to_end_baseline_then_candidate_on_fake_servers(tmp_path, monkeypatch):
    """Two real runs through the SDKs: the candidate model forgets chemistry; the gate catches it."""
    suite = [{"id": f"{a}-{i}", "area": a, "question": f"{a} question {i}?", "reference": f"{a}{i}"}
             for a in ("chem", "math") for i in range(12)]  # fmt: skip
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in suite))
    refs = {s["question"]: s["reference"] for s in suite}

    def good(q):
        return f"It is {refs[q]}."

    def forgets_chem(q):
        return "no idea" if q.startswith("chem") else good(q)

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    with (
        FakeOpenAI(text_reply(good)) as prod,
        FakeOpenAI(text_reply(forgets_chem)) as cand,
        FakeAnthropic(grade_by_reference) as judge,
    ):
        config = {
            "models": {"prod": {"base_url": prod.url, "model": "m1"}, "candidate": {"base_url": cand.url, "model": "m2"}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test"}},
            "judges_dir": str(Path(__file__).parent.parent / "judges"),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        assert invoke("run", "--suite", "suite.jsonl", "--model", "prod", "--run-id", "base").exit_code == 0
        assert invoke("baseline", "set", "base", "--name", "prod").exit_code == 0
        assert (
            invoke("run", "--suite", "suite.jsonl", "--model", "candidate", "--run-id", "cand").exit_code == 0
        )
        same = invoke("run", "--suite", "suite.jsonl", "--model", "prod", "--run-id", "again")
        assert same.exit_code == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_pairs: 10\n")
    failing = invoke("gate", "--candidate", "cand", "--baseline", "prod", "--policy", str(policy),
                     "--junit", str(tmp_path / "j.xml"))  # fmt: skip
    assert failing.exit_code == 1 and "area chem" in failing.output
    failures = [c.get("name") for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase") if len(c)]
    assert failures == ["overall", "area chem"]
    passing = invoke("gate", "--candidate", "again", "--baseline", "prod", "--policy", str(policy))
    assert passing.exit_code == 0, passing.output


def test_without_baseline_the_gate_takes_the_approved_one_or_cannot_decide(store, tmp_path):
    make_run(store, "r01", BASE)
    make_run(store, "r02", {k: ([2] if k.startswith("chem") else v) for k, v in BASE.items()})
    reports = str(tmp_path / "reports")
    latest = invoke("gate", "--candidate", "r02", "--reports", reports)  # same model: its latest finished run
    assert latest.exit_code == 1 and "baseline r01: the latest earlier finished run" in latest.output
    store.set_tag("r01", "excluded")  # a wrong run: out of baseline choice
    nothing = invoke("gate", "--candidate", "r02", "--reports", reports)
    assert nothing.exit_code == 2 and "no baseline given and none to choose" in nothing.output
    store.set_tag("r01", "excluded", present=False)
    assert invoke("baseline", "set", "r01", "--name", "prod", "--reports", reports).exit_code == 0
    approved = invoke("gate", "--candidate", "r02", "--reports", reports)
    assert approved.exit_code == 1 and "baseline r01: the approved baseline 'prod'" in approved.output
