"""Where a rubric name leads: judges_dir, then ./judges, then the shipped rubrics; names, never paths."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import load_config
from evals.defaults import SHIPPED_JUDGES
from evals.errors import RubricError
from evals.judge.rubrics import load_rubric, rubric_search, search_in
from evals.suites import find_problems

SHIPPED = SHIPPED_JUDGES / "correctness.yaml"


def write_rubric(folder: Path, name: str, description: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "description": description,
        "criteria": ["Is it right?"],
        "scores": {score: f"score {score}" for score in range(1, 6)},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_judges_dir_comes_first_then_local_judges_then_shipped(tmp_path):
    (tmp_path / "evals.yaml").write_text("judges_dir: shared\n")
    write_rubric(tmp_path / "shared", "strict", "shared strict")
    write_rubric(tmp_path / "judges", "strict", "local strict")
    write_rubric(tmp_path / "judges", "lenient", "local lenient")
    search = rubric_search(load_config(Path("evals.yaml")))
    assert load_rubric("strict", search).description == "shared strict"
    assert load_rubric("lenient", search).description == "local lenient"
    assert load_rubric("correctness", search).path == str(SHIPPED)
    assert [folder.origin for folder in search.dirs] == ["judges_dir", "./judges", "shipped"]


def test_local_judges_are_found_beside_the_config_not_the_working_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    write_rubric(project / "judges", "strict", "beside the config")
    (project / "evals.yaml").write_text("models: {}\n")
    write_rubric(tmp_path / "elsewhere" / "judges", "strict", "in the working folder")
    monkeypatch.chdir(tmp_path / "elsewhere")
    search = rubric_search(load_config(project / "evals.yaml"))
    assert load_rubric("strict", search).description == "beside the config"
    # the default judges_dir *is* ./judges: searched once
    assert [folder.origin for folder in search.dirs] == ["./judges", "shipped"]


def test_a_local_correctness_shadows_the_shipped_one_and_rubric_list_says_so(tmp_path):
    local = write_rubric(tmp_path / "judges", "correctness", "our own correctness")
    rubric = load_rubric("correctness", rubric_search(load_config()))
    assert Path(rubric.path or "").resolve() == local.resolve()
    assert rubric.hash != load_rubric("correctness", search_in(tmp_path / "nowhere")).hash
    result = invoke("rubric", "list")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("correctness")]
    assert len(lines) == 2
    used, shadowed = lines
    assert rubric.hash in used and "./judges" in used and "shadowed" not in used
    assert str(SHIPPED) in shadowed and "shipped" in shadowed and "shadowed by ./judges" in shadowed


def test_rubric_list_shows_each_rubric_with_its_hash_and_origin(tmp_path):
    (tmp_path / "evals.yaml").write_text(f"judges_dir: {tmp_path / 'shared'}\n")
    write_rubric(tmp_path / "shared", "strict", "shared strict")
    result = invoke("rubric", "list")
    assert result.exit_code == 0, result.output
    shipped = load_rubric("correctness", SHIPPED_JUDGES)
    strict = load_rubric("strict", tmp_path / "shared")
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert rows["correctness"][1:3] == [shipped.hash, "shipped"]
    assert rows["strict"][1:3] == [strict.hash, "judges_dir"]


def test_rubric_list_marks_a_broken_rubric_and_exits_1(tmp_path):
    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "broken.yaml").write_text("description: no scores\ncriteria: [x]\n")
    result = invoke("rubric", "list")
    assert result.exit_code == 1
    assert "broken" in result.output and "invalid" in result.output and "scores" in result.output
    assert "Traceback" not in result.output


def test_a_missing_rubric_names_the_folders_searched_and_what_exists(tmp_path):
    write_rubric(tmp_path / "judges", "strict", "local strict")
    with pytest.raises(RubricError) as caught:
        load_rubric("safety", rubric_search(load_config()))
    message = str(caught.value)
    assert "no rubric 'safety'" in message and "available: correctness, strict" in message
    assert "(./judges)" in message and "(shipped)" in message and "\n" not in message


def test_a_judges_dir_that_is_not_a_folder_is_an_error_not_a_silent_fallback(tmp_path):
    (tmp_path / "evals.yaml").write_text("judges_dir: sahred\n")  # misspelt
    with pytest.raises(RubricError, match=r"judges_dir .*sahred in the config is not a folder"):
        rubric_search(load_config(Path("evals.yaml")))
    result = invoke("rubric", "list")
    assert result.exit_code == 2 and "is not a folder" in result.output


@pytest.mark.parametrize(
    "name", ["../secret", "/etc/passwd", "judges/strict", "strict.yaml", "a..b", "", " strict", "x\\y"]
)
def test_a_path_is_not_a_rubric_name(tmp_path, name):
    write_rubric(tmp_path / "judges", "strict", "local strict")
    write_rubric(tmp_path, "secret", "outside every judges folder")
    with pytest.raises(RubricError, match="expected a rubric name such as 'correctness'") as caught:
        load_rubric(name, tmp_path / "judges")
    assert "\n" not in str(caught.value)


def test_an_item_rubric_that_is_a_path_is_a_suite_problem_at_its_line(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "items:\n"
        "  - {id: a, area: x, question: q?, reference: r, rubric: strict}\n"
        "  - id: b\n"
        "    area: x\n"
        "    question: q?\n"
        "    rubric: ../../etc/passwd\n"
    )
    jsonl = tmp_path / "suite.jsonl"
    item = {"id": "c", "area": "x", "question": "q?", "rubric": "judges/strict.yaml"}
    jsonl.write_text(
        json.dumps({**item, "id": "ok", "rubric": "correctness"}) + "\n" + json.dumps(item) + "\n"
    )
    [problem] = find_problems(suite)
    assert (problem.line, problem.field) == (6, "items[1].rubric")
    assert "expected a rubric name such as 'correctness'" in problem.message
    assert "'../../etc/passwd'" in problem.message
    [problem] = find_problems(jsonl)
    assert (problem.line, problem.field) == (2, "rubric")
    result = invoke("suite", "validate", str(suite))
    assert result.exit_code == 1 and "suite.yaml:6: items[1].rubric: expected a rubric name" in result.output


def test_a_judge_whose_rubric_is_a_path_stops_the_run_before_any_call(tmp_path, fake_openai):
    config = {
        "models": {"local": {"base_url": fake_openai.url, "model": "m"}},
        "judges": {"offline": {"provider": "offline", "rubric": "../rubrics/mine.yaml"}},
    }
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "s.jsonl").write_text(json.dumps({"id": "a", "area": "x", "question": "q?"}) + "\n")
    result = invoke("run", "--suite", "s.jsonl", "--judge", "offline")
    assert result.exit_code == 2
    assert "rubric '../rubrics/mine.yaml': expected a rubric name" in result.output
    assert fake_openai.count() == 0
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)  # no orphan run left behind
