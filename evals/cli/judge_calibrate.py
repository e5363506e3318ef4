"""``evals judge calibrate``: how far the judge agrees with people, from a labels file."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

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
from evals.cli.judge import judge
from evals.cli.local_judge import serve_local_judge
from evals.cli.progress import RichReporter
from evals.config import load_config
from evals.errors import EvalsError
from evals.judge.judging import build_judge
from evals.judge.rubrics import rubric_search
from evals.outbound import audit
from evals.outbound.gateway import Gateway
from evals.outbound.telemetry import tracing
from evals.plan import judge_fingerprint
from evals.records import Item
from evals.render.calibration import write_calibration
from evals.store import open_store
from evals.trust import agreement
from evals.trust.agreement import Estimate
from evals.trust.calibration import (
    DEFAULT_MIN_KAPPA,
    Calibration,
    calibrate,
    check_rows,
    distinct_answers,
    judge_labels,
    row_patterns,
    save_calibration,
    with_levels,
)  # fmt: skip
from evals.trust.labels import load_labels

CALIBRATE_EXIT_HELP = EXIT_CODES_HELP.replace(
    "  1  the answer is no, and only that: a suite has problems (validate), a regression\n"
    "     (report --fail-on-regression), the gate fails\n",
    "  1  the judge is not calibrated: kappa's 95 % lower bound is below --min-kappa\n",
)


@judge.command("calibrate", epilog=with_examples(CALIBRATE_EXIT_HELP, "judge calibrate"))
@click.option("--labels", "labels_spec", required=True, help="Labels file (.jsonl or .csv), or 'demo'.")
@click.option(
    "--judge",
    "judge_name",
    required=True,
    help="Judge name from evals.yaml, 'offline', or 'local' (the bundled model).",
)
@click.option("--rubric", "rubric_name", default=None, help="Rubric to grade with (default: the judge's).")
@click.option(
    "--min-kappa",
    default=DEFAULT_MIN_KAPPA,
    show_default=True,
    type=click.FloatRange(-1, 1),
    help="Exit 1 when kappa's 95 % lower bound is below this.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for calibration.json and .html (default: reports/calibration/<judge>-<rubric>-<time>/).",
)
@click.option(
    "--resamples",
    default=agreement.RESAMPLES,
    show_default=True,
    type=click.IntRange(100, 100_000),
    help="Bootstrap resamples of each interval.",
)
@reports_option
@config_option
def calibrate_command(
    labels_spec: str,
    judge_name: str,
    rubric_name: str | None,
    min_kappa: float,
    out_dir: Path | None,
    resamples: int,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Judge every answer of a labels file once and report its agreement with the people's scores.

    Exact and within-one agreement, quadratic-weighted kappa, Spearman's rho, mean bias and the confusion
    matrix, each with a bootstrap 95 % interval, overall and per area; with several raters per answer,
    the people's own agreement (ordinal alpha) as the ceiling. Writes calibration.json and
    calibration.html, and stores the result for the scorecards of runs graded by this judge and rubric.
    """
    config = load_config(config_path)
    labels = load_labels(labels_spec)
    reports = reports_path(config, reports_dir)
    # The judge's calls go on the audit trail of the store beside the config, as a run's do.
    with (
        serve_local_judge(config, judge_name) as config,
        open_store(config, reports) as store,
        tracing(config),
        audit.recording(store),
    ):
        name, endpoint = config.judge(judge_name)
        if rubric_name is not None:
            endpoint = endpoint.model_copy(update={"rubric": rubric_name})
        labels = with_levels(labels, store, config.default_sensitivity)
        # restricted rows never reach an external judge
        check_rows(labels, name, endpoint.is_external(), config.default_sensitivity)
        gateway = Gateway(config.redaction, row_patterns(labels, store), None, config.default_sensitivity)
        try:
            grader = build_judge(name, endpoint, rubric_search(config), gateway)
            groups = distinct_answers(labels)
            first = next(iter(groups.values()))[0]
            rubric = grader.rubric_for(Item(id="x", area=first.area, question=first.question))
            err.print(
                plain(
                    f"calibrating judge {name} ({grader.model}) · rubric {rubric.label} · {len(groups)} answers"
                )
            )
            verdicts = asyncio.run(judge_labels(grader, groups, RichReporter(console=err, label="calibrate")))
        finally:
            asyncio.run(gateway.aclose())
    err.print(plain(f"computing agreement with {resamples} bootstrap resamples per interval"))
    result = calibrate(
        labels, verdicts, judge_name=name, judge_model=grader.model,
        judge_fingerprint=judge_fingerprint(grader), rubric_name=rubric.name, rubric_hash=rubric.hash,
        min_kappa=min_kappa, resamples=resamples,
    )  # fmt: skip
    folder = out_dir or reports / "calibration" / _folder_name(name, rubric.name)
    paths = write_calibration(result, folder)
    with open_store(config, reports) as store:
        save_calibration(store, result)
    _print(result)
    out.print(plain(f"report: {paths['html']}"), soft_wrap=True)
    if result.passed is None:
        raise EvalsError(f"kappa has no interval ({result.overall.kappa.reason}); cannot check --min-kappa")
    if not result.passed:
        sys.exit(EXIT_NO)


def _folder_name(judge_name: str, rubric_name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{judge_name}-{rubric_name}").strip("-.")[:80]
    return f"{safe}-{stamp}"


def _est(e: Estimate, spec: str = ".2f") -> str:
    if e.value is None:
        return f"– ({e.reason})"
    return f"{fmt(e.value, spec)} [{fmt(e.low, spec)}, {fmt(e.high, spec)}]"


def _print(result: Calibration) -> None:
    """The terminal summary: the headline figures with their intervals, and the verdict."""
    o = result.overall
    out.print(
        plain(f"judge {result.judge_name} ({result.judge_model}) · rubric {result.rubric_name}@{result.rubric_hash} "
              f"· {o.n} answers ({o.judge_errors} judge errors) · labels {result.labels}"),
        soft_wrap=True,
    )  # fmt: skip
    for label, value in (
        ("weighted kappa", _est(o.kappa)),
        ("exact agreement", _est(o.exact, ".0%")),
        ("within one point", _est(o.within_one, ".0%")),
        ("Spearman rho", _est(o.spearman)),
        ("bias (judge - people)", _est(o.bias, "+.2f")),
        ("alpha, judge vs people", _est(o.judge_alpha)),
        (f"alpha among people ({o.n_multi} answers)", _est(o.human_alpha)),
    ):
        out.print(plain(f"  {label}: {value}"), soft_wrap=True)
    for a in result.areas:
        out.print(
            plain(f"  {a.area}: n {a.n}, kappa {_est(a.kappa)}, exact {_est(a.exact, '.0%')}"), soft_wrap=True
        )
    if result.passed is None:
        verdict = "cannot tell (kappa has no interval)"
    elif result.passed:
        verdict = f"calibrated: kappa's lower bound {fmt(o.kappa.low)} >= {result.min_kappa:g}"
    else:
        verdict = f"NOT calibrated: kappa's lower bound {fmt(o.kappa.low)} < {result.min_kappa:g}"
    out.print(plain(verdict), soft_wrap=True)
