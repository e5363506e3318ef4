"""People's scores feed the numbers (issue 21 items 2 and 3 of the decision): the scorecard shows each area's
PPI++ corrected mean beside the judge's when a random draw was scored, and `gate: {means: corrected}`
decides an area on the corrected Δ where both runs have enough random human scores, saying which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.store import Store

N = 30
BASE = {**{f"geo-{i:02d}": [4] for i in range(N)}, **{f"math-{i:02d}": [4] for i in range(N)}}
HARSH = {**{f"geo-{i:02d}": [2] for i in range(N)}, **{f"math-{i:02d}": [4] for i in range(N)}}
"""The candidate as the judge saw it: geo two points worse. People scored both runs' geo answers 4."""


def invoke(*args: object):
    return CliRunner(env={"COLUMNS": "220"}).invoke(main, [str(a) for a in args], catch_exceptions=False)


def people_score(tmp_path: Path, run_id: str, score_of) -> None:
    """Draw every answer of ``run_id`` at random, score each with ``score_of(area)`` and import it."""
    out = tmp_path / f"draw-{run_id}"
    exported = invoke("review", "export", run_id, "--random", 2 * N, "--seed", 7, "--out", out)
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    filled = [{**r, "human_score": score_of(r["area"]), "rater": "ana"} for r in rows]
    (tmp_path / f"{run_id}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in filled))
    imported = invoke("review", "import", tmp_path / f"{run_id}.jsonl", "--run", run_id)
    assert imported.exit_code == 0, imported.output


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store(tmp_path / "reports") as store:
        make_run(store, "r01", BASE)
        make_run(store, "r02", HARSH)
    return tmp_path


def test_the_scorecard_shows_the_corrected_mean_beside_the_judges(runs):
    report = invoke("report", "r02", "--baseline", "r01")
    card = json.loads((runs / "reports/runs/r02/scorecard.json").read_text())
    assert all(a["corrected"] is None for a in card["areas"])  # no human score yet: nothing corrected
    people_score(runs, "r02", lambda area: 4)
    report = invoke("report", "r02", "--baseline", "r01")
    assert report.exit_code == 0, report.output
    card = json.loads((runs / "reports/runs/r02/scorecard.json").read_text())
    geo = next(a for a in card["areas"] if a["area"] == "geo")
    assert geo["mean"] == pytest.approx(2.0)  # the judge's
    corrected = geo["corrected"]
    assert corrected["estimate"] == pytest.approx(4.0) and corrected["n_human"] == N
    assert "random" in corrected["note"]
    assert "corrected by people (PPI++): geo: 4.00" in report.output
    assert "Corrected by people" in (runs / "reports/runs/r02/scorecard.md").read_text()
    assert 'id="corrected"' in (runs / "reports/runs/r02/scorecard.html").read_text()


def test_the_gate_decides_an_area_on_the_corrected_delta_only_when_asked_and_says_so(runs):
    people_score(runs, "r01", lambda area: 4)
    people_score(runs, "r02", lambda area: 4)
    judge = invoke("gate", "--candidate", "r02", "--baseline", "r01", "--markdown")
    assert judge.exit_code == 1 and "| area geo | **FAIL**" in judge.output
    (runs / "evals.yaml").write_text(yaml.safe_dump({"gate": {"means": "corrected"}}))
    corrected = invoke("gate", "--candidate", "r02", "--baseline", "r01", "--markdown")
    text = corrected.output.replace("\\", "")
    assert "| area geo | pass |" in text, text
    assert "corrected means (PPI++, random human scores) decide geo" in text
    assert "corrected (PPI++)" in text  # the area's interval says what it is
