"""``evals judge rerun``: re-judge a run's stored answers K times, fresh, as a new run (``evals.trust.rerun``)."""

from __future__ import annotations

from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, err, out, plain, reports_option, reports_path
from evals.cli.confirm import perimeter
from evals.cli.judge import judge
from evals.cli.local_judge import add_local_judge, serve_local_judge
from evals.cli.outcome import print_outcome, write_run_page, write_stopped_page
from evals.cli.progress import RichReporter
from evals.config import Config, load_config
from evals.errors import EvalsError
from evals.judge.rubrics import rubric_search
from evals.names import RUN_ID, TAG
from evals.outbound.gateway import FAIL_AFTER
from evals.outbound.interrupts import sigterm_interrupts
from evals.outbound.telemetry import tracing
from evals.plan import MAX_SAMPLES, new_run_id
from evals.runner import RunOutcome, remaining
from evals.store import Store, open_store
from evals.trust import rerun as reruns


@judge.command("rerun", epilog=EXIT_CODES_HELP)
@click.argument("source", metavar="RUN_ID", type=RUN_ID)
@click.option(
    "--repeats",
    default=reruns.DEFAULT_REPEATS,
    show_default=True,
    type=click.IntRange(1, MAX_SAMPLES),
    help="Verdicts per answer, every one fresh (never from the judgment cache).",
)
@click.option(
    "--judge",
    "judge_name",
    help="Judge name from evals.yaml, or 'local' (the bundled model) (default: the run's judge).",
)
@click.option(
    "--rubric", help="Grade with this rubric instead of the judge's default (items naming their own keep it)."
)
@click.option("--run-id", type=RUN_ID, help="Id for the new run (default: timestamp and random suffix).")
@click.option("--tag", "tags", multiple=True, type=TAG, help="Label the new run; repeatable.")
@click.option(
    "--fail-after",
    default=FAIL_AFTER,
    show_default=True,
    type=click.IntRange(0),
    help="Stop (resumable) when the judge's first N calls all fail the same way; 0 never stops.",
)
@reports_option
@config_option
def rerun(
    source: str,
    repeats: int,
    judge_name: str | None,
    rubric: str | None,
    run_id: str | None,
    tags: tuple[str, ...],
    fail_after: int,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Re-judge the stored answers of RUN_ID --repeats times each, as a new run sharing those answers.

    Nothing is asked of the model: the answers are copied unchanged (a failed answer stays an error).
    Every verdict is fresh, so the new run's scorecard measures the judge's own noise (flip rate, its
    share of the variance). With --judge or --rubric it is also how two runs judged differently are made
    comparable: rerun the baseline with the candidate's judge, then compare the candidate with the rerun.
    Interrupted, it continues with evals run --resume NEW.
    """
    config = load_config(config_path)
    with (
        open_store(config, reports_path(config, reports_dir)) as store,
        tracing(config),
        sigterm_interrupts(),
    ):
        manifest = store.run(source)
        with serve_local_judge(config, judge_name or manifest.judge_name) as config:
            name, endpoint = config.judge(judge_name or manifest.judge_name)
            run_id = run_id or new_run_id(manifest.model_name)
            err.print(
                plain(
                    f"re-judging the answers of run {source} · judge {name} · {repeats} verdicts per answer"
                )
            )
            try:
                outcome = reruns.rerun(
                    store, source, name, endpoint, rubric_search(config), repeats, rubric, run_id, tags,
                    RichReporter(console=err), perimeter(config, manifest, fail_after),
                )  # fmt: skip
            except KeyboardInterrupt:
                if store.has_run(run_id):
                    err.print(plain(f"interrupted; continue with: evals run --resume {run_id}"))
                raise
            except EvalsError:
                write_stopped_page(store, run_id, config)
                raise
        _print(config, store, outcome)


def resume(
    config: Config, store: Store, run_id: str, judge_name: str | None, dry_run: bool, fail_after: int
) -> None:
    """``evals run --resume RUN_ID`` of a rerun: no suite, no model; only the missing verdicts."""
    manifest = store.run(run_id)
    config = add_local_judge(config, judge_name or manifest.judge_name)
    name, endpoint = config.judge(judge_name or manifest.judge_name)
    if dry_run:
        _, to_judge = remaining(store, manifest)
        out.print(
            plain(
                f"dry run: rerun {run_id} needs {len(to_judge)} more verdicts of judge {name}; nothing is called"
            )
        )
        return
    err.print(plain(f"resuming rerun {run_id} of run {reruns.source_of(manifest)} · judge {name}"))
    with serve_local_judge(config, name) as config, tracing(config):
        name, endpoint = config.judge(name)
        try:
            outcome = reruns.resume(
                store, run_id, name, endpoint, rubric_search(config), RichReporter(console=err),
                perimeter(config, manifest, fail_after),
            )  # fmt: skip
        except KeyboardInterrupt:
            err.print(plain(f"interrupted; continue with: evals run --resume {run_id}"))
            raise
        except EvalsError:
            write_stopped_page(store, run_id, config)
            raise
    _print(config, store, outcome)


def _print(config: Config, store: Store, outcome: RunOutcome) -> None:
    """The rerun's outcome and noise figures; its page (scorecard and index) is written, as a run's is."""
    from evals.cli.report import noise_lines

    try:
        print_outcome(store, outcome)
    except EvalsError:
        write_stopped_page(store, outcome.manifest.run_id, config)
        raise
    card = write_run_page(store, outcome.manifest.run_id, config)
    assert card is not None  # it scored an answer: it stored one
    for line in noise_lines(card):
        out.print(plain(line), soft_wrap=True)
