"""Commands that set up a project: ``init`` and ``rubric list``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evals.cli.common import EXIT_NO, config_option, out, plain
from evals.cli.examples import with_examples
from evals.config import load_config
from evals.defaults.scaffold import DEPLOY_TARGETS, init_project, relative_to_cwd
from evals.errors import RubricError
from evals.judge.rubrics import read_rubric, rubric_search

INIT_EXIT_HELP = (
    "\b\nExit codes:\n  0  done: every file created or, when it existed, skipped\n"
    "  2  could not write a file (a file where a folder should be, no permission)"
)
RUBRIC_EXIT_HELP = (
    "\b\nExit codes:\n  0  every rubric loads\n  1  a rubric file has problems (each is shown)\n"
    "  2  could not run: bad config"
)


@click.command(epilog=with_examples(INIT_EXIT_HELP, "init"))
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--deploy",
    type=click.Choice(sorted(DEPLOY_TARGETS)),
    multiple=True,
    help="Also write a recipe that starts 'evals worker' processes on a shared PostgreSQL store: "
    "kubernetes (deploy/kubernetes/: a plan Job and an Indexed Job of workers) or actions "
    "(.github/workflows/workers.yml: a plan job and a matrix of workers). Repeatable.",
)
def init(directory: Path, deploy: tuple[str, ...]) -> None:
    """Scaffold a project in DIRECTORY (default: here); files that exist are skipped, never overwritten.

    \b
    Writes evals.yaml (commented: vLLM, Ollama, llama.cpp, Anthropic and OpenAI examples; the models
    `local` and `candidate` are a local server at http://127.0.0.1:8000/v1, as `evals serve-local` serves
    it), suites/example/ (30 items in YAML and JSONL over 3 areas: enough for the gate to decide),
    judges/correctness.yaml (the default rubric, to edit), .github/workflows/ (nightly.yml and gate.yml),
    baselines/README.md (how to approve and commit the baseline the workflows compare with) and a
    .gitignore for reports/; with --deploy, the recipe that runs 'evals worker' processes there (evals
    docs deploy).
    """
    result = init_project(directory, deploy)
    for path in result.created:
        out.print(plain(f"created  {path}"), soft_wrap=True)
    for path in result.skipped:
        out.print(plain(f"skipped  {path} (exists; left as it is)"), soft_wrap=True)
    out.print(plain(f"{len(result.created)} created, {len(result.skipped)} skipped. Next steps:"))
    where = relative_to_cwd(result.root)
    steps = [] if where == "." else [f"cd {where}"]
    steps += [
        "evals serve-local            # in another terminal: the bundled model at http://127.0.0.1:8000/v1",
        "evals suite validate suites",
        "evals run --judge offline    # the example suite (default_suite), scored by the offline judge",
        "then, for the CI workflows: approve a baseline and commit it, as baselines/README.md says",
    ]
    if deploy:
        steps.append("evals docs deploy            # starting the workers on a shared PostgreSQL store")
    for step in steps:
        out.print(plain(f"  {step}"), soft_wrap=True)


@click.group()
def rubric() -> None:
    """Work with rubrics."""


@rubric.command("list", epilog=RUBRIC_EXIT_HELP)
@config_option
def rubric_list(config_path: Path | None) -> None:
    """Every rubric reachable, its hash and where it came from (judges_dir, ./judges, shipped).

    A name is looked up in the config's judges_dir, then judges/ beside evals.yaml, then the rubrics shipped
    with lookingglass; the first file found is used, and later files of the same name are marked shadowed.
    """
    search = rubric_search(load_config(config_path))
    out.print(plain(f"looked up in order: {search.describe()}"), soft_wrap=True)
    files = sorted(search.files(), key=lambda entry: entry.name)  # stable: lookup order within a name
    width = max((len(entry.name) for entry in files), default=0)
    broken = 0
    for entry in files:
        error = None
        try:
            version = read_rubric(entry.path).hash
        except RubricError as exc:
            version, error = "invalid", str(exc)
        note = f"  shadowed by {entry.shadowed_by.origin}" if entry.shadowed_by else ""
        line = f"{entry.name:<{width}}  {version:<16}  {entry.origin:<10}  {entry.path}{note}"
        out.print(plain(line), soft_wrap=True)
        if error is not None:
            broken += 1
            out.print(plain("    " + error.replace("\n", "\n    ")), soft_wrap=True)
    if not files:
        out.print("no rubrics found")
    if broken:
        sys.exit(EXIT_NO)
