"""Commands that read runs: ``report``, ``index``, ``compare``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from evals.cli.common import (
    EXIT_CODES_HELP,
    EXIT_NO,
    config_option,
    err,
    fmt,
    out,
    plain,
    reports_option,
    reports_path,
)
from evals.cli.examples import with_examples
from evals.cli.signals import signal_lines
from evals.config import load_config
from evals.names import RUN_OR_BASELINE, run_folder
from evals.store import open_store

if TYPE_CHECKING:
    from evals.scorecard import Scorecard
    from evals.scorecard.models import AreaStats


@click.command(epilog=with_examples(EXIT_CODES_HELP, "report"))
@click.argument("run_id", required=False, type=RUN_OR_BASELINE)
@click.option(
    "--baseline",
    metavar="NAME|RUN_ID|TAG",
    help="Compare with a baseline name, a run id, or the latest run with this tag.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Gate policy YAML whose max_error_rate bounds the default baseline's errors (defaults built in).",
)
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when an area (or the whole) regressed.")
@click.option(
    "--no-text", is_flag=True,
    help="Write the scorecards without questions, references, answers, reasoning and rationales (figures only).",
)  # fmt: skip
@reports_option
@config_option
def report(
    run_id: str | None,
    baseline: str | None,
    policy_path: Path | None,
    fail_on_regression: bool,
    no_text: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Write the scorecard of a run (default: the latest) as HTML, JSON and Markdown, and summarize it.

    The baseline defaults to the suite's approved baseline (evals baseline set), else its latest earlier
    run tagged `baseline`, else the latest earlier finished run of the same suite and model with at most
    the gate policy's error rate (5%); unfinished and mostly-error runs, and runs excluded with `evals runs
    exclude`, are skipped. The scorecard says which baseline it chose and why.
    """
    from evals.render import write_index, write_scorecard
    from evals.scorecard import build_scorecard, latest_run
    from evals.scorecard.gate import load_policy
    from evals.scorecard.textless import without_text

    config = load_config(config_path)
    policy = load_policy(policy_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        run_id = run_id or latest_run(store).run_id
        card = build_scorecard(store, run_id, baseline, config.scorecard, policy.max_error_rate)
        if no_text:
            card = without_text(card)
        paths = write_scorecard(card, run_folder(store.reports_dir, run_id))
        write_index(store)
    _print_scorecard(card)
    out.print(plain(f"scorecard: {paths['html']}"), soft_wrap=True)
    h = card.run.health
    if h is not None and (card.run.status != "finished" or h.error_rate > policy.max_error_rate):
        # Say it where a nightly log is read: such a run is no default baseline, and its numbers are thin.
        err.print(plain(
            f"warning: run {card.run.run_id} is {card.run.status} with {h.scored} of {h.rows} answers scored "
            f"({h.answer_errors} answer and {h.judge_errors} judge errors); it will not be a default baseline"
        ), soft_wrap=True)  # fmt: skip
    regressed = card.regressed()
    if regressed:
        err.print(plain(f"regressed: {', '.join(regressed)}"))
        if fail_on_regression:
            sys.exit(EXIT_NO)


@click.command(epilog=EXIT_CODES_HELP)
@reports_option
@config_option
def index(reports_dir: Path | None, config_path: Path | None) -> None:
    """Write reports/index.html: every run with date, model, judge, overall score and a link to its scorecard."""
    from evals.render import write_index

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        out.print(plain(f"index: {write_index(store)}"), soft_wrap=True)


def noise_lines(card: Scorecard) -> list[str]:
    """The judge-noise figures as terminal lines: flip rate, judge share beside generation share."""
    from evals.trust.noise import describe

    lines = []
    if card.run.config.rerun_of:
        lines.append(f"re-judged the frozen answers of run {card.run.config.rerun_of}")
    noise = [a.judge_noise for a in [*card.areas, card.overall] if a.judge_noise is not None]
    if not any(n.measured for n in noise):
        return [*lines, "judge noise unmeasured (each answer judged once)"]
    return lines + [describe(n) for n in noise]


def area_table(areas: list[AreaStats]) -> Table:
    """The areas of a scorecard as a terminal table: the same figures as its HTML and Markdown."""
    table = Table()
    for name in ("area", "n", "mean [95% CI]", "pass", "Δ [95% CI]", "status", "errors"):
        table.add_column(name, justify="left" if name in ("area", "status") else "right")
    for a in areas:
        d = a.drift
        table.add_row(
            *map(
                plain,
                (
                    a.area + (" (weak)" if a.weak else ""),
                    a.n,
                    f"{fmt(a.mean)} [{fmt(a.ci_low)}, {fmt(a.ci_high)}]",
                    fmt(a.pass_rate, ".0%"),
                    f"{fmt(d.delta, '+.2f')} [{fmt(d.delta_ci_low, '+.2f')}, {fmt(d.delta_ci_high, '+.2f')}]",
                    d.status,
                    a.answer_errors + a.judge_errors,
                ),
            )
        )
    return table


def _print_scorecard(card: Scorecard) -> None:
    from evals.render.panel import panel_lines

    run, o, base = card.run, card.overall, card.baseline
    out.print(plain(f"{run.suite_name} · {run.model_label} · judge {run.judge_model}"), soft_wrap=True)
    if run.offline_judge:
        out.print(
            "scores by the offline reference judge (token overlap with the reference), not a frontier judge"
        )
    d = o.drift
    vs = (
        f"Δ {fmt(d.delta, '+.2f')} [{fmt(d.delta_ci_low, '+.2f')}, {fmt(d.delta_ci_high, '+.2f')}] "
        f"over {d.n_pairs} paired items vs {base.run_id} ({d.status})"
        if base
        else "no baseline"
    )
    overall = f"overall mean {fmt(o.mean)} [{fmt(o.ci_low)}, {fmt(o.ci_high)}] over {o.n} items"
    out.print(plain(f"{overall}; {vs}"), soft_wrap=True)
    from evals.scorecard.calibration import calibration_line  # lazily, as the scorecard itself

    out.print(plain(calibration_line(card.calibration)), soft_wrap=True)
    choice = card.baseline_choice
    said = f"baseline: {choice.run_id + ', ' if choice.run_id else 'none: '}{choice.reason}"
    if choice.skipped:
        said += "; skipped " + ", ".join(f"{s.run_id} ({s.reason})" for s in choice.skipped)
    out.print(plain(said), soft_wrap=True)
    if card.judged_differently:
        out.print(
            plain("judged differently from the baseline: " + "; ".join(card.judged_differently)),
            soft_wrap=True,
        )
    if card.canary:  # the judge's drift canary: loud when the judge moved
        for line in card.canary.lines():
            out.print(plain(line), soft_wrap=True)
    out.print(area_table(card.areas))
    out.print(plain("weak areas: " + (", ".join(card.weak_areas) or "none")), soft_wrap=True)
    for line in [*(panel_lines(card.panel) if card.panel else ()), *noise_lines(card), *signal_lines(card)]:
        out.print(plain(line), soft_wrap=True)


@click.command(epilog=with_examples(EXIT_CODES_HELP, "compare"))
@click.argument("run_a", type=RUN_OR_BASELINE)
@click.argument("run_b", type=RUN_OR_BASELINE)
@reports_option
@config_option
def compare(run_a: str, run_b: str, reports_dir: Path | None, config_path: Path | None) -> None:
    """Paired comparison of RUN_B against RUN_A per area (Δ, interval, p), without a verdict."""
    from evals.scorecard import drift

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        a, b = store.baseline(run_a), store.baseline(run_b)
        result = drift(list(store.results(b.run_id)), list(store.results(a.run_id)), config.scorecard)
    table = Table("area", "pairs", "Δ mean", "95% CI", "p adj.", "status")
    for area, d in [*sorted(result.areas.items()), ("(overall)", result.overall)]:
        ci = f"[{fmt(d.delta_ci_low, '+.2f')}, {fmt(d.delta_ci_high, '+.2f')}]"
        cells = (area, d.n_pairs, fmt(d.delta, "+.2f"), ci, fmt(d.p_adjusted, ".3g"), d.status)
        table.add_row(*map(plain, cells))
    out.print(
        plain(f"{b.run_id} ({b.model_id or b.model}) vs {a.run_id} ({a.model_id or a.model})"), soft_wrap=True
    )
    out.print(table)
    for kind, ids in (
        ("added", result.items.added),
        ("removed", result.items.removed),
        ("changed", result.items.changed),
    ):
        if ids:
            out.print(plain(f"{kind} (not compared): {', '.join(ids)}"), soft_wrap=True)
