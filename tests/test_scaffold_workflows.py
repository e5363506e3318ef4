"""The workflows `evals init` writes work as written, run by bash as GitHub runs them.

A project fresh from `evals init` is committed to git, its baseline approved with the commands of its
baselines/README.md; then each workflow's `run:` steps are executed in order in a clone of it (what a CI
checkout holds: no reports/, no store), with the env the workflow sets, against the bundled SmolLM2 model
and, with no API key set, the offline judge. The `uses:` steps and `pip install` are GitHub's (the test's
environment has lookingglass already). Tests marked ``integration`` need the real runtime and model; they
run in CI (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import evals
from evals.localmodel import PROMPT_TOKENS_ANSWER, ServerOptions, local_server

integration = pytest.mark.integration

SOURCE_ROOT = Path(evals.__file__).resolve().parents[1]
"""The lookingglass under test, put on PYTHONPATH so `evals` in the steps is this one."""
SCAFFOLD_URL = "http://127.0.0.1:8000/v1"
"""Where the scaffolded evals.yaml expects the bundled model (`evals serve-local`)."""
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
GITHUB_ONLY = re.compile(r"secrets\.[A-Z_]+|github\.token")
"""Expressions only GitHub can fill (keys, tokens): unset here, as a fork's pull request or a missing
secret leaves them, so the run picks the offline judge."""
STEP_TIMEOUT_S = 300
STAND_INS = {
    "actions/checkout",
    "actions/setup-python",
    "actions/upload-artifact",
    "mikepenz/action-junit-report",
}
"""The `uses:` steps a workflow may have: the test's clone, interpreter and files stand in for them. One that
brought files in (a cache, a download) would change what the `run:` steps see, so none may."""


@dataclass
class Finished:
    name: str
    returncode: int
    output: str


def _github_env(*layers: dict[str, Any] | None) -> dict[str, str]:
    """The env a step sees from the workflow (job env, then step env); what only GitHub has is left out."""
    env: dict[str, str] = {}
    for layer in layers:
        for name, value in (layer or {}).items():
            text = str(value)
            expressions = EXPRESSION.findall(text)
            assert all(GITHUB_ONLY.fullmatch(e) for e in expressions), f"{name}: {text} needs GitHub"
            if expressions:
                env.pop(name, None)
            else:
                env[name] = text
    return env


def _job(workflow: dict[str, Any]) -> dict[str, Any]:
    (job,) = workflow["jobs"].values()
    return job


def _steps_to_run(workflow: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(name, script, env) of each `run:` step in order but `pip install`, the test's environment having
    lookingglass already; asserts that only `uses:` steps the test stands in for are left out."""
    job = _job(workflow)
    assert job["defaults"]["run"]["shell"] == "bash"  # run here as GitHub runs `shell: bash`
    used = {step["uses"].split("@")[0] for step in job["steps"] if "uses" in step}
    assert used <= STAND_INS, used - STAND_INS
    runs = [step for step in job["steps"] if "run" in step]
    assert [step["run"] for step in runs].count("pip install lookingglass") == 1
    assert all(step.get("shell", "bash") == "bash" for step in runs)
    return [
        (step.get("name", step["run"]), step["run"], _github_env(job.get("env"), step.get("env")))
        for step in runs
        if step["run"] != "pip install lookingglass"
    ]


class Shell:
    """Runs scripts as a GitHub runner's bash does, with `evals` and `python` the ones under test."""

    def __init__(self, root: Path) -> None:
        self.bin, self.home, self.scripts = root / "shell-bin", root / "shell-home", root / "shell-scripts"
        for folder in (self.bin, self.home, self.scripts):
            folder.mkdir()
        for name, args in (("evals", "-m evals"), ("python", "")):
            shim = self.bin / name
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {args} "$@"\n')
            shim.chmod(0o755)

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        # Built from nothing: no key, token, store setting or gh login of the developer's shell leaks in.
        base = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.home),
            "PYTHONPATH": str(SOURCE_ROOT),
            "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "CI",
            "GIT_AUTHOR_EMAIL": "ci@example.invalid",
            "GIT_COMMITTER_NAME": "CI",
            "GIT_COMMITTER_EMAIL": "ci@example.invalid",
        }
        return base | extra

    def run(self, name: str, script: str, cwd: Path, env: dict[str, str] | None = None) -> Finished:
        path = self.scripts / f"step-{len(list(self.scripts.iterdir()))}.sh"
        path.write_text(script)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
            cwd=cwd,
            env=self.env(env or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )
        return Finished(name, done.returncode, done.stdout)

    def job(self, workflow: Path, cwd: Path, extra: dict[str, str]) -> list[Finished]:
        """The workflow's steps in order, stopping after the first that fails, as GitHub does."""
        finished: list[Finished] = []
        for name, script, env in _steps_to_run(yaml.safe_load(workflow.read_text())):
            finished.append(self.run(name, script, cwd, env | extra))
            if finished[-1].returncode != 0:
                break
        return finished


def _readme_commands(readme: Path) -> str:
    """The shell block of baselines/README.md: the commands a user runs to approve a baseline."""
    blocks = re.findall(r"```sh\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, readme
    return blocks[0]


def _shown(finished: list[Finished]) -> str:
    return "\n".join(f"--- {f.name}: exit {f.returncode}\n{f.output}" for f in finished)


@pytest.fixture(scope="module")
def bundled_model() -> Iterator[str]:
    """The bundled SmolLM2 served on a free loopback port, as `evals serve-local` serves it."""
    with local_server(ServerOptions(slots=4, ctx_per_slot=PROMPT_TOKENS_ANSWER + 256)) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def approved(tmp_path_factory: pytest.TempPathFactory, bundled_model: str) -> tuple[Shell, Path, str]:
    """A project made by `evals init` in an empty folder, committed, its baseline approved and committed
    as baselines/README.md says; (shell, the repository, the approved run id)."""
    root = tmp_path_factory.mktemp("scaffold")
    shell = Shell(root)
    project = root / "project"
    project.mkdir()
    init = shell.run("init", "evals init\n", project)
    assert init.returncode == 0, init.output
    config = (
        project / "evals.yaml"
    )  # the scaffold's models (local, candidate) and local judge at the bundled server
    assert config.read_text().count(SCAFFOLD_URL) == 3
    config.write_text(config.read_text().replace(SCAFFOLD_URL, bundled_model))
    first = shell.run("commit", "git init -q\ngit add -A\ngit commit -qm 'evals init'\n", project)
    assert first.returncode == 0, first.output
    approve = shell.run("approve", _readme_commands(project / "baselines" / "README.md"), project)
    assert approve.returncode == 0, approve.output
    committed = subprocess.run(
        ["git", "ls-files", "baselines/example"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.split()
    assert committed == ["baselines/example/manifest.json", "baselines/example/results.jsonl"]
    run_id = json.loads((project / "baselines/example/manifest.json").read_text())["run_id"]
    return shell, project, run_id


def _checkout(project: Path, where: Path) -> Path:
    """What actions/checkout gives the job: the committed files only (reports/ is ignored by git)."""
    subprocess.run(["git", "clone", "-q", str(project), str(where)], check=True)
    assert not (where / "reports").exists()
    return where


@integration
def test_the_gate_workflow_reaches_a_decision_against_the_committed_baseline(approved, tmp_path):
    shell, project, approved_run = approved
    checkout = _checkout(project, tmp_path / "checkout")
    summary = tmp_path / "step-summary.md"
    finished = shell.job(
        checkout / ".github/workflows/gate.yml", checkout, {"GITHUB_STEP_SUMMARY": str(summary)}
    )
    *setup, gate = finished
    assert [f.name for f in setup] == ["Load the approved baseline from the repository"], _shown(finished)
    assert setup[0].returncode == 0, _shown(finished)
    assert gate.returncode in (0, 1), _shown(finished)  # pass or fail: a decision, never "cannot decide"
    verdict = summary.read_text()  # the gate's Markdown, as the job summary shows it
    assert ("pass" if gate.returncode == 0 else "fail") in verdict.lower()
    assert approved_run in verdict  # against the committed run, brought back by evals import
    assert (checkout / "reports/gate-junit.xml").is_file()


@integration
def test_the_nightly_workflow_reports_against_the_committed_baseline_and_keeps_its_store(approved, tmp_path):
    shell, project, approved_run = approved
    checkout = _checkout(project, tmp_path / "checkout")
    finished = shell.job(checkout / ".github/workflows/nightly.yml", checkout, {})
    *setup, nightly = finished
    assert all(f.returncode == 0 for f in setup), _shown(finished)
    assert "this night starts a new history" in setup[0].output  # no earlier artifact here
    # documented: 0 when no area regressed, 1 when one did, 2 when a suite could not run
    assert nightly.returncode in (0, 1), _shown(finished)
    (run_folder,) = (checkout / "reports/runs").glob("nightly-example-*")
    card = json.loads((run_folder / "scorecard.json").read_text())
    assert card["baseline_choice"]["run_id"] == approved_run, card["baseline_choice"]
    assert (checkout / "reports/index.html").is_file()
    assert (checkout / "reports/evals.db").is_file()  # the path of the lookingglass-store artifact


def test_the_gate_workflow_before_any_approval_cannot_decide_and_says_what_to_do(tmp_path):
    shell = Shell(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    assert shell.run("init", "evals init\n", project).returncode == 0
    finished = shell.job(project / ".github/workflows/gate.yml", project, {})
    assert [f.returncode for f in finished] == [2], _shown(finished)
    assert "no approved baseline in baselines/example/" in finished[0].output
    assert "baselines/README.md" in finished[0].output
    assert not (project / "reports").exists()  # stopped before it ran anything
