"""Commands that run suites: ``run`` and ``suite validate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from evals.cli.common import (
    EXIT_CODES_HELP,
    EXIT_NO,
    config_option,
    err,
    out,
    plain,
    reports_option,
    reports_path,
)
from evals.config import Config, Endpoint, JudgeEndpoint, load_config
from evals.errors import EvalsError
from evals.progress import RichReporter
from evals.runner import RunOutcome, new_run_id, run_suite, summarize
from evals.store import Store
from evals.suites import Suite, find_problems, load_suite


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--suite", "suite_path", help="Suite file or folder (or hf:NAME[:SPLIT]).")
@click.option("--model", "model_name", help="Model name from evals.yaml (default: the first).")
@click.option(
    "--judge", "judge_name", help="Judge name from evals.yaml, or 'offline' (default: first with a key)."
)
@click.option("--samples", default=1, show_default=True, type=click.IntRange(1), help="Answers per item.")
@click.option("--tag", "tags", multiple=True, help="Label the run (e.g. baseline, nightly); repeatable.")
@click.option("--run-id", help="Id for the new run (default: timestamp and random suffix).")
@click.option(
    "--resume", "resume", metavar="RUN_ID", help="Continue an interrupted run: only missing work is done."
)
@reports_option
@config_option
def run(
    suite_path: str | None,
    model_name: str | None,
    judge_name: str | None,
    samples: int,
    tags: tuple[str, ...],
    run_id: str | None,
    resume: str | None,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Answer every item of a suite with the model and have the judge score each answer 1-5."""
    config = load_config(config_path)
    with Store(reports_path(config, reports_dir)) as store:
        if resume is not None:
            manifest = store.run(resume)
            suite_path = suite_path or manifest.suite_path
            model_name = model_name or manifest.model_name
            judge_name = judge_name or manifest.judge_name
        elif suite_path is None:
            raise click.UsageError("--suite is required (or --resume RUN_ID)")
        suite = load_suite(suite_path)
        model_name, model = config.model(model_name)
        judge_name, judge = config.judge(judge_name)
        _execute(config, store, suite, model_name, model, judge_name, judge, samples, tags, run_id, resume)


def _execute(
    config: Config,
    store: Store,
    suite: Suite,
    model_name: str,
    model: Endpoint,
    judge_name: str,
    judge: JudgeEndpoint,
    samples: int,
    tags: tuple[str, ...],
    run_id: str | None,
    resume: str | None,
) -> RunOutcome:
    run_id = None if resume else (run_id or new_run_id())
    err.print(
        plain(f"suite {suite.name} ({len(suite.items)} items) · model {model_name} · judge {judge_name}")
    )
    try:
        outcome = run_suite(
            store, suite, model_name, model, judge_name, judge, config.path(config.judges_dir),
            samples=samples, tags=tags, run_id=run_id, resume=resume, reporter=RichReporter(console=err),
        )  # fmt: skip
    except KeyboardInterrupt:
        err.print(f"interrupted; continue with: evals run --resume {resume or run_id}")
        raise
    _print_outcome(store, outcome)
    if outcome.asked and outcome.answer_errors == outcome.asked:
        # Per-item errors are data; no answer at all means the model could not be reached or used.
        raise EvalsError(
            f"every one of {outcome.asked} model calls failed (see the errors in the results); is "
            f"{model.base_url or 'the model server'} up and serving {model.model!r}? "
            f"Fix it and continue with: evals run --resume {outcome.manifest.run_id}"
        )
    return outcome


def _print_outcome(store: Store, outcome: RunOutcome) -> None:
    m = outcome.manifest
    table = Table(
        title=plain(f"run {m.run_id}"),
        caption=plain(f"{m.suite_name} · {m.model_name} ({m.model_id or m.model}) · judge {m.judge_model}"),
    )
    for name in ("area", "n", "mean score", "errors"):
        table.add_column(name, justify="left" if name == "area" else "right")
    for row in summarize(outcome.rows):
        mean = "–" if row.mean is None else f"{row.mean:.2f}"
        table.add_row(plain(row.area), str(row.n), mean, str(row.errors))
    out.print(table)
    if m.judge_name == "offline":
        out.print(
            "scores by the offline reference judge (token overlap with the reference), not a frontier judge"
        )
    out.print(
        f"asked {outcome.asked}, judged {outcome.judged}, reused {outcome.reused} cached judgments, "
        f"{outcome.answer_errors} answer errors, {outcome.judge_errors} judge errors"
    )
    out.print(f"run id: {m.run_id}")
    out.print(f"results: {store.reports_dir / 'runs' / m.run_id / 'results.jsonl'}")


@click.group()
def suite() -> None:
    """Work with suites."""


@suite.command("validate", epilog=EXIT_CODES_HELP)
@click.argument("path")
def suite_validate(path: str) -> None:
    """Check a suite file or folder; report every problem with file, line and field."""
    problems = find_problems(path)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
        err.print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
        sys.exit(EXIT_NO)
    loaded = load_suite(path)
    areas = sorted({item.area for item in loaded.items})
    out.print(
        f"ok: suite {loaded.name}: {len(loaded.items)} items in {len(areas)} areas ({', '.join(areas)})"
    )
