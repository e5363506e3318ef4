"""Recipes for the engines teams already run (issue 22 item 2): `evals init --deploy kubernetes|actions`
writes manifests that Kubernetes' and GitHub Actions' schemas accept, and the commands they hold, run as 3
local worker processes against a throwaway PostgreSQL, finish a planned run with every item stored once."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from test_workers import answer, check_stored_once, write_project

from evals.cli import main
from evals.fakes import FakeOpenAI, grade_by_reference, text_reply
from evals.store import Store

KUBERNETES = "1.30"  # a version kubernetes-validate bundles schemas for
K8S_FILES = ["configmap.yaml", "secret.example.yaml", "plan-job.yaml", "workers-job.yaml"]
WORKERS = 3
ITEMS = 12


def init(root: Path, *deploy: str) -> Path:
    args = ["init", str(root)] + [f"--deploy={name}" for name in deploy]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return root


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_init_without_deploy_writes_no_recipe_and_with_it_writes_each(tmp_path):
    plain = init(tmp_path / "plain")
    assert not (plain / "deploy").exists() and not (plain / ".github/workflows/workers.yml").exists()
    both = init(tmp_path / "both", "kubernetes", "actions")
    kube = both / "deploy" / "kubernetes"
    assert sorted(p.name for p in kube.iterdir()) == sorted(
        [*K8S_FILES, "Dockerfile", "README.md", ".gitignore"]
    )
    assert "secret.yaml" in (kube / ".gitignore").read_text().split()
    assert (both / ".github/workflows/workers.yml").is_file()
    assert (both / ".github/workflows/nightly.yml").is_file()  # the project itself is still written
    again = CliRunner().invoke(main, ["init", str(both), "--deploy", "kubernetes"])
    assert again.exit_code == 0 and "created  " not in again.output  # nothing overwritten


def test_an_unknown_engine_is_refused_with_the_choices(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "p"), "--deploy", "nomad"])
    assert result.exit_code == 2 and "kubernetes" in result.output and "actions" in result.output
    assert not (tmp_path / "p").exists()


def test_the_kubernetes_manifests_validate_against_the_kubernetes_schemas(tmp_path):
    kube = init(tmp_path, "kubernetes") / "deploy" / "kubernetes"
    kinds = {}
    for name in K8S_FILES:
        for doc in documents(kube / name):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            kinds[doc["metadata"]["name"], doc["kind"]] = doc
    workers = kinds["evals-workers", "Job"]["spec"]
    assert workers["completionMode"] == "Indexed" and workers["completions"] == workers["parallelism"] > 1
    assert workers["backoffLimitPerIndex"] >= 1
    container = workers["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "evals"
    store = kinds["evals", "ConfigMap"]["data"]["EVALS_STORE"]
    assert store.startswith("postgresql://") and ":" not in store.split("://", 1)[1].split("@")[0]
    assert kinds["evals", "Secret"]["stringData"]["PGPASSWORD"] == "change-me"  # a placeholder only
    # The check bites: a misspelt field is refused.
    broken = copy.deepcopy(kinds["evals-workers", "Job"])
    broken["spec"]["completionMod"] = broken["spec"].pop("completionMode")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_workflow_validates_against_the_actions_schema(tmp_path):
    workflow_path = init(tmp_path, "actions") / ".github" / "workflows" / "workers.yml"
    checked = check_workflow(workflow_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    workflow = yaml.safe_load(workflow_path.read_text())
    work = workflow["jobs"]["work"]
    assert work["needs"] == "plan" and len(work["strategy"]["matrix"]["worker"]) > 1
    assert workflow["env"]["PGPASSWORD"] == "${{ secrets.PGPASSWORD }}"
    assert "secrets" not in workflow["env"]["EVALS_STORE"]  # a variable: the URL holds no password
    # The check bites: a job without runs-on is refused.
    del workflow["jobs"]["work"]["runs-on"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow))
    assert check_workflow(broken).returncode != 0


# --- the same commands, run here: 3 workers on a throwaway PostgreSQL ------------------------------------


def shim(root: Path) -> str:
    """A PATH whose `evals` is this checkout's, as the image's `evals` would be."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    script = bin_dir / "evals"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m evals "$@"\n')
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def base_env(root: Path) -> dict[str, str]:
    here = str(Path(__file__).parent.parent)
    python_path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PATH": shim(root), "PYTHONPATH": python_path, "OPENAI_API_KEY": "sk-deploy-test"}


def start(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(processes: list[subprocess.Popen[str]]) -> list[str]:
    logs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stdout + stderr
        logs.append(stdout + stderr)
    return logs


def check_run(root: Path, url: str, run_id: str, logs: list[str]) -> None:
    assert sum("every item is done: this worker finished run" in log for log in logs) == 1
    with Store(root, url=url) as store:
        check_stored_once(store, run_id, ITEMS)


@pytest.fixture
def fakes():
    with (
        FakeOpenAI(text_reply(answer), model_id="qwen-test", latency=0.05) as model,
        FakeOpenAI(grade_by_reference, model_id="judge-test", latency=0.01) as judge,
    ):
        yield model, judge


def container_command(job: dict, values: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The container's command and args with Kubernetes' $(VAR) expanded, and its env, as the kubelet
    would make them: each variable's value, or the key its ConfigMap or Secret reference names."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            source = entry["valueFrom"]
            ref = source.get("configMapKeyRef") or source["secretKeyRef"]
            env[entry["name"]] = values[ref["key"]]
    argv = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], word) for word in container["command"]]
    argv += [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], word) for word in container["args"]]
    return argv, env


def test_the_kubernetes_plan_and_worker_commands_finish_a_run_with_3_workers(tmp_path, postgres_url, fakes):
    model, judge = fakes
    kube = init(tmp_path / "p", "kubernetes") / "deploy" / "kubernetes"
    project = tmp_path / "project"
    project.mkdir()
    write_project(project, model, ITEMS, judge)
    (config,) = documents(kube / "configmap.yaml")
    (secret,) = documents(kube / "secret.example.yaml")
    values = {**config["data"], **secret["stringData"]}
    # This cluster's settings: the throwaway store (trust on its socket: PGPASSWORD is set and unused).
    values.update(
        EVALS_STORE=postgres_url, RUN_ID="k8s-run-1", SUITE="suite.jsonl", MODEL="local", JUDGE="fake"
    )
    env = base_env(tmp_path)
    argv, pod_env = container_command(documents(kube / "plan-job.yaml")[0], values)
    assert argv[:3] == ["evals", "run", "--plan-only"]
    planned = subprocess.run(
        argv, cwd=project, env={**env, **pod_env}, capture_output=True, text=True, timeout=120
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "run id: k8s-run-1" in planned.stdout and model.count() == 0
    argv, pod_env = container_command(documents(kube / "workers-job.yaml")[0], values)
    assert argv == ["evals", "worker", "k8s-run-1"] and pod_env["PGPASSWORD"] == "change-me"
    pods = [{**env, **pod_env, "JOB_COMPLETION_INDEX": str(index)} for index in range(WORKERS)]
    workers = [start([*argv, "--reports", f"pod-{n}"], project, pod) for n, pod in enumerate(pods)]
    check_run(project, postgres_url, "k8s-run-1", finish(workers))
    assert model.count() == ITEMS  # nothing asked twice


EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def step_env(step: dict, job: dict, workflow: dict, context: dict[str, str]) -> dict[str, str]:
    """The step's environment as the runner makes it: workflow, job and step env, expressions filled."""
    merged = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
    return {name: EXPRESSION.sub(lambda m: context[m.group(1)], str(value)) for name, value in merged.items()}


def test_the_actions_plan_and_worker_steps_finish_a_run_with_3_workers(tmp_path, postgres_url, fakes):
    model, judge = fakes
    workflow_path = init(tmp_path / "p", "actions") / ".github" / "workflows" / "workers.yml"
    workflow = yaml.safe_load(workflow_path.read_text())
    project = tmp_path / "project"
    project.mkdir()
    write_project(project, model, ITEMS, judge)
    context = {
        "vars.EVALS_STORE": postgres_url, "secrets.PGPASSWORD": "unused-on-trust",
        "secrets.ANTHROPIC_API_KEY": "", "inputs.suite": "suite.jsonl", "inputs.model": "local",
        "inputs.judge": "fake", "github.run_id": "77", "github.run_attempt": "1",
    }  # fmt: skip
    env = base_env(tmp_path)
    plan_job = workflow["jobs"]["plan"]
    (plan_step,) = [step for step in plan_job["steps"] if step.get("id") == "plan"]
    outputs = tmp_path / "github_output"
    outputs.touch()
    planned = subprocess.run(
        ["bash", "-e", "-c", plan_step["run"]], cwd=project, capture_output=True, text=True, timeout=120,
        env={**env, **step_env(plan_step, plan_job, workflow, context), "GITHUB_OUTPUT": str(outputs)},
    )  # fmt: skip
    assert planned.returncode == 0, planned.stdout + planned.stderr
    step_outputs = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    job_output = EXPRESSION.fullmatch(plan_job["outputs"]["run_id"])
    assert job_output and job_output.group(1) == "steps.plan.outputs.run_id"
    run_id = step_outputs["run_id"]
    assert run_id == "workers-77-1" and model.count() == 0
    context["needs.plan.outputs.run_id"] = run_id
    work_job = workflow["jobs"]["work"]
    (work_step,) = [step for step in work_job["steps"] if step.get("id") == "work"]
    assert "evals worker" in work_step["run"]
    assert len(work_job["strategy"]["matrix"]["worker"]) >= WORKERS
    runner = {**env, **step_env(work_step, work_job, workflow, context)}
    script = work_step["run"] + " --reports runner-{}"  # each runner has a checkout of its own
    workers = [start(["bash", "-e", "-c", script.format(n)], project, runner) for n in range(WORKERS)]
    check_run(project, postgres_url, run_id, finish(workers))
    assert model.count() == ITEMS
