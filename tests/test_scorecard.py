"""The scorecard: per-area numbers with intervals, weak areas, paired drift, history, cost."""

import dataclasses
import json

import pytest
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.config import ScorecardSettings
from evals.records import Flag
from evals.render.pages import write_scorecard
from evals.results import ResultRow
from evals.scorecard import Scorecard, build_scorecard, resolve_baseline
from evals.scorecard.models import SCORECARD_SCHEMA_VERSION
from evals.store import Store

# 20 items in each of three areas: math stays strong, geo is weak, chem collapses in the candidate.
BASE = {f"{area}-{i:02d}": [s] for area, s in (("math", 5), ("geo", 2), ("chem", 5)) for i in range(20)}
CAND = {k: ([1] if k.startswith("chem") else v) for k, v in BASE.items()}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "reports") as s:
        yield s


def areas(card):
    return {a.area: a for a in card.areas}


def test_areas_carry_n_mean_interval_pass_rate_and_errors(store):
    scores = {f"math-{i}": [4 + i % 2] for i in range(10)} | {"geo-1": [None], "geo-2": [3]}
    make_run(store, "r01", scores)
    card = build_scorecard(store, "r01")
    math = areas(card)["math"]
    assert math.n == 10 and math.mean == pytest.approx(4.5)
    assert math.ci_low < 4.5 < math.ci_high
    assert math.pass_rate == 1.0 and math.pass_ci_low < 1.0
    geo = areas(card)["geo"]
    assert geo.n == 1 and geo.mean == 3 and geo.judge_errors == 1  # the error is not a score
    assert card.baseline is None and math.drift.status == "new" and math.drift.delta is None


def test_a_real_drop_is_regressed_and_named_with_its_items(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", CAND)
    card = build_scorecard(store, "r02")
    assert card.baseline.run_id == "r01"
    by_area = areas(card)
    assert by_area["chem"].drift.status == "regressed"
    assert by_area["chem"].drift.delta == pytest.approx(-4)
    assert by_area["math"].drift.status == "unchanged" and by_area["geo"].drift.status == "unchanged"
    assert card.weak_areas[0] == "chem" and "geo" in card.weak_areas and "math" not in card.weak_areas
    assert card.strong_areas == ["math"]
    worst = card.regressed_items[0]
    assert worst.area == "chem" and (worst.baseline_score, worst.score) == (5, 1)
    assert worst.baseline_answer and worst.rationale


def test_a_lower_mean_that_is_noise_is_not_regressed_but_not_shown_non_inferior(store):
    noisy = dict(BASE)
    for i in range(0, 20, 5):  # four chem items lose a point: -0.2 on average
        noisy[f"chem-{i:02d}"] = [4]
    make_run(store, "r01", BASE)
    make_run(store, "r02", noisy)
    card = build_scorecard(store, "r02")
    chem = areas(card)["chem"]
    # not significant (the interval holds 0), but its lower end reaches the −0.3 margin: a warning only
    assert chem.drift.delta_ci_low < -0.3 < 0 < chem.drift.delta_ci_high
    assert chem.drift.status == "not shown non-inferior" and "chem" not in card.regressed()
    assert card.decision is not None and card.decision.outcome == "pass"
    assert any(w.startswith("area chem: not shown non-inferior") for w in card.decision.warnings)


def test_added_removed_and_changed_items_are_listed_not_compared(store):
    make_run(store, "r01", {"math-1": [5], "math-2": [5], "math-3": [5]})
    make_run(
        store, "r02", {"math-1": [5], "math-2": [1], "math-4": [1]}, questions={"math-2": "a new wording?"}
    )
    card = build_scorecard(store, "r02")
    changes = card.item_changes
    assert changes.model_dump() == {
        "paired": ["math-1"],
        "changed": ["math-2"],
        "added": ["math-4"],
        "removed": ["math-3"],
    }
    assert areas(card)["math"].drift.n_pairs == 1
    assert card.regressed_items == []


def test_baseline_defaults_to_the_latest_earlier_run_tagged_baseline(store):
    make_run(store, "r01", BASE, tags=("baseline",))
    make_run(store, "r02", BASE)
    r3 = make_run(store, "r03", CAND)
    make_run(store, "r04", BASE, suite="other")
    assert resolve_baseline(store, r3, None).run_id == "r01"
    assert resolve_baseline(store, r3, "r02").run_id == "r02"
    assert resolve_baseline(store, store.run("r02"), None).run_id == "r01"
    assert resolve_baseline(store, store.run("r01"), None) is None


# Issue 20.3: before, one line joined the runs of every judge and rubric (marking where they changed);
# now each judge and rubric draws its own line, and the model upgraded behind a name stays marked on it.
def test_history_keeps_one_line_per_model_judge_and_rubric_and_marks_a_model_upgrade(store):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE, model_id="qwen-2")
    make_run(store, "r03", BASE, model_id="qwen-2", judge_model="gpt-judge")
    make_run(store, "r04", BASE, model_id="qwen-2", rubric_hash="r2")
    make_run(store, "r05", BASE, model_id="qwen-2", model_name="claude")
    make_run(store, "r06", CAND, model_id="qwen-2")
    history = build_scorecard(store, "r06", settings=ScorecardSettings(history=3)).history
    assert [h.run_id for h in history] == ["r01", "r02", "r06"]
    assert [h.changes for h in history] == [[], ["model"], []]
    assert history[-1].areas["chem"] == 1
    assert [h.run_id for h in build_scorecard(store, "r03").history] == ["r03"]
    assert [h.run_id for h in build_scorecard(store, "r05").history] == ["r05"]


def test_cost_counts_tokens_latency_and_prices(store):
    make_run(store, "r01", {"math-1": [5, 4], "math-2": [3, 3]})
    cost = build_scorecard(store, "r01").cost
    assert cost.model.tokens_in == 40 and cost.model.tokens_out == 20
    assert cost.model.latency_ms["p50"] == pytest.approx(100.5)
    assert cost.judge.tokens_in == 200 and cost.model.cost is None


def test_cost_is_priced_per_token_for_apis_and_per_hour_for_servers(store):
    per_token = {"price_in_per_mtok": 2.0, "price_out_per_mtok": 10.0}
    make_run(store, "r01", {"math-1": [5]}, model_config=per_token)
    cost = build_scorecard(store, "r01").cost.model
    assert cost.cost == pytest.approx(10 / 1e6 * 2.0 + 5 / 1e6 * 10.0)
    make_run(store, "r02", {"math-1": [5]}, model_config={"price_per_hour": 3.0},
             ended_at="2026-11-02T00:30:00+00:00")  # fmt: skip
    assert build_scorecard(store, "r02").cost.model.cost == pytest.approx(
        1.5
    )  # no call times kept: wall time


def test_a_server_is_charged_for_the_time_it_was_busy_with_the_run(store):
    make_run(store, "r01", {"math-1": [5], "math-2": [5], "math-3": [5]}, model_config={"price_per_hour": 3.6},
             ended_at="2026-11-01T05:00:00+00:00")  # fmt: skip
    # Calls in flight over [0, 2] s, [1, 3] s (overlapping) and [10, 11] s: busy 4 s, not 5 summed nor 5 h of wall time.
    for item, (end, ms) in {
        "math-1": (2.0, 2000.0),
        "math-2": (3.0, 2000.0),
        "math-3": (11.0, 1000.0),
    }.items():
        answer = store.answers("r01")[(item, 0)]
        store.save_answer(dataclasses.replace(answer, finished_at=1e9 + end, latency_ms=ms))
    assert build_scorecard(store, "r01").cost.model.cost == pytest.approx(3.6 * 4 / 3600)


def test_report_writes_three_renderings_from_one_json(store, tmp_path):
    make_run(store, "r01", BASE)
    make_run(store, "r02", CAND)
    result = CliRunner().invoke(
        main, ["report", "--reports", str(tmp_path / "reports")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "runs" / "r02"
    card = json.loads((folder / "scorecard.json").read_text())
    assert {"run", "baseline", "overall", "areas", "weak_areas"} <= set(card)
    assert "regressed" in (folder / "scorecard.md").read_text()
    assert "chem" in result.output and "regressed" in result.output
    html = (folder / "scorecard.html").read_text()
    assert "Content-Security-Policy" in html and "http://" not in html and "https://" not in html


def test_scorecard_json_is_the_typed_scorecard_read_back_equal(store, tmp_path):
    make_run(store, "r01", BASE)
    make_run(store, "r02", {**CAND, "math-00": [5, None]})
    card = build_scorecard(store, "r02")
    paths = write_scorecard(card, tmp_path / "out")
    text = paths["json"].read_text()
    assert Scorecard.model_validate_json(text) == card
    data = json.loads(text)
    assert data["schema_version"] == SCORECARD_SCHEMA_VERSION == card.schema_version
    assert data["baseline_choice"]["run_id"] == "r01" and data["areas"][0]["drift"]["n_pairs"] == 20


def test_results_rows_round_trip_through_the_typed_record(store, tmp_path):
    make_run(store, "r01", {"math-1": [5, None], "math-2": [3, 4]})
    path = store.export_jsonl("r01")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [ResultRow.from_row(line) for line in lines]
    assert [r.score for r in rows] == [5.0, None, 3.0, 4.0]
    assert rows[1].error_kind == "judge" and rows[1].schema_version == 1
    assert all(ResultRow.from_row(r.to_dict()) == r for r in rows)
    for line, row in zip(lines, rows, strict=True):  # every field of the line is kept as it was written
        assert {k: v for k, v in row.to_dict().items() if k in line} == line
    # a panel's member scores, tags and flags: as JSON, and a copy the line's reader may change freely
    row = dataclasses.replace(
        rows[0], member_scores={"a": 5.0, "b": 4.0}, tags=("x", "y"), flags=(Flag("grader_address", (2, 9)),)
    )
    line = row.to_dict()
    assert line == {
        **dataclasses.asdict(row), "tags": ["x", "y"], "flags": [{"kind": "grader_address", "span": [2, 9]}]
    }  # fmt: skip
    assert list(line) == [f.name for f in dataclasses.fields(ResultRow)]
    line["member_scores"]["a"] = 1.0
    assert (
        row.member_scores == {"a": 5.0, "b": 4.0}
        and ResultRow.from_row(json.loads(json.dumps(row.to_dict()))) == row
    )


def test_the_scorecard_names_how_the_baseline_was_judged_differently(store, tmp_path):
    make_run(store, "r01", BASE)
    make_run(store, "r02", BASE, judge_config={"temperature": 0.7, "max_concurrency": 99})
    card = build_scorecard(store, "r02")
    assert card.judged_differently == ["judge setting temperature 0.7 vs None"]
    html = (write_scorecard(card, tmp_path / "out")["html"]).read_text()
    assert (
        'id="judged-differently">The baseline was judged differently (judge setting temperature 0.7 vs None)'
        in html
    )
    result = CliRunner().invoke(main, ["report", "r02", "--reports", str(tmp_path / "reports")])
    assert "judged differently from the baseline: judge setting temperature 0.7 vs None" in result.output
    make_run(store, "r03", BASE, judge_config={"temperature": 0.7, "max_concurrency": 1})
    assert build_scorecard(store, "r03").judged_differently == []  # concurrency never changes a verdict


def test_the_index_still_links_a_scorecard_written_by_the_previous_release(store, tmp_path):
    make_run(store, "r01", BASE)
    folder = tmp_path / "reports/runs/r01"
    folder.mkdir(parents=True)
    old = {"schema_version": 1, "areas": [{"area": "chem", "status": "regressed", "delta": -2.0}]}
    (folder / "scorecard.json").write_text(json.dumps(old))
    (folder / "scorecard.html").write_text("<html></html>")
    result = CliRunner().invoke(main, ["index", "--reports", str(tmp_path / "reports")])
    assert result.exit_code == 0 and "unreadable" not in result.output
    index = (tmp_path / "reports/index.html").read_text()
    assert 'href="runs/r01/scorecard.html"' in index and '<td class="bad">chem</td>' in index
