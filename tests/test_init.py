"""`evals init` scaffolds a project that validates and runs as it is, and never overwrites a file."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import GateSettings
from evals.defaults import EXAMPLE_CONFIG, SHIPPED_JUDGES
from evals.suites import load_suite

FILES = [
    "evals.yaml",
    "judges/correctness.yaml",
    ".github/workflows/gate.yml",
    ".github/workflows/nightly.yml",
    ".gitignore",
    "baselines/README.md",
    "suites/example/arithmetic.jsonl",
    "suites/example/geography.yaml",
    "suites/example/science.yaml",
]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_init_writes_a_project_and_a_second_init_skips_every_file(tmp_path):
    result = invoke("init", "proj")
    assert result.exit_code == 0, result.output
    project = tmp_path / "proj"
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == sorted(FILES)
    assert all(f"created  {name}" in result.output for name in FILES)
    assert "cd proj" in result.output
    (project / "evals.yaml").write_text("# mine\n")
    (project / "suites/example/geography.yaml").unlink()
    again = invoke("init", "proj")
    assert again.exit_code == 0, again.output
    assert "1 created, 8 skipped" in again.output
    assert "created  suites/example/geography.yaml" in again.output
    assert "skipped  evals.yaml (exists; left as it is)" in again.output
    assert (project / "evals.yaml").read_text() == "# mine\n"
    third = invoke("init", "proj")
    assert "0 created, 9 skipped" in third.output and "created  " not in third.output


def test_init_copies_the_shipped_files_and_writes_working_ci(tmp_path):
    assert invoke("init").exit_code == 0
    assert Path("evals.yaml").read_bytes() == EXAMPLE_CONFIG.read_bytes()
    assert Path("judges/correctness.yaml").read_bytes() == (SHIPPED_JUDGES / "correctness.yaml").read_bytes()
    assert "reports/" in Path(".gitignore").read_text().splitlines()
    config = yaml.safe_load(Path("evals.yaml").read_text())
    first = next(iter(config["models"].values()))
    assert first["base_url"] == "http://127.0.0.1:8000/v1"  # where `evals serve-local` serves
    assert {"claude", "gpt"} <= set(config["judges"])
    text = Path("evals.yaml").read_text()
    assert all(word in text for word in ("vLLM", "Ollama", "llama.cpp", "serve-local"))
    for name in ("nightly", "gate"):
        workflow = yaml.safe_load(Path(f".github/workflows/{name}.yml").read_text())
        steps = " ".join(
            str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"]
        )
        assert "pip install lookingglass" in steps and "evals run" in steps
        assert "scripts/" not in steps  # the project has no checkout of lookingglass


def test_every_name_the_scaffolded_workflows_use_is_in_the_project(tmp_path):
    assert invoke("init").exit_code == 0
    models = yaml.safe_load(Path("evals.yaml").read_text())["models"]
    gate = yaml.safe_load(Path(".github/workflows/gate.yml").read_text())["jobs"]["gate"]["env"]
    nightly = yaml.safe_load(Path(".github/workflows/nightly.yml").read_text())["jobs"]["nightly"]["env"]
    assert gate["CANDIDATE"] in models and nightly["MODEL"] in models
    assert models[gate["CANDIDATE"]]["base_url"] == "http://127.0.0.1:8000/v1"  # as scaffolded: runs as it is
    assert "Point this at the model you want to promote" in Path("evals.yaml").read_text()
    suite = load_suite(gate["SUITE"])
    # the approval commands write the baseline where the gate reads it, and git keeps it (not ignored)
    assert gate["APPROVED"] == f"baselines/{suite.name}"
    readme = Path("baselines/README.md").read_text()
    assert f"mkdir -p {gate['APPROVED']}" in readme and f"git add {gate['APPROVED']}" in readme
    assert f"--model {nightly['MODEL']} " in readme and f"--name {gate['BASELINE']} " in readme
    assert not any(line.startswith("baselines") for line in Path(".gitignore").read_text().splitlines())


def test_the_example_suite_is_big_enough_for_the_gate_to_decide(tmp_path):
    assert invoke("init").exit_code == 0
    suite = load_suite("suites/example")
    per_area = Counter(item.area for item in suite.items)
    assert len(suite.items) >= GateSettings().min_pairs  # else every gate on it is "cannot decide"
    assert len(per_area) >= 2 and min(per_area.values()) >= 8  # 5 pairs decide an area; room for errors
    assert all(item.reference for item in suite.items)  # the offline judge scores against the reference


def test_init_never_writes_through_a_symlink(tmp_path):
    outside = tmp_path / "outside.txt"
    (tmp_path / "proj").mkdir()
    os.symlink(outside, tmp_path / "proj" / "evals.yaml")  # dangling: would create the file outside
    result = invoke("init", "proj")
    assert result.exit_code == 0
    assert "skipped  evals.yaml" in result.output and not outside.exists()


@pytest.mark.parametrize("blocker", ["suites", "judges"])
def test_init_says_in_one_line_what_it_cannot_write(tmp_path, blocker):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / blocker).write_text("a file where a folder should be")
    result = invoke("init", "proj")
    assert result.exit_code == 2
    assert f"proj/{blocker}/" in result.output and "cannot write it" in result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert not (tmp_path / "proj" / "evals.yaml").exists()  # stopped before writing anything


def test_right_after_init_the_suites_validate_and_run_against_a_local_server(tmp_path, fake_openai):
    assert invoke("init").exit_code == 0
    validated = invoke("suite", "validate", "suites")
    assert validated.exit_code == 0, validated.output
    assert "ok: suite example: 30 items in 3 areas (arithmetic, geography, science)" in validated.output
    # the local server the example config names, here the fake one
    config = Path("evals.yaml")
    config.write_text(config.read_text().replace("http://127.0.0.1:8000/v1", fake_openai.url))
    result = invoke("run", "--judge", "offline")  # no --suite: default_suite
    assert result.exit_code == 0, result.output
    db = sqlite3.connect("reports/evals.db")
    suite_path, status = db.execute("SELECT suite_path, status FROM runs").fetchone()
    assert Path(suite_path) == (tmp_path / "suites" / "example").resolve() and status == "finished"
    scores = db.execute("SELECT score FROM judgments WHERE error IS NULL").fetchall()
    assert len(scores) == 30 and all(score is not None for (score,) in scores)
    assert fake_openai.count() == 30


def test_run_without_a_suite_or_default_suite_says_what_to_give(tmp_path):
    result = invoke("run", "--judge", "offline")
    assert result.exit_code == 2
    assert "--suite is required (or --resume RUN_ID, or default_suite in evals.yaml)" in result.output


def test_validate_checks_each_suite_of_a_folder_of_suites_on_its_own(tmp_path):
    assert invoke("init").exit_code == 0
    (tmp_path / "suites" / "other").mkdir()
    # the same id as in suites/example is fine: ids are unique within a suite, not across suites
    (tmp_path / "suites" / "other" / "a.jsonl").write_text(
        '{"id": "geo-01", "area": "x", "question": "q?"}\n{"id": "b", "area": "x"}\n'
    )
    result = invoke("suite", "validate", "suites")
    assert result.exit_code == 1
    assert "suites/other/a.jsonl:2: question: missing 'question'" in result.output
    assert "1 problem found" in result.output
