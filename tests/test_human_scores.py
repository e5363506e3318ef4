"""People's scores stored with the run: `evals review export RUN --random N` draws a uniform random sample
stratified by area and keeps the draw; `evals review import FILE --run RUN` stores the scores against the
run's answers (random only for rows of a stored random draw), all or nothing, on SQLite and PostgreSQL;
the scores travel with the run through `evals import` and `evals store copy`, and a purge keeps them."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.store import Store
from evals.store.human import HUMAN_FILE, draws, human_scores
from evals.trust.draw import allocate, draw_review
from evals.trust.review import review_run

# geo: 6 items, math: 3, law: 1; two samples each: 12, 6 and 2 answers.
SCORES = {
    **{f"geo-{i}": [4, 5] for i in range(6)},
    **{f"math-{i}": [3, 2] for i in range(3)},
    "law-0": [5, 1],
}


@pytest.fixture
def store_env(store_url, tmp_path):
    """The parametrised store (SQLite, PostgreSQL) named by EVALS_STORE, holding run-01."""
    with Store(tmp_path / "reports", url=store_url) as store:
        make_run(store, "run-01", SCORES)
    return {"EVALS_STORE": store_url}


def evals(env, *args):
    return CliRunner(env=env).invoke(main, [str(a) for a in args], catch_exceptions=False)


def scored_rows(folder: Path, score=4, rater="ana", **changes):
    """The rows of a review export in ``folder``, each given ``score`` by ``rater``."""
    rows = [json.loads(line) for line in (folder / "review.jsonl").read_text().splitlines()]
    return [{**row, "human_score": score, "rater": rater, **changes} for row in rows]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stored(store_url, tmp_path, run_id="run-01"):
    with Store(tmp_path / "reports", url=store_url) as store:
        return human_scores(store, run_id)


def test_allocation_is_proportional_with_at_least_one_per_area():
    rng = random.Random(0)
    assert allocate({"geo": 12, "math": 6, "law": 2}, 10, rng) == {"geo": 6, "math": 3, "law": 1}
    # an area whose share is below one pick still gets one; the others share the rest in proportion
    assert allocate({"big": 30, "tiny": 1}, 5, rng) == {"big": 4, "tiny": 1}
    assert allocate({"a": 60, "b": 20, "c": 1, "d": 1}, 6, rng) == {"a": 3, "b": 1, "c": 1, "d": 1}
    # more than the run has: every answer; an area without answers gets none
    assert allocate({"geo": 3, "none": 0, "math": 2}, 50, rng) == {"geo": 3, "math": 2}
    # fewer picks than areas: the largest shares get them
    assert allocate({"a": 10, "b": 1, "c": 1}, 1, rng) == {"a": 1, "b": 0, "c": 0}


def test_random_export_is_stratified_kept_as_a_draw_and_reproducible_with_a_seed(
    store_env, store_url, tmp_path
):
    result = evals(store_env, "review", "export", "run-01", "--random", 10, "--seed", 7, "--out", "first")
    assert result.exit_code == 0, result.output
    assert "10 answers drawn at random (geo 6 of 12, math 3 of 6, law 1 of 2)" in result.output
    rows = [json.loads(line) for line in (tmp_path / "first" / "review.jsonl").read_text().splitlines()]
    assert Counter(r["area"] for r in rows) == {"geo": 6, "math": 3, "law": 1}
    assert {r["reason"] for r in rows} == {"random"} and len({r["id"] for r in rows}) == 10
    assert all(
        r["run_id"] == "run-01" and "sensitivity" in r for r in rows
    )  # the columns review export writes
    (draw_id,) = {r["draw"] for r in rows}
    with Store(tmp_path / "reports", url=store_url) as store:
        (draw,) = draws(store, "run-01")
    assert (draw.draw_id, draw.seed, draw.asked) == (draw_id, 7, 10)
    assert [(a.area, a.answers, a.drawn) for a in draw.areas] == [
        ("geo", 12, 6),
        ("math", 6, 3),
        ("law", 2, 1),
    ]
    assert {f"run-01/{i}/{s}" for i, s in draw.picked} == {r["id"] for r in rows}
    assert (tmp_path / "reports" / "runs" / "run-01" / HUMAN_FILE).is_file()  # the draw travels with the run

    again = evals(store_env, "review", "export", "run-01", "--random", 10, "--seed", 7, "--out", "again")
    assert again.exit_code == 0, again.output
    same = [json.loads(line) for line in (tmp_path / "again" / "review.jsonl").read_text().splitlines()]
    assert [r["id"] for r in same] == [r["id"] for r in rows] and same[0]["draw"] != draw_id
    picks = set()
    for name in ("x", "y"):  # no seed: a fresh one each time (C(12,6) * C(6,3) * 2 ways to pick)
        assert evals(store_env, "review", "export", "run-01", "--random", 10, "--out", name).exit_code == 0
        lines = (tmp_path / name / "review.jsonl").read_text().splitlines()
        picks.add(frozenset(json.loads(line)["id"] for line in lines))
    assert len(picks) == 2


def test_each_answer_of_an_area_is_equally_likely_to_be_drawn(tmp_path):
    with Store(tmp_path / "reports") as store:
        make_run(store, "run-01", {f"geo-{i}": [4] for i in range(4)})
        run = review_run(store, "run-01")
        counts = Counter(key for seed in range(400) for key in draw_review(store, run, 2, seed)[0].picked)
    # 400 draws of 2 of 4 answers: each answer expected 200 times, standard deviation 10
    assert len(counts) == 4 and all(150 <= n <= 250 for n in counts.values()), counts


def test_a_run_without_answers_has_nothing_to_draw(tmp_path):
    with Store(tmp_path / "reports") as store:
        make_run(store, "run-01", {"geo-0": [4]}, unanswered={"geo-0"})
    result = evals({}, "review", "export", "run-01", "--random", 3)
    assert result.exit_code == 2 and "run run-01 has no answers to draw from" in result.output


def test_random_and_urgency_options_are_checked(store_env):
    both = evals(store_env, "review", "export", "run-01", "--random", 5, "--limit", 2)
    assert both.exit_code == 2 and "--limit goes with the urgent answers" in both.output
    seed = evals(store_env, "review", "export", "run-01", "--seed", 3)
    assert seed.exit_code == 2 and "--seed goes with --random N" in seed.output


def test_import_stores_scores_random_only_for_rows_of_a_stored_draw(store_env, store_url, tmp_path):
    assert (
        evals(store_env, "review", "export", "run-01", "--random", 4, "--seed", 1, "--out", "rand").exit_code
        == 0
    )
    rows = scored_rows(tmp_path / "rand", score=3, scored_at="2026-11-20T10:00:00+01:00")
    rows[0]["reason"] = "looked odd"  # a row whose reason was changed is no longer a random pick
    result = evals(
        store_env, "review", "import", write_jsonl(tmp_path / "rand.jsonl", rows), "--run", "run-01"
    )
    assert result.exit_code == 0, result.output
    assert "stored 4 scores with run run-01 (3 of a random draw)" in result.output
    assert not (tmp_path / "labels.jsonl").exists()  # --run alone writes no labels file
    scores = {f"{s.run_id}/{s.item_id}/{s.sample}": s for s in stored(store_url, tmp_path)}
    assert set(scores) == {r["id"] for r in rows}
    assert [scores[r["id"]].random for r in rows] == [False, True, True, True]
    first = scores[rows[0]["id"]]
    assert (first.rater, first.score, first.scored_at, first.draw_id) == (
        "ana",
        3,
        "2026-11-20T10:00:00+01:00",
        rows[0]["draw"],
    )
    assert first.area == rows[0]["area"]

    # the urgent answers (errors, boundary verdicts...) are stored, never as a random sample
    assert evals(store_env, "review", "export", "run-01", "--out", "urgent").exit_code == 0
    urgent = scored_rows(tmp_path / "urgent", score=2, rater="ben")
    assert urgent
    done = evals(
        store_env, "review", "import", write_jsonl(tmp_path / "urgent.jsonl", urgent), "--run", "run-01"
    )
    assert done.exit_code == 0, done.output
    by_ben = [s for s in stored(store_url, tmp_path) if s.rater == "ben"]
    assert len(by_ben) == len(urgent) and not any(s.random or s.draw_id for s in by_ben)
    assert all(s.scored_at.endswith("+00:00") for s in by_ben)  # the import's time, timezone-aware


def test_importing_a_file_twice_stores_nothing_the_second_time(store_env, store_url, tmp_path):
    assert evals(store_env, "review", "export", "run-01", "--random", 5, "--out", "rand").exit_code == 0
    filled = write_jsonl(tmp_path / "filled.jsonl", scored_rows(tmp_path / "rand"))
    first = evals(store_env, "review", "import", filled, "--run", "run-01", "--into", "labels.jsonl")
    assert first.exit_code == 0, first.output
    assert "appended 5 scored rows to labels.jsonl" in first.output and "stored 5 scores" in first.output
    second = evals(store_env, "review", "import", filled, "--run", "run-01", "--into", "labels.jsonl")
    assert second.exit_code == 0, second.output
    assert "stored 0 scores" in second.output and "skipped 5 scores the store holds already" in second.output
    assert "skipped 5 rows already in labels.jsonl" in second.output
    assert len(stored(store_url, tmp_path)) == 5
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 5


def test_a_raters_different_score_of_a_stored_answer_is_an_error_naming_both(store_env, store_url, tmp_path):
    assert evals(store_env, "review", "export", "run-01", "--random", 3, "--out", "rand").exit_code == 0
    rows = scored_rows(tmp_path / "rand", score=4)
    assert (
        evals(
            store_env, "review", "import", write_jsonl(tmp_path / "a.jsonl", rows), "--run", "run-01"
        ).exit_code
        == 0
    )
    rows[1]["human_score"] = 2
    rows[2]["rater"] = "ben"  # another person's score of the same answer is welcome
    changed = evals(store_env, "review", "import", write_jsonl(tmp_path / "b.jsonl", rows), "--run", "run-01")
    assert changed.exit_code == 2
    assert f"b.jsonl:2: human_score: 'ana' scored '{rows[1]['id']}' 4 (stored, scored at" in changed.output
    assert "and 2 here; correct one of them" in changed.output
    assert (
        sorted((s.rater, s.score) for s in stored(store_url, tmp_path)) == [("ana", 4)] * 3
    )  # nothing written


def test_a_row_that_is_no_answer_of_the_run_is_a_file_line_error_and_nothing_is_written(
    store_env, store_url, tmp_path
):
    assert evals(store_env, "review", "export", "run-01", "--random", 3, "--out", "rand").exit_code == 0
    rows = scored_rows(tmp_path / "rand")
    rows[2] = {**rows[2], "id": "run-01/geo-99/0"}
    (tmp_path / "filled.csv").write_text(
        "id,question,answer,human_score,rater\n"
        + "".join(f"{r['id']},q,a,{r['human_score']},{r['rater']}\n" for r in rows)
        + "run-01/geo-1/5,q,a,3,ana\nrun-01/geo-1/1,q,a,3,\n"
    )
    result = evals(store_env, "review", "import", "filled.csv", "--run", "run-01", "--into", "labels.jsonl")
    assert result.exit_code == 2
    assert (
        "filled.csv:4: id: 'run-01/geo-99/0' is not an answer the model gave of run run-01" in result.output
    )
    assert "filled.csv:5: id: 'run-01/geo-1/5' is not an answer the model gave of run run-01" in result.output
    assert "filled.csv:6: rater: required with --run" in result.output
    assert stored(store_url, tmp_path) == [] and not (tmp_path / "labels.jsonl").exists()

    other = write_jsonl(tmp_path / "other.jsonl", [{**rows[0], "draw": "draw-20260101T000000Z-00000000"}])
    wrong_draw = evals(store_env, "review", "import", other, "--run", "run-01")
    assert wrong_draw.exit_code == 2
    assert (
        "other.jsonl:1: draw: 'draw-20260101T000000Z-00000000' is not a random draw of run run-01"
        in wrong_draw.output
    )
    picked = {r["id"] for r in rows}
    by_hand = next(
        f"run-01/geo-{i}/{n}" for i in range(6) for n in range(2) if f"run-01/geo-{i}/{n}" not in picked
    )
    added = write_jsonl(tmp_path / "added.jsonl", [{**rows[0], "id": by_hand}])  # the draw's id, not its pick
    not_picked = evals(store_env, "review", "import", added, "--run", "run-01")
    assert not_picked.exit_code == 2
    assert f"added.jsonl:1: draw: draw '{rows[0]['draw']}' did not pick '{by_hand}'" in not_picked.output
    unknown = evals(store_env, "review", "import", other, "--run", "run-99")
    assert unknown.exit_code == 2 and "no run 'run-99'" in unknown.output
    assert stored(store_url, tmp_path) == []


def test_a_bad_scored_at_is_a_file_line_error(tmp_path):
    with Store(tmp_path / "reports") as store:
        make_run(store, "run-01", SCORES)
    row = {"id": "run-01/geo-0/0", "question": "q", "answer": "a", "human_score": 4, "rater": "ana"}
    filled = write_jsonl(
        tmp_path / "f.jsonl",
        [{**row, "scored_at": "2026-11-20 10:00"}, {**row, "scored_at": "2026-11-20", "rater": "ben"}],
    )
    result = evals({}, "review", "import", filled, "--run", "run-01")
    assert result.exit_code == 2
    assert "f.jsonl:1: scored_at: expected a time with its UTC offset" in result.output
    assert "f.jsonl:2" not in result.output  # a date alone is midnight UTC


def test_the_scores_travel_with_the_run_through_import_and_copy_and_survive_a_purge(tmp_path, postgres_url):
    reports = tmp_path / "reports"
    with Store(reports) as store:
        make_run(store, "run-01", SCORES)
        store.export_jsonl("run-01")
    assert evals({}, "review", "export", "run-01", "--random", 6, "--seed", 5, "--out", "rand").exit_code == 0
    filled = write_jsonl(tmp_path / "filled.jsonl", scored_rows(tmp_path / "rand", score=5))
    assert evals({}, "review", "import", filled, "--run", "run-01").exit_code == 0
    original = stored(None, tmp_path)
    with Store(reports) as store:
        original_draws = draws(store, "run-01")
    assert len(original) == 6 and all(s.random for s in original)

    for _ in range(2):  # the second import changes nothing
        result = evals({}, "import", "reports/runs", "--reports", "imported")
        assert result.exit_code == 0, result.output
    with Store(tmp_path / "imported") as imported:
        assert human_scores(imported, "run-01") == original and draws(imported, "run-01") == original_draws

    result = evals({}, "store", "copy", "imported", postgres_url)
    assert result.exit_code == 0, result.output
    with Store(tmp_path, url=postgres_url) as copy:
        assert human_scores(copy, "run-01") == original and draws(copy, "run-01") == original_draws

    assert evals({}, "purge", "--run", "run-01").exit_code == 0
    assert stored(None, tmp_path) == original  # figures, not text: a purge keeps them


def test_a_malformed_scores_file_in_an_export_is_one_line_and_nothing_is_imported(tmp_path):
    with Store(tmp_path / "reports") as store:
        make_run(store, "run-01", SCORES)
        store.export_jsonl("run-01")
    assert evals({}, "review", "export", "run-01", "--random", 2, "--out", "rand").exit_code == 0
    assert (
        evals(
            {},
            "review",
            "import",
            write_jsonl(tmp_path / "f.jsonl", scored_rows(tmp_path / "rand")),
            "--run",
            "run-01",
        ).exit_code
        == 0
    )
    folder = tmp_path / "copy" / "run-01"
    shutil.copytree(tmp_path / "reports" / "runs" / "run-01", folder)
    lines = (folder / HUMAN_FILE).read_text().splitlines()
    bad = json.loads(lines[-1]) | {"score": 6}
    (folder / HUMAN_FILE).write_text("\n".join([*lines[:-1], json.dumps(bad)]) + "\n")
    result = evals({}, "import", "copy", "--reports", "target")
    assert result.exit_code == 2
    assert f"copy/run-01/{HUMAN_FILE}:{len(lines)}: score: " in result.output
    assert len(result.output.strip().splitlines()) == 1
    with Store(tmp_path / "target") as target:
        assert target.runs() == []


def test_scores_in_an_encrypted_store_read_without_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", evals({}, "store", "keygen").output.strip())
    with Store(tmp_path / "reports") as store:
        make_run(store, "run-01", SCORES)
    assert evals({}, "review", "export", "run-01", "--random", 3, "--out", "rand").exit_code == 0
    rows = scored_rows(tmp_path / "rand")
    assert rows[0]["answer"].startswith("answer ")  # the export opened the sealed answers
    assert (
        evals({}, "review", "import", write_jsonl(tmp_path / "f.jsonl", rows), "--run", "run-01").exit_code
        == 0
    )
    monkeypatch.delenv("EVALS_STORE_KEY")
    assert [(s.rater, s.score, s.random) for s in stored(None, tmp_path)] == [("ana", 4, True)] * 3
