"""``evals worker RUN_ID``: one of any number of processes working a run over a shared store; and what
``evals run --plan-only`` prints (``plan_only``)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, err, out, plain, reports_option, reports_path
from evals.cli.examples import with_examples
from evals.cli.outcome import check_rows_scored, print_outcome
from evals.config import Config, Endpoint, JudgeEndpoint, load_config
from evals.errors import EvalsError
from evals.judge.rubrics import rubric_search
from evals.outbound.audit import audit_line, worker_chain
from evals.outbound.gateway import FAIL_AFTER, EndpointFailing
from evals.outbound.interrupts import sigterm_interrupts
from evals.plan import RunSpec
from evals.records import Selection
from evals.store import Store, open_store
from evals.suites import Suite, load_suite
from evals.trust.canary import Canary
from evals.workers.loop import LEASE_SECONDS, WorkerSettings, plan, work


def run_spec(
    config: Config,
    suite: Suite,
    model: tuple[str, Endpoint],
    judge: tuple[str, JudgeEndpoint],
    **fields: object,
) -> RunSpec:
    """The ``RunSpec`` of a run of ``suite`` by ``model`` (name, endpoint) judged by ``judge``, with the
    config's rubrics, redaction, sensitivity, drift canary and in-house judge; ``fields``: the rest."""
    return RunSpec(
        model[0], model[1], judge[0], judge[1], rubric_search(config), suite=suite,
        redaction=config.redaction, default_sensitivity=config.default_sensitivity,
        observer=Canary.of(config, suite),
        inhouse=config.judge(judge[1].restricted_judge) if judge[1].restricted_judge else None,
        **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def plan_only(config: Config, store: Store, spec: RunSpec) -> None:
    """Create the run for workers and say how to start them (``evals run --plan-only``)."""
    manifest = plan(store, spec)
    items = len(spec.suite.items) if spec.suite is not None else 0
    units = items * manifest.samples
    out.print(
        plain(
            f"planned run {manifest.run_id}: {items} items × {manifest.samples} sample(s) = {units} units; "
            "nothing was called"
        ),
        soft_wrap=True,
    )
    out.print(plain(f"run id: {manifest.run_id}"), soft_wrap=True)
    out.print(
        plain(
            f"start its workers (any number, on machines sharing the store): evals worker {manifest.run_id}"
        ),
        soft_wrap=True,
    )
    if store.dialect != "postgresql":
        out.print(
            "this store is SQLite: one worker at a time; several need a PostgreSQL store (evals docs workers)"
        )


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite amount of dollars")
    return value


@click.command("worker", epilog=with_examples(EXIT_CODES_HELP, "worker"))
@click.argument("run_id")
@click.option(
    "--workers-concurrency",
    "concurrency",
    type=click.IntRange(1, 1024),
    help="Calls this worker sends at once to each endpoint (default: the endpoint's max_concurrency, which "
    "all the workers of a PostgreSQL store share).",
)
@click.option(
    "--lease-seconds",
    default=LEASE_SECONDS,
    show_default=True,
    type=click.FloatRange(2, 3600),
    help="How long this worker's units stay its own unrenewed (it renews them every third): a dead "
    "worker's units go to the others after this.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    callback=lambda ctx, param, value: _finite(value),
    metavar="USD",
    help="The most the run's workers may spend together, from its first worker on (replaces the run's "
    "limit; default: the one given before); needs token prices in evals.yaml.",
)
@click.option(
    "--fail-after",
    default=FAIL_AFTER,
    show_default=True,
    type=click.IntRange(0),
    help="Stop this worker when the first N calls to the model or judge all fail with the same error; "
    "0 never stops.",
)
@reports_option
@config_option
def worker(
    run_id: str,
    concurrency: int | None,
    lease_seconds: float,
    max_cost: float | None,
    fail_after: int,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Work a run made by 'evals run --plan-only' (or an interrupted one) with any number of other workers.

    Each worker leases batches of the run's items from the store, answers and judges them as 'evals run'
    does, and exits when none is left; a worker that dies (even kill -9) loses its items to the others
    once its lease runs out, and nothing stored is asked again. The endpoints' max_concurrency,
    requests_per_minute and tokens_per_minute, and --max-cost, hold for all the workers together on a
    PostgreSQL store. The worker that finds every item done first finishes the run (results, aggregates,
    audit head) and prints it. A SQLite store takes one worker at a time. Ctrl-C or SIGTERM gives this
    worker's items back (exit 130).
    """
    config = load_config(config_path)
    settings = WorkerSettings(concurrency, lease_seconds, max_cost)
    with open_store(config, reports_path(config, reports_dir)) as store, sigterm_interrupts():
        manifest = store.run(run_id)
        if manifest.config.rerun_of is not None:
            raise EvalsError(
                f"run {run_id} re-judges the frozen answers of {manifest.config.rerun_of} (evals judge "
                f"rerun): continue it with evals run --resume {run_id}"
            )
        selection: Selection = manifest.selection()
        suite = load_suite(manifest.suite_path, config.default_sensitivity)
        if not selection.whole:
            suite = suite.select(selection.areas, selection.item_tags, selection.limit)
        spec = run_spec(
            config, suite, config.model(manifest.model_name), config.judge(manifest.judge_name),
            samples=manifest.samples, resume=run_id, selection=selection, fail_after=fail_after,
        )  # fmt: skip
        err.print(
            plain(f"worker {settings.holder} on run {run_id} ({store.dialect} store {store.path})"),
            soft_wrap=True,
        )
        try:
            done = work(store, spec, settings, say=lambda line: err.print(plain(line), soft_wrap=True))
        except KeyboardInterrupt:
            err.print(plain(f"interrupted; this worker's items went back to the run: evals worker {run_id}"))
            raise
        except EndpointFailing as exc:
            raise EndpointFailing(
                f"{exc} What was done is stored; fix it and start the workers again: evals worker {run_id}"
            ) from None
        o, chain = done.outcome, worker_chain(run_id, settings.holder)
        mine = (
            f"worker {settings.holder}: {done.units} items done here; asked {o.asked}, judged {o.judged}, "
            f"reused {o.reused}; {o.answer_errors} answer errors, {o.judge_errors} judge errors"
        )
        err.print(plain(mine), soft_wrap=True)
        err.print(plain(f"its calls: {audit_line(store, chain)} on chain {chain}"), soft_wrap=True)
        if done.finished:
            err.print(plain(f"every item is done: this worker finished run {run_id}"), soft_wrap=True)
            print_outcome(store, o)  # the run's table, counts of this worker, the run's audit head
            return
        if not store.judging_provenance(run_id).fingerprints:  # one query; the rows only when it says none
            check_rows_scored(manifest, list(store.results(run_id)))  # no score at all is no success (exit 2)
        out.print(plain(f"run {run_id} is finished (by another worker): evals report {run_id}"))
