"""``evals review``: hand the answers people should score to people, and take their scores back."""

from __future__ import annotations

from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain, reports_option, reports_path
from evals.config import load_config
from evals.names import RUN_ID
from evals.store import open_store
from evals.trust.review import canary_movers, import_review, review_run, select_rows, write_review


@click.group(epilog=EXIT_CODES_HELP)
def review() -> None:
    """People in the loop: export answers to score by hand, import the scores as labels."""


@review.command("export", epilog=EXIT_CODES_HELP)
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for review.csv and review.jsonl (default: reports/review/<run_id>/).",
)
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="At most this many answers, most urgent first."
)
@reports_option
@config_option
def review_export(
    run_id: str, out_dir: Path | None, limit: int | None, reports_dir: Path | None, config_path: Path | None
) -> None:
    """Write the answers of RUN_ID people should score (judge errors, panel disagreements, split repeats,
    verdicts at the pass boundary) as CSV and JSONL labels files with a blank human_score and a reason."""
    config = load_config(config_path)
    reports = reports_path(config, reports_dir)
    with open_store(config, reports, readonly=True) as store:
        rows = select_rows(review_run(store, run_id, config.gate.pass_score)) + canary_movers(store, run_id)
        rows = rows[:limit] if limit is not None else rows
    paths = write_review(rows, out_dir or reports / "review" / run_id)
    out.print(plain(f"{len(rows)} answers to review: {paths['csv']} and {paths['jsonl']}"), soft_wrap=True)
    out.print(
        "fill in human_score (1-5, per evals/defaults/labels/GUIDE.md) and rater, then: evals review import FILE"
    )


@review.command("import", epilog=EXIT_CODES_HELP)
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--into",
    type=click.Path(path_type=Path),
    default=Path("labels.jsonl"),
    show_default=True,
    help="Labels file (.jsonl or .csv) the scored rows are appended to.",
)
def review_import(path: Path, into: Path) -> None:
    """Validate a filled review file (file:line errors) and append its scored rows to a labels file.

    Rows the labels file holds already (same id, rater and score) are skipped and counted: importing a file
    twice adds nothing. A rater's new score for an answer they scored differently before is an error."""
    done = import_review(path, into)
    line = f"appended {len(done.appended)} scored rows to {into}; skipped {done.blank} rows without a score"
    if done.present:
        line += f"; skipped {done.present} rows already in {into}"
    out.print(plain(line), soft_wrap=True)
