"""Names are names (issue 10.1): ids, baseline names and tags follow one pattern where they enter, and
nothing the tool writes lands outside the reports folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cases import BAD_NAMES, GOOD_NAMES, TEXT, store_run
from click.testing import CliRunner

from evals.cli import main
from evals.errors import StoreError
from evals.names import InvalidName, check_label, check_name, is_name, run_folder
from evals.store import Store


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused(name):
    assert not is_name(name)
    with pytest.raises(InvalidName):
        check_name(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["../../x", "/abs", "a/b", "..", "[/]", "x\n"])
@pytest.mark.parametrize("option", ["--run-id", "--tag"])
def test_run_refuses_a_bad_run_id_or_tag_in_one_line_before_anything_exists(tmp_path, name, option):
    (tmp_path / "suite.jsonl").write_text('{"id": "a", "area": "x", "question": "q?", "reference": "r"}\n')
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", option, name)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: ") and "letters, digits" in lines[0]
    assert not (tmp_path / "reports").exists()  # no run, no store, no folder named after it
    assert not (tmp_path.parent / "x").exists()


def test_baseline_set_refuses_a_bad_name_and_a_name_that_is_a_run_id(tmp_path):
    reports = tmp_path / "reports"
    with Store(reports) as store:
        store_run(store, "r01", ["math"])
        store_run(store, "r02", ["math"], started_at="2026-11-02T00:00:00+00:00")
    bad = invoke("baseline", "set", "r01", "--name", "../prod", "--reports", str(reports))
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --name: baseline name '../prod'")
    clash = invoke("baseline", "set", "r01", "--name", "r02", "--reports", str(reports))
    assert clash.exit_code == 2 and "is the id of a run" in clash.stderr
    with Store(reports) as store:
        assert store.baselines() == []
        with pytest.raises(StoreError):  # the library refuses it too, not only the CLI
            store.set_baseline("r02", "r01", "2026-11-03T00:00:00+00:00")


def test_gating_a_run_against_itself_cannot_pass(tmp_path):
    reports = tmp_path / "reports"
    with Store(reports) as store:
        store_run(store, "r01", ["math", "geo"])
    assert invoke("baseline", "set", "r01", "--name", "prod", "--reports", str(reports)).exit_code == 0
    for baseline in ("r01", "prod"):
        result = invoke("gate", "--candidate", "r01", "--baseline", baseline, "--reports", str(reports))
        assert result.exit_code == 2, result.output
        assert "the same run 'r01'" in result.stdout and "PASS" not in result.stdout


def test_a_run_id_that_breaks_the_rules_in_an_old_store_never_becomes_a_path(tmp_path):
    """A store written before the rules may hold any run id: reports refuse it, the index links nowhere."""
    reports = tmp_path / "work" / "reports"
    with Store(reports) as store:
        store_run(store, "../../escaped", ["math"])
        store_run(store, "ok", ["math"], started_at="2026-11-02T00:00:00+00:00")
    before = files_under(tmp_path)
    result = CliRunner().invoke(main, ["report", "--reports", str(reports)])  # the latest run: ok
    assert result.exit_code == 0, result.output
    index = (reports / "index.html").read_text()
    assert 'href="runs/ok/scorecard.html"' in index and "escaped/scorecard" not in index
    result = invoke("report", "../../escaped", "--reports", str(reports))
    assert result.exit_code == 2 and "not valid" in result.stderr
    with Store(reports) as store, pytest.raises(InvalidName):
        store.export_jsonl("../../escaped")
    written = files_under(tmp_path) - before
    assert written and all(reports in p.parents for p in written), sorted(map(str, written))
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("area", TEXT.values(), ids=TEXT.keys())
def test_areas_with_odd_text_are_data_not_paths(tmp_path, area):
    """Any readable area name reports fine and creates no file or folder of its own."""
    reports = tmp_path / "reports"
    with Store(reports) as store:
        store_run(store, "r01", [area, "plain"])
    result = CliRunner().invoke(main, ["report", "--reports", str(reports)])
    assert result.exit_code == 0, result.output
    names = {os.path.relpath(p, reports) for p in files_under(reports)}
    expected = {
        "index.html",
        "runs",
        "runs/r01",
        *(f"runs/r01/scorecard.{k}" for k in ("html", "json", "md", "summary.json")),
    }
    assert {n for n in names if not n.startswith("evals.db")} == expected
    card = json.loads((reports / "runs/r01/scorecard.json").read_text())
    assert area in {a["area"] for a in card["areas"]}


def test_labels_refuse_control_characters_and_blank(tmp_path):
    assert check_label("Contract law / EU [draft]") == "Contract law / EU [draft]"
    for bad in ("", "   ", "a\x1bb", "a\nb", "x\u202ey"):
        with pytest.raises(InvalidName):
            check_label(bad)


def test_run_folder_stays_in_the_reports_folder(tmp_path):
    assert run_folder(tmp_path, "r1") == tmp_path / "runs" / "r1"
    for bad in ("../x", "/etc", ".."):
        with pytest.raises(InvalidName):
            run_folder(tmp_path, bad)


def test_reporting_a_run_against_itself_says_so_instead_of_unchanged(tmp_path):
    """``report r01 --baseline prod`` where prod is r01: Δ 0 "unchanged" would pass --fail-on-regression."""
    reports = tmp_path / "reports"
    with Store(reports) as store:
        store_run(store, "r01", ["math", "geo"])
    assert invoke("baseline", "set", "r01", "--name", "prod", "--reports", str(reports)).exit_code == 0
    for baseline in ("r01", "prod"):
        result = CliRunner().invoke(main, ["report", "r01", "--baseline", baseline, "--fail-on-regression",
                                           "--reports", str(reports)])  # fmt: skip
        assert result.exit_code == 2 and "the same run 'r01'" in result.stderr, result.output
