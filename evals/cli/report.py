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
    append_step_summary,
    config_option,
    err,
    fmt,
    out,
    plain,
    policy_option,
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
    from evals.scorecard.models import AreaStats, Decision, Drift


@click.command(epilog=with_examples(EXIT_CODES_HELP, "report"))
@click.argument("run_id", required=False, type=RUN_OR_BASELINE)
@click.option(
    "--baseline",
    metavar="NAME|RUN_ID|TAG",
    help="Compare with a baseline name, a run id, or the latest run with this tag.",
)
@policy_option
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when the decision against the baseline fails (an area regressed, or the whole run's bound).",
)
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
    """Write the scorecard of a run (default: the latest finished one) as HTML, JSON and Markdown, and
    summarize it, opening with the decision against its baseline (the one `evals gate` makes).

    The baseline defaults to a run of the same suite, model name, judge and rubrics: the suite's approved
    baseline (evals baseline set), else its latest earlier run tagged `baseline`, else its latest earlier
    finished run with at most the gate's error rate (5%); unfinished and mostly-error runs, runs of
    another model or judge, and runs excluded with `evals runs exclude`, are skipped (--baseline compares
    with any run). The scorecard says which baseline it chose and why. With $GITHUB_STEP_SUMMARY
    set, the scorecard's Markdown summary is appended to it.
    """
    from evals.render.pages import write_index, write_scorecard
    from evals.scorecard import build_scorecard, latest_run
    from evals.scorecard.decision import load_settings
    from evals.scorecard.textless import without_text

    config = load_config(config_path)
    gate = load_settings(config.gate, policy_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        run_id = run_id or latest_run(store).run_id
        card = build_scorecard(store, run_id, baseline, config.scorecard, gate)
        if no_text:
            card = without_text(card)
        paths = write_scorecard(card, run_folder(store.reports_dir, run_id))
        write_index(store)
    _print_scorecard(card)
    out.print(plain(f"scorecard: {paths['html']}"), soft_wrap=True)
    try:
        append_step_summary(paths["md"].read_text(encoding="utf-8"))
    except OSError as exc:
        err.print(plain(f"warning: the step summary was not written: {exc.strerror or exc}"), soft_wrap=True)
    h = card.run.health
    if h is not None and (card.run.status != "finished" or h.error_rate > gate.max_error_rate):
        # Say it where a nightly log is read: such a run is no default baseline, and its numbers are thin.
        err.print(plain(
            f"warning: run {card.run.run_id} is {card.run.status} with {h.scored} of {h.rows} answers scored "
            f"({h.answer_errors} answer and {h.judge_errors} judge errors); it will not be a default baseline"
        ), soft_wrap=True)  # fmt: skip
    regressed = card.regressed()
    if regressed:  # said where a nightly log is read, beside the decision
        err.print(plain(f"regressed: {', '.join(regressed)}"), soft_wrap=True)
    if fail_on_regression and card.decision is not None and card.decision.outcome == "fail":
        sys.exit(EXIT_NO)


@click.command(epilog=EXIT_CODES_HELP)
@reports_option
@config_option
def index(reports_dir: Path | None, config_path: Path | None) -> None:
    """Write reports/index.html: every run with date, model, judge, overall score and a link to its scorecard."""
    from evals.render.pages import write_index

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


def _mean_cell(a: AreaStats) -> str:
    if a.mean is not None and a.ci_low is None:
        return f"{fmt(a.mean)} (too few items for an interval)"
    return f"{fmt(a.mean)} [{fmt(a.ci_low)}, {fmt(a.ci_high)}]"


def _delta_cell(d: Drift) -> str:
    if d.delta is None:
        return "–"
    if d.delta_ci_low is None:
        return f"{fmt(d.delta, '+.2f')} (too few pairs)"
    return f"{fmt(d.delta, '+.2f')} [{fmt(d.delta_ci_low, '+.2f')}, {fmt(d.delta_ci_high, '+.2f')}]"


def area_table(areas: list[AreaStats]) -> Table:
    """The areas of a scorecard as a terminal table: the same figures as its HTML and Markdown."""
    table = Table()
    for name in ("area", "n", "mean [95% CI]", "pass", "Δ [interval]", "status", "errors"):
        table.add_column(name, justify="left" if name in ("area", "status") else "right")
    for a in areas:
        cells = (
            a.area + (" (weak)" if a.weak else ""), a.n, _mean_cell(a), fmt(a.pass_rate, ".0%"),
            _delta_cell(a.drift), a.drift.status, a.answer_errors + a.judge_errors,
        )  # fmt: skip
        table.add_row(*map(plain, cells))
    return table


def decision_lines(decision: Decision | None, areas: list[Drift]) -> list[str]:
    """The decision in the terminal: its headline first, then its warnings, what the intervals are, and
    the settings it used (the same words as the scorecard and the gate)."""
    if decision is None:
        return ["safe to ship: cannot decide, because there is no baseline to compare with"]
    lines = [
        decision.headline,
        *(f"  {r}" for r in decision.reasons[1:]),
        *(f"  warning: {w}" for w in decision.warnings),
        *(f"  {note}" for note in decision.notes),
    ]
    labels = sorted({d.interval for d in areas if d.interval and d.delta_ci_low is not None})
    if labels:
        lines.append("Δ intervals: " + "; ".join(labels))
    return [*lines, f"decided with: {decision.settings}"]


def _print_scorecard(card: Scorecard) -> None:
    from evals.render.panel import panel_lines

    run, o, base = card.run, card.overall, card.baseline
    for line in decision_lines(card.decision, [a.drift for a in card.areas]) if base else []:
        out.print(plain(line), soft_wrap=True)
    out.print(plain(f"{run.suite_name} · {run.model_label} · judge {run.judge_model}"), soft_wrap=True)
    if run.offline_judge:
        out.print(
            "scores by the offline reference judge (token overlap with the reference), not a frontier judge"
        )
    d = o.drift
    vs = (
        f"Δ {fmt(d.delta, '+.2f')} {d.interval_text()} over {d.n_pairs} paired items vs {base.run_id} ({d.status})"
        if base
        else "no baseline"
    )
    overall = f"overall mean {_mean_cell(o)} over {o.n} items"
    out.print(plain(f"{overall}; {vs}"), soft_wrap=True)
    from evals.scorecard.calibration import calibration_line  # lazily, as the scorecard itself

    out.print(plain(calibration_line(card.calibration)), soft_wrap=True)
    choice = card.baseline_choice
    said = f"baseline: {choice.run_id + ', ' if choice.run_id else 'none: '}{choice.reason}"
    if choice.skipped:
        said += "; skipped " + ", ".join(f"{s.run_id} ({s.reason})" for s in choice.skipped)
    out.print(plain(said), soft_wrap=True)
    for warning in card.same_family:
        out.print(plain(f"judge bias possible: {warning}"), soft_wrap=True)
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
    for line in card.corrected_lines():
        out.print(plain(f"corrected by people (PPI++): {line}"), soft_wrap=True)
    for line in [*(panel_lines(card.panel) if card.panel else ()), *noise_lines(card), *signal_lines(card)]:
        out.print(plain(line), soft_wrap=True)


@click.command(epilog=with_examples(EXIT_CODES_HELP, "compare"))
@click.argument("run_a", type=RUN_OR_BASELINE)
@click.argument("run_b", type=RUN_OR_BASELINE)
@policy_option
@reports_option
@config_option
def compare(
    run_a: str, run_b: str, policy_path: Path | None, reports_dir: Path | None, config_path: Path | None
) -> None:
    """Paired comparison of RUN_B against RUN_A per area (Δ, interval, status) and the decision `evals gate`
    would make on them (shown, not turned into an exit code: that is the gate's)."""
    from evals.scorecard.decision import decide, load_settings

    config = load_config(config_path)
    settings = load_settings(config.gate, policy_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        a, b = store.baseline(run_a), store.baseline(run_b)
        verdict = decide(store, b.run_id, a.run_id, settings)
    out.print(
        plain(f"{b.run_id} ({b.model_id or b.model}) vs {a.run_id} ({a.model_id or a.model})"), soft_wrap=True
    )
    report = verdict.report
    for line in decision_lines(verdict.decision, list(report.areas.values()) if report else []):
        out.print(plain(line), soft_wrap=True)
    if report is None:
        return
    table = Table("area", "pairs", "Δ [interval]", "p adj.", "status")
    for area, d in [*sorted(report.areas.items()), ("(overall)", report.overall)]:
        cells = (area, d.n_pairs, _delta_cell(d) if area != "(overall)" else f"{fmt(d.delta, '+.2f')} {d.interval_text()}",
                 fmt(d.p_adjusted, ".3g"), d.status)  # fmt: skip
        table.add_row(*map(plain, cells))
    out.print(table)
    for kind, ids in (
        ("added", report.items.added),
        ("removed", report.items.removed),
        ("changed", report.items.changed),
    ):
        if ids:
            out.print(plain(f"{kind} (not compared): {', '.join(ids)}"), soft_wrap=True)
