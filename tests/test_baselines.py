"""Baselines that mean something (issue 11.4): which run a scorecard compares with, why, and what it
skipped; `evals runs list` and `evals runs exclude`."""

import json

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.scorecard import build_scorecard, choose_baseline
from evals.store import Store

GOOD = {f"{area}-{i:02d}": [5] for area in ("math", "chem") for i in range(20)}
BAD = {k: ([1] if k.startswith("chem") else v) for k, v in GOOD.items()}
OUTAGE = {k: [None] for k in GOOD}  # every judge call failed


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "reports") as s:
        yield s


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_after_an_outage_the_next_night_is_compared_with_the_last_good_run(store, tmp_path):
    make_run(store, "r01", GOOD)
    make_run(store, "r02", OUTAGE)  # finished, but nothing scored
    make_run(store, "r03", BAD)
    reports = str(tmp_path / "reports")
    result = invoke("report", "r03", "--fail-on-regression", "--reports", reports)
    assert result.exit_code == 1, result.output  # the regression is caught, not hidden behind 0 pairs
    outage = invoke("report", "r02", "--reports", reports)
    assert (
        "warning: run r02 is finished with 0 of 40 answers scored (0 answer and 40 judge errors)"
        in outage.output
    )
    card = build_scorecard(store, "r03")
    assert card.baseline.run_id == "r01" and card.area("chem").drift.status == "regressed"
    assert card.baseline_choice.how == "latest"
    assert [(s.run_id, s.reason) for s in card.baseline_choice.skipped] == [
        ("r02", "no answer of 40 was scored")
    ]
    assert "baseline: r01, the latest earlier finished run of suite demo and model local" in result.output
    assert "skipped r02 (no answer of 40 was scored)" in result.output
    md = (tmp_path / "reports/runs/r03/scorecard.md").read_text()
    assert "Skipped: r02 (no answer of 40 was scored)." in md
    html = (tmp_path / "reports/runs/r03/scorecard.html").read_text()
    assert 'id="baseline-choice">Baseline: <b>r01</b>' in html and "r02 (no answer of 40 was scored)" in html


def test_unfinished_and_mostly_error_runs_are_skipped_with_their_reason(store):
    make_run(store, "r01", GOOD)
    make_run(store, "r02", GOOD, status="interrupted", unanswered=list(GOOD)[:10])
    make_run(store, "r03", GOOD, status="failed")
    make_run(store, "r04", {k: ([None] if k.startswith("chem-0") else v) for k, v in GOOD.items()})
    run = make_run(store, "r05", GOOD)
    baseline, choice = choose_baseline(store, run)
    assert baseline.run_id == "r01"
    assert [(s.run_id, s.reason) for s in choice.skipped] == [
        ("r04", "error rate 25% above 5%"),
        ("r03", "status failed, not finished"),
        ("r02", "status interrupted, not finished"),
    ]
    # the gate policy's max_error_rate is the bound: a looser one accepts r04
    assert choose_baseline(store, run, max_error_rate=0.3)[0].run_id == "r04"


def test_only_runs_of_the_same_model_are_default_baselines(store):
    make_run(store, "r01", GOOD)
    make_run(store, "r02", GOOD, model_name="other-model")
    run = make_run(store, "r03", BAD)
    baseline, choice = choose_baseline(store, run)
    assert baseline.run_id == "r01" and choice.skipped == []


def test_an_approved_baseline_wins_then_a_tagged_run(store):
    make_run(store, "r01", GOOD)
    make_run(store, "r02", GOOD, tags=("baseline",))
    make_run(store, "r03", GOOD, model_name="other-model")
    make_run(store, "r04", GOOD)
    run = make_run(store, "r05", BAD)
    assert choose_baseline(store, run)[1].how == "tagged" and choose_baseline(store, run)[0].run_id == "r02"
    store.set_baseline("prod", "r04", "2026-11-30T00:00:00+00:00")
    baseline, choice = choose_baseline(store, run)
    assert (baseline.run_id, choice.how) == ("r04", "approved") and "'prod'" in choice.reason
    assert choose_baseline(store, run, "r01")[1].how == "asked"


# Issue 20.3: before, the approved baseline of any model won; a frontier run was then flagged "regressed"
# against the local model's numbers.
def test_a_frontier_run_does_not_take_the_local_models_approved_baseline_and_says_why(store, tmp_path):
    make_run(store, "r01", GOOD, model_name="local", tags=("baseline",))
    store.set_baseline("prod", "r01", "2026-11-30T00:00:00+00:00")
    make_run(store, "r02", BAD, model_name="claude")
    baseline, choice = choose_baseline(store, store.run("r02"))
    assert baseline is None and choice.how == "none"
    # named once, though it is tagged baseline too
    assert [(s.run_id, s.reason) for s in choice.skipped] == [
        ("r01", "approved baseline prod is model local, this run is model claude: "
                "pass --baseline prod to compare across models"),
    ]  # fmt: skip
    reports = str(tmp_path / "reports")
    result = invoke("report", "r02", "--fail-on-regression", "--reports", reports)
    assert result.exit_code == 0, result.output  # nothing regressed: nothing of its kind to compare with
    assert "pass --baseline prod to compare across models" in result.output
    # asked for by name, any run is compared, as the upgrade gate does
    asked = invoke("report", "r02", "--baseline", "prod", "--fail-on-regression", "--reports", reports)
    assert asked.exit_code == 1 and "regressed: chem" in asked.output
    # the frontier model's own runs are its baselines; the local model's tagged run is named, not taken
    make_run(store, "r03", GOOD, model_name="claude")
    make_run(store, "r04", GOOD, model_name="local", tags=("baseline",))
    baseline, choice = choose_baseline(store, make_run(store, "r05", BAD, model_name="claude"))
    assert (baseline.run_id, choice.how) == ("r03", "latest")
    assert [s.reason for s in choice.skipped] == [
        "approved baseline prod is model local, this run is model claude: pass --baseline prod to compare "
        "across models",
        "run r04 tagged baseline is model local, this run is model claude: pass --baseline r04 to compare "
        "across models",
    ]


def test_a_run_judged_by_another_judge_or_rubric_is_no_default_baseline(store):
    make_run(store, "r01", GOOD, judge_model="gpt-judge")
    store.set_baseline("prod", "r01", "2026-11-30T00:00:00+00:00")
    make_run(store, "r02", GOOD, rubric_hash="r0")  # graded with an older version of the rubric
    make_run(store, "r03", GOOD)
    run = make_run(store, "r04", BAD)
    baseline, choice = choose_baseline(store, run)
    assert (baseline.run_id, choice.how) == ("r03", "latest")
    assert [s.reason for s in choice.skipped] == [
        "approved baseline prod is judged by claude (gpt-judge), this run by claude (claude-test): "
        "pass --baseline prod to compare across judges"
    ]
    store.set_tag("r03", "excluded")
    baseline, choice = choose_baseline(store, run)
    assert baseline is None and "judge claude (claude-test) and rubric correctness" in choice.reason
    assert choose_baseline(store, run, "r02")[0].run_id == "r02"  # asked: compared, rubric and all


def test_report_reads_the_gate_policy_for_the_error_bound(store, tmp_path):
    make_run(store, "r01", GOOD)
    make_run(store, "r02", {k: ([None] if k.startswith("chem-0") else v) for k, v in GOOD.items()})
    make_run(store, "r03", GOOD)
    reports = tmp_path / "reports"
    assert invoke("report", "r03", "--reports", str(reports)).exit_code == 0
    assert json.loads((reports / "runs/r03/scorecard.json").read_text())["baseline"]["run_id"] == "r01"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({"max_error_rate": 0.3}))
    result = invoke("report", "r03", "--policy", str(tmp_path / "policy.yaml"), "--reports", str(reports))
    assert result.exit_code == 0, result.output
    assert json.loads((reports / "runs/r03/scorecard.json").read_text())["baseline"]["run_id"] == "r02"


def listed(reports, *args):
    result = invoke("runs", "list", "--json", "--reports", str(reports), *args)
    assert result.exit_code == 0, result.output
    return {row["run_id"]: row for row in map(json.loads, result.output.splitlines())}


def test_runs_list_shows_status_error_rate_suite_model_and_tags(store, tmp_path):
    make_run(store, "r01", GOOD, tags=("nightly",))
    make_run(store, "r02", OUTAGE, status="interrupted")
    make_run(store, "r03", GOOD, suite="other")
    runs = listed(tmp_path / "reports")
    assert list(runs) == ["r01", "r02", "r03"]
    assert (
        runs["r01"]["status"] == "finished"
        and runs["r01"]["error_rate"] == 0
        and runs["r01"]["tags"] == ["nightly"]
    )
    assert (runs["r02"]["status"], runs["r02"]["error_rate"], runs["r02"]["scored"]) == (
        "interrupted",
        1.0,
        0,
    )
    assert (runs["r03"]["suite_name"], runs["r03"]["model_name"]) == ("other", "local")
    assert list(listed(tmp_path / "reports", "--suite", "other")) == ["r03"]
    table = invoke("runs", "list", "--reports", str(tmp_path / "reports")).output
    assert "100%" in table and "r02" in table  # the table, for people


def test_an_excluded_run_leaves_baseline_choice_and_history(store, tmp_path):
    make_run(store, "r01", GOOD)
    make_run(store, "r02", BAD)  # a wrong run: the model was misconfigured
    make_run(store, "r03", BAD)
    reports = str(tmp_path / "reports")
    assert build_scorecard(store, "r03").baseline.run_id == "r02"
    result = invoke("runs", "exclude", "r02", "--reports", reports)
    assert result.exit_code == 0 and "excluded" in result.output
    card = build_scorecard(store, "r03")
    assert card.baseline.run_id == "r01" and card.area("chem").drift.status == "regressed"
    assert [h.run_id for h in card.history] == ["r01", "r03"]
    assert "excluded" in store.run("r02").tags
    assert listed(reports)["r02"]["tags"] == ["excluded"]
    assert invoke("index", "--reports", reports).exit_code == 0
    assert "<td>finished (excluded)</td>" in (tmp_path / "reports/index.html").read_text()
    assert invoke("runs", "exclude", "r02", "--undo", "--reports", reports).exit_code == 0
    assert build_scorecard(store, "r03").baseline.run_id == "r02"


def test_excluding_an_unknown_run_is_one_line_and_exit_2(tmp_path, store):
    make_run(store, "r01", GOOD)
    result = CliRunner().invoke(main, ["runs", "exclude", "nope", "--reports", str(tmp_path / "reports")])
    assert result.exit_code == 2 and "no run 'nope'" in result.output
