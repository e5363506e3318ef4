"""Per-area aggregates (``run_areas``): history, trend and index read them, and they agree with the
scorecard built from every item, on SQLite and on PostgreSQL."""

import math
import os

import pandas as pd
import pytest
from builders import make_run
from click.testing import CliRunner
from scipy import stats as sp

from evals import stats
from evals.cli import main
from evals.config import ScorecardSettings
from evals.render.pages import write_index, write_scorecard
from evals.results import result_rows
from evals.scorecard import build_scorecard
from evals.scorecard.baselines import run_health
from evals.scorecard.figures import health
from evals.store import Store
from evals.store.aggregates import OVERALL
from evals.store.export import export_history

# Samples and errors: item a [5,5,5] and b [1, error, error] give geo 3.0 (mean of item means), not 4.0.
RUNS = {
    "r01": {"geo-a": [5, 5, 5], "geo-b": [1, None, None], "math-a": [4, 3, 4], "math-b": [2, 2, 1]},
    "r02": {"geo-a": [4, 5, 5], "geo-b": [2, 2, None], "math-a": [5, 5, 4], "math-b": [1, None, 3]},
    "r03": {"geo-a": [3, 4, 5], "geo-b": [None, None, None], "math-a": [5, 4, 4], "math-b": [3, 3, 3]},
}


def stored_rows(store):
    return store._execute("SELECT run_id, area FROM run_areas ORDER BY run_id, area").fetchall()


def make_history(store):
    for run_id, scores in RUNS.items():
        make_run(store, run_id, scores)


def test_history_and_index_figures_equal_the_scorecards_built_from_every_item(open_store):
    with open_store() as store:
        make_history(store)
        settings = ScorecardSettings(history=10)
        last = build_scorecard(store, "r03", settings=settings)
        cards = {run_id: build_scorecard(store, run_id, settings=settings) for run_id in RUNS}
        assert [p.run_id for p in last.history] == list(RUNS)
        for point in last.history:
            card = cards[point.run_id]
            assert point.overall == card.overall.mean  # exactly: one computation
            assert point.areas == {a.area: a.mean for a in card.areas if a.mean is not None}
        assert last.history[0].areas["geo"] == 3.0
        assert all(p.areas.get("geo") is not None for p in last.history)
        aggregates = store.aggregates(list(RUNS))
        for run_id, card in cards.items():
            overall = next(a for a in aggregates[run_id] if a.area == OVERALL)
            assert (overall.mean, overall.ci_low, overall.ci_high) == (
                card.overall.mean,
                card.overall.ci_low,
                card.overall.ci_high,
            )
            assert run_health(store, run_id) == health(result_rows(store.results(run_id)))


def test_index_shows_each_runs_overall_mean_and_interval(open_store, tmp_path):
    with open_store() as store:
        make_history(store)
        card = build_scorecard(store, "r02")
        page = write_index(store).read_text()
    assert f"{card.overall.mean:.2f}" in page
    assert f"{card.overall.ci_low:.2f}" in page


def test_an_ended_run_stores_its_aggregates_and_a_status_change_drops_them(open_store):
    with open_store() as store:
        make_run(store, "r01", RUNS["r01"])
        store.aggregates(["r01"])
        assert stored_rows(store) == [("r01", OVERALL), ("r01", "geo"), ("r01", "math")]
        store.set_status("r01", "running")  # resumed: the counts no longer hold
        assert stored_rows(store) == []
        assert store.aggregates(["r01"])["r01"]  # a running run's are computed, not kept
        assert stored_rows(store) == []
        store.set_status("r01", "interrupted")  # ended again: its counts hold until it is resumed
        store.aggregates(["r01"])
        assert len(stored_rows(store)) == 3


def test_history_reads_the_stored_aggregates_not_the_items(open_store):
    with open_store() as store:
        make_history(store)
        before = build_scorecard(store, "r03").history
        # Had history re-read every item, losing r01's judgments would change its point.
        store._execute("DELETE FROM judgments WHERE run_id = 'r01'")
        assert build_scorecard(store, "r03").history == before


def test_runs_without_aggregates_get_them_once_on_first_read_even_by_a_read_only_command(open_store):
    with open_store() as store:
        make_history(store)
        store._execute("DELETE FROM run_areas")  # a store written before aggregates existed
        expected = build_scorecard(store, "r03").history
        store._execute("DELETE FROM run_areas")
    with open_store(readonly=True) as reader:
        assert build_scorecard(reader, "r03").history == expected
    with open_store() as store:
        assert {r[0] for r in stored_rows(store)} == set(RUNS)


def test_a_read_only_store_computes_missing_aggregates_in_memory(tmp_path, monkeypatch):
    with Store(tmp_path) as store:
        make_history(store)
        expected = build_scorecard(store, "r03").history
        store._execute("DELETE FROM run_areas")
    if os.geteuid() == 0:  # root writes any file: make the store one this process may not write
        monkeypatch.setattr("evals.store.sqlite._writable", lambda path: False)
    else:
        os.chmod(tmp_path / "evals.db", 0o444)
    try:
        with Store(tmp_path, readonly=True) as reader:
            assert build_scorecard(reader, "r03").history == expected
            assert stored_rows(reader) == []
    finally:
        os.chmod(tmp_path / "evals.db", 0o644)


def test_imported_and_copied_runs_arrive_with_their_aggregates(tmp_path, store_url):
    source = tmp_path / "source"
    with Store(source) as store:
        make_history(store)
        for run_id in RUNS:
            store.export_jsonl(run_id)
        expected = build_scorecard(store, "r03").history
    target = tmp_path / "target"
    done = CliRunner().invoke(main, ["import", str(source / "runs"), "--reports", str(target)])
    assert done.exit_code == 0, done.output
    with Store(target) as store:
        assert {r[0] for r in stored_rows(store)} == set(RUNS)
        assert build_scorecard(store, "r03").history == expected
    copied = CliRunner().invoke(main, ["store", "copy", str(source / "evals.db"), store_url])
    assert copied.exit_code == 0, copied.output
    with Store(tmp_path / "other", url=store_url) as store:
        assert {r[0] for r in stored_rows(store)} == set(RUNS)
        assert build_scorecard(store, "r03").history == expected


def test_another_pass_score_recounts_the_pass_figures(open_store):
    with open_store() as store:
        make_run(store, "r01", RUNS["r01"])
        four = next(a for a in store.aggregates(["r01"])["r01"] if a.area == "math")
        five = next(a for a in store.aggregates(["r01"], pass_score=5)["r01"] if a.area == "math")
    assert four.pass_rate == pytest.approx((2 / 3 + 0) / 2)
    assert five.pass_rate == 0


def test_mean_interval_from_sufficient_statistics_matches_the_item_means():
    by_item = {"a": [5, 4], "b": [1], "c": [3, 3, 2], "d": [4]}
    fresh = stats.mean_ci(by_item)
    means = [4.5, 1.0, 8 / 3, 4.0]
    assert fresh.mean == pytest.approx(sum(means) / 4)
    sums = stats.item_mean_sums(by_item)
    assert (sums.n_items, sums.n_scores, sums.low, sums.high) == (4, 7, 1.0, 4.5)
    assert stats.mean_ci_of_sums(sums) == fresh
    sd = math.sqrt(sum((m - fresh.mean) ** 2 for m in means) / 3)
    low, high = sp.t.interval(0.95, 3, loc=fresh.mean, scale=sd / 2)
    assert (fresh.ci_low, fresh.ci_high) == (pytest.approx(max(1, low)), pytest.approx(min(5, high)))


def test_index_takes_regressed_areas_from_the_summary_and_rereads_a_card_changed_since(tmp_path):
    with Store(tmp_path) as store:
        make_run(store, "r01", {f"geo-{i}": [5] for i in range(20)})
        make_run(store, "r02", {f"geo-{i}": [1] for i in range(20)})
        card = build_scorecard(store, "r02")
        assert card.regressed() == ["geo", OVERALL]
        paths = write_scorecard(card, tmp_path / "runs" / "r02")
        assert (tmp_path / "runs/r02/scorecard.summary.json").exists()
        assert "geo, (overall)" in write_index(store).read_text()
        paths["json"].write_text("{ edited by hand")  # the summary no longer describes this card
        page = write_index(store).read_text()
    assert "geo, (overall)" not in page
    assert "not reported" in page


def test_exported_area_means_and_pass_rates_are_the_scorecards(open_store, tmp_path):
    with open_store() as store:
        make_history(store)
        cards = {run_id: build_scorecard(store, run_id) for run_id in RUNS}
        done = export_history(store, tmp_path / "history")
    areas = pd.read_parquet(done.areas)
    for run_id, card in cards.items():
        for a in card.areas:
            row = areas[(areas["run_id"] == run_id) & (areas["area"] == a.area)].iloc[0]
            assert (row["mean"], row["pass_rate"]) == (a.mean, a.pass_rate)
    # geo of r01: a [5,5,5] passes 3/3, b [1] passes 0/1: the mean of the item fractions, not 3 of 4
    geo = areas[(areas["run_id"] == "r01") & (areas["area"] == "geo")].iloc[0]
    assert geo["pass_rate"] == 0.5
