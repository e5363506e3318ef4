"""Commands that run suites: ``run`` and ``suite validate``."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evals import runner
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
from evals.cli.examples import with_examples
from evals.cli.local_judge import add_local_judge, serve_local_judge
from evals.cli.outcome import check_scored, print_outcome, print_pending, write_run_page, write_stopped_page
from evals.cli.progress import RichReporter
from evals.cli.worker import plan_only as plan_only_run
from evals.cli.worker import run_spec
from evals.config import Config, Endpoint, JudgeEndpoint, load_config
from evals.errors import EvalsError
from evals.judge.panel import stored_labels
from evals.judge.rubrics import rubric_search
from evals.names import RUN_ID, TAG
from evals.outbound.audit import audit_line
from evals.outbound.gateway import FAIL_AFTER
from evals.outbound.interrupts import sigterm_interrupts
from evals.outbound.telemetry import tracing
from evals.plan import (
    ESTIMATE_NOTE,
    MAX_SAMPLES,
    RunSpec,
    check_resumable,
    new_run_id,
    plan_calls,
    plan_panel,
)
from evals.records import Item, Selection
from evals.runner import remaining, run_suite
from evals.secrets import safe_url
from evals.store import Store, open_store
from evals.suites import Suite, find_problems, load_suite, suites_in
from evals.trust.canary import Canary

if TYPE_CHECKING:
    from evals.scorecard import Scorecard


@click.command(epilog=with_examples(EXIT_CODES_HELP, "run"))
@click.option(
    "--suite",
    "suite_path",
    help="Suite file or folder (or hf:NAME[:SPLIT]); default: default_suite in evals.yaml.",
)
@click.option("--model", "model_name", help="Model name from evals.yaml (default: the first).")
@click.option(
    "--judge",
    "judge_name",
    help="Judge name from evals.yaml, 'offline', or 'local' (the bundled model: a running evals serve-local, "
    "else started for the run) (default: first with a key).",
)
@click.option(
    "--samples",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_SAMPLES),
    help=f"Answers per item (at most {MAX_SAMPLES}).",
)
@click.option(
    "--judge-repeats",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_SAMPLES),
    help="Verdicts per answer: the judge grades each answer this many times (all but the first fresh), "
    "so the scorecard can tell the judge's noise from the model's.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    type=TAG,
    help="Label the run (e.g. baseline, nightly); repeatable. Not a filter.",
)
@click.option("--area", "areas", multiple=True, help="Ask only items of this area; repeatable.")
@click.option(
    "--item-tag",
    "item_tags",
    multiple=True,
    help="Ask only items carrying this tag (suite tags:); repeatable.",
)
@click.option(
    "--limit", type=click.IntRange(1), help="Ask at most N items (after --area/--item-tag), in suite order."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the calls per endpoint and their estimated cost; call nothing, create no run.",
)
@click.option(
    "--plan-only",
    is_flag=True,
    help="Create the run (items, manifest, config snapshot) and ask nothing; print the command that starts "
    "its workers (evals worker RUN_ID).",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    callback=lambda ctx, param, value: _finite(param, value),
    metavar="USD",
    help="Stop (resumable, exit 2) before this invocation could spend more; needs token prices in evals.yaml.",
)
@click.option(
    "--run-id",
    type=RUN_ID,
    help="Id for the new run: letters, digits, '.', '_', '-' (default: timestamp and random suffix).",
)
@click.option(
    "--resume", "resume", metavar="RUN_ID", help="Continue an interrupted run: only missing work is done."
)
@click.option(
    "--fail-after",
    default=FAIL_AFTER,
    show_default=True,
    type=click.IntRange(0),
    help="Stop the run (resumable) when the first N calls to the model or judge all fail with the same "
    "error, or the judge's first N verdicts are all unparseable; 0 never stops.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="With a batch judge (judging: batch): submit its batches, say the run is pending and exit 0; "
    "--resume RUN_ID collects them later (with --detach too: what ended is collected, else it stays pending).",
)
@reports_option
@config_option
def run(
    suite_path: str | None,
    model_name: str | None,
    judge_name: str | None,
    samples: int,
    judge_repeats: int,
    tags: tuple[str, ...],
    areas: tuple[str, ...],
    item_tags: tuple[str, ...],
    limit: int | None,
    dry_run: bool,
    plan_only: bool,
    max_cost: float | None,
    run_id: str | None,
    resume: str | None,
    fail_after: int,
    detach: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Answer every item of a suite (or of --area/--item-tag/--limit) with the model; the judge scores each 1-5.

    The run is stored as it goes: Ctrl-C or SIGTERM marks it interrupted (exit 130), and --resume
    continues it. When the first calls to the model or the judge all fail the same way (see --fail-after)
    the run stops with what to change (exit 2), as do a judge whose first N verdicts are all
    unparseable and a run stopped by --max-cost. A run that ends with no score at all exits 2 too, kept
    for --resume. The run ends by writing its scorecard (reports/runs/RUN_ID/scorecard.html, .json, .md)
    and reports/index.html, also when it stopped early having stored an answer. A judge with 'structured: auto' falls back from json_schema to json_object to text when
    its server refuses one, says so, and keeps it for the run.
    """
    config = load_config(config_path)
    selection = Selection(areas, item_tags, limit)
    if resume is None:
        if suite_path is None and config.default_suite is not None:
            suite_path = str(config.path(config.default_suite))
        if suite_path is None:
            raise click.UsageError("--suite is required (or --resume RUN_ID, or default_suite in evals.yaml)")
        suite = _select(load_suite(suite_path, config.default_sensitivity), selection)
        model_name, model = config.model(model_name)
        config = add_local_judge(config, judge_name)
        judge_name, judge = config.judge(judge_name)
        if dry_run:  # before the store is opened: a dry run leaves nothing behind
            items = [item for item in suite.items for _ in range(samples)]
            _print_plan(
                config, suite, selection, items, [], model_name, model, judge_name, judge, max_cost, judge_repeats
            )  # fmt: skip
            return
        with open_store(config, reports_path(config, reports_dir)) as store, sigterm_interrupts():
            if plan_only:  # evals.cli.worker: the run for evals worker processes, nothing asked
                spec = run_spec(
                    config, suite, (model_name, model), (judge_name, judge), samples=samples,
                    judge_repeats=judge_repeats, tags=tags, run_id=run_id, selection=selection,
                    max_cost=max_cost, fail_after=fail_after,
                )  # fmt: skip
                return plan_only_run(config, store, spec)
        with (
            open_store(config, reports_path(config, reports_dir)) as store,
            sigterm_interrupts(),
            serve_local_judge(config, judge_name, answer_tokens=model.max_tokens) as config,
        ):
            judge_name, judge = config.judge(judge_name)  # the local judge where it is served
            _execute(
                config, store, suite, model_name, model, judge_name, judge, samples, tags, run_id, None,
                selection, max_cost, fail_after, judge_repeats=judge_repeats, detach=detach,
            )  # fmt: skip
        return
    if not selection.whole:
        raise click.UsageError(
            "--area, --item-tag and --limit are set when a run starts; --resume keeps them"
        )
    if plan_only:
        raise click.UsageError("--plan-only creates a new run; to work RUN_ID, start: evals worker RUN_ID")
    with open_store(config, reports_path(config, reports_dir)) as store, sigterm_interrupts():
        manifest = store.run(resume)
        # re-judged frozen answers: no suite, no model (evals.trust.rerun)
        if manifest.config.rerun_of is not None:
            from evals.cli.judge_rerun import resume as resume_rerun

            return resume_rerun(config, store, resume, judge_name, dry_run, fail_after)
        selection = manifest.selection()
        suite = _select(load_suite(suite_path or manifest.suite_path, config.default_sensitivity), selection)
        model_name, model = config.model(model_name or manifest.model_name)
        config = add_local_judge(config, judge_name or manifest.judge_name)
        judge_name, judge = config.judge(judge_name or manifest.judge_name)
        if dry_run:
            check_resumable(store, resume, suite)
            to_answer, to_judge = remaining(store, manifest)
            per_member = None
            if judge.panel is not None:  # each member's missing verdicts, at its own prices
                labels = stored_labels(judge_name, judge, rubric_search(config))
                to_answer, per_member = runner.remaining_per_judge(store, manifest, labels)
            _print_plan(
                config, suite, selection, to_answer, to_judge, model_name, model, judge_name, judge, max_cost,
                runner.judge_repeats(manifest), per_member,
            )  # fmt: skip
            return
        with serve_local_judge(config, judge_name, answer_tokens=model.max_tokens) as config:
            judge_name, judge = config.judge(judge_name)
            _execute(
                config, store, suite, model_name, model, judge_name, judge, samples, tags, run_id, resume,
                selection, max_cost, fail_after, detach=detach,
            )  # fmt: skip


def _finite(param: click.Parameter, value: float | None) -> float | None:
    # nan passes FloatRange (every comparison with it is false), and would then never stop the run.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite amount of dollars", param=param)
    return value


def _select(suite: Suite, selection: Selection) -> Suite:
    if selection.whole:
        return suite
    return suite.select(selection.areas, selection.item_tags, selection.limit)


def _print_plan(
    config: Config,
    suite: Suite,
    selection: Selection,
    to_answer: list[Item],
    to_judge: list[tuple[Item, str, bool]],
    model_name: str,
    model: Endpoint,
    judge_name: str,
    judge: JudgeEndpoint,
    max_cost: float | None,
    judge_repeats: int = 1,
    per_member: list[list[tuple[Item, str, bool]]] | None = None,
) -> None:
    """The dry run's report: calls per endpoint, tokens and estimated cost (a panel: per member)."""
    if judge.panel is not None:
        plan = plan_panel(
            to_answer, per_member, model_name, model, judge_name, judge, rubric_search(config), judge_repeats
        )
    else:
        plan = plan_calls(
            to_answer, to_judge, model_name, model, judge_name, judge, rubric_search(config), judge_repeats
        )
    scope = "" if selection.whole else f" · subset: {selection.describe()}"
    out.print(plain(f"dry run: suite {suite.name} ({len(suite.items)} items{scope}); nothing is called"))
    for e in plan.endpoints:
        who = f"{e.role} {e.name} ({e.model})"
        if e.offline:
            out.print(plain(f"{who}: {e.calls} gradings, offline: no calls, free"))
            continue
        calls = f"{e.calls} call{'s' if e.calls != 1 else ''}"
        cost = "no prices" if e.cost is None else f"≈ ${e.cost:.4f}"
        tokens = f"≈ {e.tokens_in} tokens in · ≤ {e.tokens_out} tokens out"
        # one line per endpoint, never wrapped: logs and scripts read it
        out.print(plain(f"{who}: {calls} · {tokens} · {cost}"), soft_wrap=True)
    total = plan.cost
    out.print(
        "estimated cost: "
        + (
            "unknown (set price_in_per_mtok and price_out_per_mtok in evals.yaml)"
            if total is None
            else f"≈ ${total:.4f}"
        )
    )
    out.print(ESTIMATE_NOTE)
    if max_cost is not None and total is not None and total > max_cost:
        out.print(f"the estimate exceeds --max-cost {max_cost:g}: the run may stop early (then resume it)")


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
    selection: Selection | None = None,
    max_cost: float | None = None,
    fail_after: int = FAIL_AFTER,
    again: str | None = None,
    judge_repeats: int = 1,
    detach: bool = False,
) -> Scorecard | None:
    """Run (or resume), print the outcome and write the run's page (its scorecard, and the index); the
    scorecard, or None for a run left pending on its judge's batches (``--detach``). A run that stops early
    (exit 2) gets its page too when it stored an answer. ``again`` replaces the ``--resume`` hint when a
    resume cannot work (the demo's bundled server stops with the demo)."""
    run_id = None if resume else (run_id or new_run_id(model_name))
    scope = "" if selection is None or selection.whole else f", subset: {selection.describe()}"
    err.print(
        plain(
            f"suite {suite.name} ({len(suite.items)} items{scope}) · model {model_name} · judge {judge_name}"
        )
    )
    try:
        spec = RunSpec(
            model_name, model, judge_name, judge, rubric_search(config), suite=suite, samples=samples,
            judge_repeats=judge_repeats, tags=tags, run_id=run_id, resume=resume, selection=selection,
            max_cost=max_cost, fail_after=fail_after, redaction=config.redaction,
            default_sensitivity=config.default_sensitivity, observer=Canary.of(config, suite),
            inhouse=config.judge(judge.restricted_judge) if judge.restricted_judge else None, detach=detach,
        )  # fmt: skip
        with tracing(config):  # spans to the collector, when telemetry: is set
            outcome = run_suite(store, spec, reporter=RichReporter(console=err))
        if outcome.pending:  # its batches are submitted; a later --resume collects them (evals docs batch)
            print_pending(store, outcome)
            return None
        print_outcome(store, outcome, check=False)
        if outcome.asked and outcome.answer_errors == outcome.asked:
            # Per-item errors are data; no answer at all means the model could not be reached or used.
            raise EvalsError(
                f"every one of {outcome.asked} model calls failed (see the errors in the results); is "
                f"{safe_url(model.base_url) or 'the model server'} up and serving {model.model!r}? "
                + (again or f"Fix it and continue with: evals run --resume {outcome.manifest.run_id}")
            )
        check_scored(outcome, again)  # a run without a single score is no success, whatever failed
    except KeyboardInterrupt:
        err.print(plain(f"interrupted; {again or f'continue with: evals run --resume {resume or run_id}'}"))
        err.print(audit_line(store, str(resume or run_id)), soft_wrap=True)  # sealed also when interrupted
        raise
    except EvalsError:
        write_stopped_page(store, resume or run_id, config)  # what it stored, readable
        raise
    card = write_run_page(store, outcome.manifest.run_id, config)
    assert card is not None  # it scored an answer: it stored one
    return card


@click.group()
def suite() -> None:
    """Work with suites."""


@suite.command("validate", epilog=EXIT_CODES_HELP)
@click.argument("path")
def suite_validate(path: str) -> None:
    """Check a suite file or folder (or a folder of suite folders); report every problem with file, line and field."""
    specs = suites_in(path)
    problems = [problem for spec in specs for problem in find_problems(spec)]
    if problems:
        for problem in problems:
            err.print(plain(str(problem)), soft_wrap=True)
        err.print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
        sys.exit(EXIT_NO)
    for spec in specs:
        loaded = load_suite(spec)
        areas = sorted({item.area for item in loaded.items})
        out.print(
            plain(
                f"ok: suite {loaded.name}: {len(loaded.items)} item{'s' if len(loaded.items) != 1 else ''} in "
                f"{len(areas)} area{'s' if len(areas) != 1 else ''} ({', '.join(areas)})"
            )
        )
