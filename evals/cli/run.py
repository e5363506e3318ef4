"""Commands that run suites: ``run``, ``suite validate``, ``demo``, ``serve-local``."""

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
from evals.interrupts import sigterm_interrupts
from evals.progress import RichReporter
from evals.providers.health import FAIL_AFTER
from evals.runner import MAX_SAMPLES, RunOutcome, new_run_id, run_suite, summarize
from evals.store import Store
from evals.suites import Suite, find_problems, load_suite


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--suite", "suite_path", help="Suite file or folder (or hf:NAME[:SPLIT]).")
@click.option("--model", "model_name", help="Model name from evals.yaml (default: the first).")
@click.option(
    "--judge", "judge_name", help="Judge name from evals.yaml, or 'offline' (default: first with a key)."
)
@click.option(
    "--samples",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_SAMPLES),
    help=f"Answers per item (at most {MAX_SAMPLES}).",
)
@click.option("--tag", "tags", multiple=True, help="Label the run (e.g. baseline, nightly); repeatable.")
@click.option("--run-id", help="Id for the new run (default: timestamp and random suffix).")
@click.option(
    "--resume", "resume", metavar="RUN_ID", help="Continue an interrupted run: only missing work is done."
)
@click.option(
    "--fail-after",
    default=FAIL_AFTER,
    show_default=True,
    type=click.IntRange(0),
    help="Stop the run (resumable) when the first N calls to the model or judge all fail with the same "
    "error; 0 never stops.",
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
    fail_after: int,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Answer every item of a suite with the model and have the judge score each answer 1-5.

    The run is stored as it goes: Ctrl-C or SIGTERM marks it interrupted (exit 130), and --resume
    continues it. When the first calls to the model or the judge all fail the same way (see --fail-after)
    the run stops with what to change (exit 2). A judge with 'structured: auto' falls back from
    json_schema to json_object to text when its server refuses one, says so, and keeps it for the run.
    """
    config = load_config(config_path)
    with Store(reports_path(config, reports_dir)) as store, sigterm_interrupts():
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
        _execute(
            config, store, suite, model_name, model, judge_name, judge, samples, tags, run_id, resume,
            fail_after,
        )  # fmt: skip


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
    fail_after: int = FAIL_AFTER,
) -> RunOutcome:
    run_id = None if resume else (run_id or new_run_id())
    err.print(
        plain(f"suite {suite.name} ({len(suite.items)} items) · model {model_name} · judge {judge_name}")
    )
    try:
        outcome = run_suite(
            store, suite, model_name, model, judge_name, judge, config.path(config.judges_dir),
            samples=samples, tags=tags, run_id=run_id, resume=resume, reporter=RichReporter(console=err),
            fail_after=fail_after,
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


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--judge", "judge_name", help="Judge name from evals.yaml (default: first with a key, else offline)."
)
@click.option("--limit", type=click.IntRange(1), help="Ask only the first N items (a quicker look).")
@reports_option
@config_option
def demo(
    judge_name: str | None, limit: int | None, reports_dir: Path | None, config_path: Path | None
) -> None:
    """Serve the bundled SmolLM2-135M on llama.cpp and run suites/demo against it."""
    from evals.localmodel import MODEL_ALIAS, local_server
    from evals.render import write_index, write_scorecard
    from evals.scorecard import build_scorecard

    config = load_config(config_path)
    loaded = load_suite(config.path(config.suites_dir) / "demo")
    if limit is not None:
        loaded = loaded.head(limit)
    judge_name, judge = config.judge(judge_name)
    err.print("starting the bundled SmolLM2-135M-Instruct on llama.cpp…")
    with Store(reports_path(config, reports_dir)) as store, local_server() as base_url:
        model = Endpoint(
            base_url=base_url, model=MODEL_ALIAS, temperature=0.0, max_tokens=48, max_concurrency=1
        )
        outcome = _execute(
            config, store, loaded, "smollm2-local", model, judge_name, judge, 1, ("demo",), None, None
        )
        # The scorecard needs no server: build it after the run, then the server stops with the block.
        card = build_scorecard(store, outcome.manifest.run_id, None, config.scorecard)
        paths = write_scorecard(card, store.reports_dir / "runs" / outcome.manifest.run_id)
        write_index(store)
    out.print(plain(f"weak areas: {', '.join(card['weak_areas']) or 'none'}"))
    out.print(f"scorecard: {paths['html']}")


@click.command("serve-local", epilog=EXIT_CODES_HELP)
@click.option("--port", default=8000, show_default=True, type=int, help="Loopback port.")
@click.option("--n-ctx", default=2048, show_default=True, type=int, help="Context window in tokens.")
def serve_local(port: int, n_ctx: int) -> None:
    """Serve the bundled SmolLM2-135M at http://127.0.0.1:PORT/v1 in the foreground (Ctrl-C stops it)."""
    from evals.localmodel import ServerOptions, serve_foreground

    err.print(f"serving SmolLM2-135M-Instruct at http://127.0.0.1:{port}/v1 (Ctrl-C stops)")
    sys.exit(serve_foreground(ServerOptions(port=port, n_ctx=n_ctx, verbose=True)))
