"""``evals review``: hand the answers people should score to people, and take their scores back."""

from __future__ import annotations

from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain, reports_option, reports_path
from evals.config import load_config
from evals.names import RUN_ID
from evals.store import open_store
from evals.store.human import MAX_SEED
from evals.trust.draw import draw_review
from evals.trust.human import import_review
from evals.trust.review import canary_movers, review_run, select_rows, write_review


def _seed(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value > MAX_SEED:
        raise click.BadParameter(f"{value} is above the largest seed a store keeps ({MAX_SEED})", param=param)
    return value


@click.group(epilog=EXIT_CODES_HELP)
def review() -> None:
    """People in the loop: export answers to score by hand, import the scores as labels and with the run."""


@review.command("export", epilog=EXIT_CODES_HELP)
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for review.csv and review.jsonl (default: reports/review/<run_id>/, and "
    "reports/review/<run_id>/<draw>/ for --random).",
)
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="At most this many answers, most urgent first."
)
@click.option(
    "--random",
    "sample_size",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Instead of the urgent answers: N answers drawn uniformly at random, stratified by area (in "
    "proportion, at least 1 per area), kept in the store as a random draw.",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=None,
    metavar="S",
    callback=_seed,
    help="Seed of the --random draw (default: a fresh one, kept with the draw); the same seed picks the "
    "same answers.",
)
@reports_option
@config_option
def review_export(
    run_id: str,
    out_dir: Path | None,
    limit: int | None,
    sample_size: int | None,
    seed: int | None,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Write the answers of RUN_ID people should score (judge errors, panel disagreements, split repeats,
    verdicts at the pass boundary) as CSV and JSONL labels files with a blank human_score and a reason.

    With --random N, a uniform random sample of the run's answers instead (reason: random, and the id of
    the draw, which the store keeps): only scores of a random sample can correct the judge's figures."""
    if sample_size is None and seed is not None:
        raise click.UsageError("--seed goes with --random N")
    if sample_size is not None and limit is not None:
        raise click.UsageError("--limit goes with the urgent answers, not with --random N (give N alone)")
    config = load_config(config_path)
    reports = reports_path(config, reports_dir)
    with open_store(config, reports, readonly=sample_size is None) as store:
        run = review_run(store, run_id, config.gate.pass_score)
        if sample_size is not None:
            draw, rows = draw_review(store, run, sample_size, seed)
            folder = out_dir or reports / "review" / run_id / draw.draw_id
        else:
            rows = select_rows(run) + canary_movers(store, run_id)
            rows = rows[:limit] if limit is not None else rows
            folder = out_dir or reports / "review" / run_id
    paths = write_review(rows, folder)
    if sample_size is not None:
        areas = ", ".join(f"{a.area} {a.drawn} of {a.answers}" for a in draw.areas)
        out.print(
            plain(f"{len(rows)} answers drawn at random ({areas}); draw {draw.draw_id}, seed {draw.seed}"),
            soft_wrap=True,
        )
    out.print(plain(f"{len(rows)} answers to review: {paths['csv']} and {paths['jsonl']}"), soft_wrap=True)
    then = f"--run {run_id}" if sample_size is not None else f"--into labels.jsonl (and/or --run {run_id})"
    out.print(
        plain(
            "fill in human_score (1-5, per evals/defaults/labels/GUIDE.md) and rater, then: "
            f"evals review import FILE {then}"
        ),
        soft_wrap=True,
    )


@review.command("import", epilog=EXIT_CODES_HELP)
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--run",
    "run_id",
    type=RUN_ID,
    default=None,
    help="Store the scores with this run's answers (run, item, sample, rater, score, when, and whether the "
    "row is of a random draw of the run).",
)
@click.option(
    "--into",
    type=click.Path(path_type=Path),
    default=None,
    help="Labels file (.jsonl or .csv) the scored rows are appended to (default: labels.jsonl, unless --run "
    "is given).",
)
@reports_option
@config_option
def review_import(
    path: Path, run_id: str | None, into: Path | None, reports_dir: Path | None, config_path: Path | None
) -> None:
    """Validate a filled review file (file:line errors) and take its scored rows into a labels file, into
    the store with a run's answers (--run), or both: nothing is written unless every row can be.

    Rows the labels file or the store holds already (same answer, rater and score) are skipped and counted:
    importing a file twice adds nothing. A rater's new score for an answer they scored differently before
    is an error. With --run, every row must be an answer of the run and name its rater; a score counts as
    part of a random sample only when its row came from a random draw of the run (review export --random)."""
    if run_id is None:
        done = import_review(path, into or Path("labels.jsonl"))
    else:
        config = load_config(config_path)
        with open_store(config, reports_path(config, reports_dir)) as store:
            done = import_review(path, into, store, run_id)
    parts = []
    if into is not None or run_id is None:
        parts.append(f"appended {len(done.appended)} scored rows to {into or Path('labels.jsonl')}")
    if run_id is not None:
        parts.append(f"stored {len(done.stored)} scores with run {run_id} ({done.random} of a random draw)")
    parts.append(f"skipped {done.blank} rows without a score")
    if done.present:
        parts.append(f"skipped {done.present} rows already in {into or Path('labels.jsonl')}")
    if done.stored_present:
        parts.append(f"skipped {done.stored_present} scores the store holds already")
    out.print(plain("; ".join(parts)), soft_wrap=True)
