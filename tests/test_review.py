"""``evals review export`` / ``import``: the answers people should score, and their scores back as labels."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.records import Flag
from evals.store import Store
from evals.trust.labels import load_labels
from evals.trust.review import review_run, select_rows


def _run(store: Store) -> None:
    """geo-ok: a clear 5; geo-low: a clear 1; geo-err: a judge error; geo-edge: a 4 (at the pass line);
    math-panel: two judges 3 points apart; math-split: one judge asked twice, 2 then 5 (mean 3.5)."""
    make_run(
        store, "run-01",
        {"geo-ok": [5], "geo-low": [1], "geo-err": [None], "geo-edge": [4], "math-panel": [5], "math-split": [2]},
    )  # fmt: skip
    verdicts = {(j.item_id, j.judge): j for j in store.verdicts("run-01")}
    panel = verdicts[("math-panel", "claude-test")]
    store.save_judgment(dataclasses.replace(panel, judge="gpt (gpt-test)", score=2.0))
    split = verdicts[("math-split", "claude-test")]
    store.save_judgment(dataclasses.replace(split, repeat=1, score=5.0))
    low = store.answers("run-01")[("geo-low", 0)]
    store.save_answer(dataclasses.replace(low, flags=(Flag("score_instruction", (0, 5)),)))


def export(*args: str):
    return CliRunner().invoke(main, ["review", "export", *args], catch_exceptions=False)


def test_export_picks_errors_disagreements_and_boundary_verdicts(open_store, tmp_path):
    with open_store() as store:
        _run(store)
        rows = select_rows(review_run(store, "run-01"))
    reasons = {r.id.split("/")[1]: r.reason for r in rows}
    assert set(reasons) == {"geo-err", "geo-low", "math-panel", "math-split", "geo-edge"}
    assert reasons["geo-low"] == "the answer addresses the grader (score_instruction)"
    assert reasons["geo-err"].startswith("judge error: unparseable verdict")
    assert reasons["math-panel"].startswith("judges disagree by 2+ points (claude-test 5, gpt (gpt-test) 2)")
    assert reasons["math-split"].startswith("claude-test's repeated verdicts disagree (2, 5)")
    assert "at the pass boundary (score 3.5, pass from 4)" in reasons["math-split"]
    assert reasons["geo-edge"] == "at the pass boundary (score 4, pass from 4)"
    # ranked by the first reason: errors, then panels, then split repeats, then the boundary
    assert [r.id.split("/")[1] for r in rows] == [
        "geo-err",
        "geo-low",
        "math-panel",
        "math-split",
        "geo-edge",
    ]


def test_export_writes_csv_and_jsonl_with_blank_scores_and_limit(tmp_path):
    with Store(tmp_path / "reports") as store:
        _run(store)
    result = export("run-01", "--limit", "2")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "review" / "run-01"
    lines = [json.loads(line) for line in (folder / "review.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["run-01/geo-err/0", "run-01/geo-low/0"]
    assert all(line["human_score"] is None for line in lines)
    assert lines[0]["answer"] == "answer geo-err" and lines[0]["reference"] == "ref geo-err"
    with (folder / "review.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["human_score"] for row in table] == ["", ""]
    assert table[1]["reason"].startswith("the answer addresses the grader")


def test_review_round_trip_into_a_labels_file(tmp_path):
    with Store(tmp_path / "reports") as store:
        _run(store)
    assert export("run-01", "--out", "rev").exit_code == 0
    with (tmp_path / "rev" / "review.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    table[0]["human_score"], table[0]["rater"] = "2", "ana"
    table[1]["human_score"] = "4"  # the others left blank
    with (tmp_path / "filled.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    result = CliRunner().invoke(main, ["review", "import", "filled.csv", "--into", "labels/mine.jsonl"])
    assert result.exit_code == 0, result.output
    assert "appended 2 scored rows" in result.output and "skipped 3 rows without a score" in result.output
    labels = load_labels(tmp_path / "labels" / "mine.jsonl")
    assert [(r.id, r.human_score, r.rater) for r in labels.rows] == [
        ("run-01/geo-err/0", 2, "ana"), ("run-01/geo-low/0", 4, None)
    ]  # fmt: skip
    # a second import appends (another person's scores of the same answers)
    table[0]["rater"] = "ben"
    with (tmp_path / "ben.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table[:1])
    assert (
        CliRunner().invoke(main, ["review", "import", "ben.csv", "--into", "labels/mine.jsonl"]).exit_code
        == 0
    )
    assert len(load_labels(tmp_path / "labels" / "mine.jsonl").rows) == 3


def test_import_reports_bad_scores_with_file_and_line(tmp_path):
    (tmp_path / "filled.jsonl").write_text(
        json.dumps({"id": "a", "question": "q", "answer": "x", "human_score": None}) + "\n"
        + json.dumps({"id": "b", "question": "q", "answer": "y", "human_score": 7}) + "\n"
    )  # fmt: skip
    result = CliRunner().invoke(main, ["review", "import", "filled.jsonl"])
    assert result.exit_code == 2
    assert "filled.jsonl:2: human_score: expected an integer from 1 to 5, got 7" in result.output
    assert not (tmp_path / "labels.jsonl").exists()


def test_a_purged_run_cannot_be_exported(tmp_path):
    with Store(tmp_path / "reports") as store:
        _run(store)
        for answer in store.answers("run-01").values():
            store.save_answer(dataclasses.replace(answer, text=None))
    result = export("run-01")
    assert result.exit_code == 2
    assert "answer text was purged" in result.output


def test_unknown_run_is_an_error(tmp_path):
    with Store(tmp_path / "reports") as store:
        _run(store)
    result = export("run-99")
    assert result.exit_code == 2 and "no run 'run-99'" in result.output


def test_review_import_twice_adds_nothing_the_second_time(tmp_path):
    rows = [
        {"id": "r1/a/0", "question": "q?", "answer": "a", "human_score": 4, "rater": "ana"},
        {"id": "r1/b/0", "question": "q?", "answer": "b", "human_score": 2},
        {"id": "r1/c/0", "question": "q?", "answer": "c", "human_score": None},
    ]
    (tmp_path / "filled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    first = runner.invoke(main, ["review", "import", "filled.jsonl", "--into", "labels.jsonl"])
    assert first.exit_code == 0 and "appended 2 scored rows" in first.output
    second = runner.invoke(main, ["review", "import", "filled.jsonl", "--into", "labels.jsonl"])
    assert second.exit_code == 0, second.output
    assert (
        "appended 0 scored rows" in second.output
        and "skipped 2 rows already in labels.jsonl" in second.output
    )
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 2
    # the same answer scored again by the same person, differently: which is right is theirs to say
    rows[0]["human_score"] = 5
    (tmp_path / "changed.jsonl").write_text(json.dumps(rows[0]) + "\n")
    changed = runner.invoke(main, ["review", "import", "changed.jsonl", "--into", "labels.jsonl"])
    assert changed.exit_code == 2
    assert (
        "changed.jsonl:1: human_score: 'ana' scored 'r1/a/0' 4 in labels.jsonl:1, and 5 here"
        in changed.output
    )
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 2


def test_review_import_into_csv_twice_keeps_one_row_each(tmp_path):
    row = {"id": "r1/a/0", "question": "q?", "answer": "a", "human_score": 3, "rater": "ben"}
    (tmp_path / "filled.jsonl").write_text(json.dumps(row) + "\n")
    for _ in range(2):
        result = CliRunner().invoke(main, ["review", "import", "filled.jsonl", "--into", "labels.csv"])
        assert result.exit_code == 0, result.output
    assert len((tmp_path / "labels.csv").read_text().splitlines()) == 2  # the header and one row


REVIEWED = [
    {"id": "r1/a/0", "question": "q?", "answer": "a", "human_score": 4, "rater": "ana", "scored_at": "2026-11-01"},
    {"id": "r1/b/0", "question": "q, with a comma\nand a line", "answer": 'b "quoted"', "human_score": 2,
     "rater": "ben", "reference": "ref"},
    {"id": "r1/c/0", "question": "q?", "answer": "c", "human_score": 5},
    {"id": "r1/d/0", "question": "ünï", "answer": "", "human_score": 1, "rater": "ana", "area": "geo"},
]  # fmt: skip


def _reviewed_as(folder, kind):
    """REVIEWED written as a JSONL or CSV file, plain, with CRLF line ends, or with a UTF-8 BOM."""
    if kind.startswith("jsonl"):
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in REVIEWED).encode()
        path = folder / f"{kind}.jsonl"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=sorted({k for r in REVIEWED for k in r}), lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(REVIEWED)
        data = buffer.getvalue().encode()
        path = folder / f"{kind}.csv"
    if kind.endswith("crlf"):
        data = data.replace(b"\n", b"\r\n")
    if kind.endswith("bom"):
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return path.name


@pytest.mark.parametrize("into", ["labels.jsonl", "labels.csv"])
def test_the_same_scores_imported_again_in_any_of_its_forms_add_nothing(tmp_path, into):
    """The same reviewed rows as JSONL, CSV, with CRLF line ends or a BOM, imported one after the other:
    the first adds them, every later one adds nothing, and the labels file still reads."""
    runner = CliRunner()
    for n, kind in enumerate(["jsonl", "csv", "jsonl-crlf", "csv-crlf", "jsonl-bom", "csv-bom", "jsonl"]):
        result = runner.invoke(main, ["review", "import", _reviewed_as(tmp_path, kind), "--into", into])
        assert result.exit_code == 0, result.output
        assert f"appended {0 if n else 4} scored rows" in result.output, (kind, result.output)
    assert len(load_labels(tmp_path / into).rows) == 4
