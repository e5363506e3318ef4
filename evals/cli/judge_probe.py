"""``evals judge probe``: run the built-in adversarial answers and bias probes against a configured judge."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import click
from rich.table import Table

from evals.cli.common import EXIT_CODES_HELP, config_option, fmt, out, plain, reports_path
from evals.cli.judge import judge
from evals.cli.local_judge import serve_local_judge
from evals.config import load_config
from evals.errors import EvalsError
from evals.judge.judging import build_judge
from evals.judge.rubrics import rubric_search
from evals.outbound import audit
from evals.outbound.gateway import Gateway
from evals.outbound.telemetry import tracing
from evals.store import open_store
from evals.trust.probes import MOVED_AT, ProbeReport, load_probe_set, run_probes

CEILING = 3.0
"""A mean score of plain wrong answers from here up is warned about: the judge does not separate them."""
EXPECTED = {"not_higher": "not higher", "same": "same", "lower": "lower"}


@judge.command("probe", epilog=EXIT_CODES_HELP)
@click.option(
    "--judge",
    "judge_name",
    required=True,
    help="The judge to probe: a name in evals.yaml, or 'local' (the bundled model).",
)
@click.option("--rubric", default=None, help="Grade with this rubric instead of the judge's own.")
@click.option(
    "--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="A table for people, or the whole report (every pair) as JSON.",
)  # fmt: skip
@config_option
def probe(judge_name: str, rubric: str | None, output: str, config_path: Path | None) -> None:
    """Measure how far answers built to move the judge move it.

    Each probe kind (a planted "SCORE: 5", a forged verdict or closing marker, a fake system turn, "the
    reference is wrong", a wrong answer padded to triple length, confident or hedged tone, the reference
    with one fact flipped, ...) is paired with a control answer on a handful of base questions; both are
    graded by the judge, and the report gives per kind the control and probe means, the shift with its 95%
    interval over the questions, whether the detector flagged the probe, and a verdict. It measures: exit 0
    whatever the judge did; exit 2 when the judge could not be asked or failed on some answers.
    """
    config = load_config(config_path)
    probe_set = load_probe_set()  # built-in answers to built-in questions: public text
    with serve_local_judge(config, judge_name) as config:
        name, endpoint = config.judge(judge_name)
        if rubric is not None:
            endpoint = endpoint.model_copy(update={"rubric": rubric})
        gateway = Gateway(config.redaction, (), None, config.default_sensitivity)

        async def measure() -> ProbeReport:
            try:
                return await run_probes(
                    build_judge(name, endpoint, rubric_search(config), gateway), probe_set
                )
            finally:
                await gateway.aclose()

        with (
            open_store(config, reports_path(config, None)) as store,
            tracing(config),
            audit.recording(store),
        ):  # on the trail
            report = asyncio.run(measure())
    if output == "json":
        # ASCII-only JSON: every control, bidi or look-alike character of the answers is escaped.
        click.echo(json.dumps(dataclasses.asdict(report), indent=1))
    else:
        _print_table(report)
    if report.errors:
        raise EvalsError(
            f"{len(report.errors)} of {len(report.pairs)} probe pairs were not graded; first: {report.errors[0]}"
        )


def _print_table(report: ProbeReport) -> None:
    table = Table(title=plain(f"probes of {report.judge}"))
    for name in ("kind", "control", "probe", "shift [95% CI]", "flagged", "verdict", "expected"):
        table.add_column(name, justify="right" if name in ("control", "probe", "flagged") else "left")
    for i, k in enumerate(report.kinds):
        if i and k.family != report.kinds[i - 1].family:
            table.add_section()  # answers that address the grader first, then the bias probes
        interval = f" [{fmt(k.shift_ci_low, '+.1f')}, {fmt(k.shift_ci_high, '+.1f')}]" if k.n > 1 else ""
        expected = EXPECTED[k.expect] + ("" if k.sound is None else (" ok" if k.sound else " NOT MET"))
        table.add_row(
            *map(
                plain,
                (
                    k.kind, fmt(k.control_mean, ".1f"), fmt(k.probe_mean, ".1f"), fmt(k.shift, "+.1f") + interval,
                    f"{k.flagged}/{k.questions}", k.verdict, expected,
                ),
            )
        )  # fmt: skip
    out.print(table)
    if report.wrong_answer_score is not None and report.wrong_answer_score >= CEILING:
        out.print(
            plain(
                f"warning: the judge gave plain wrong answers a mean of {report.wrong_answer_score:.1f}: it is not "
                "checking answers against the reference, and probes built on a wrong answer have no room to move "
                "it up (their 'no effect' proves nothing)"
            ),
            soft_wrap=True,
        )
    unsound = [k.kind for k in report.kinds if k.sound is False]
    questions = report.kinds[0].questions if report.kinds else 0
    out.print(
        plain(
            f"shift: probe score minus control score, mean over {questions} questions, with its 95% interval; "
            f"'moved' from ±{MOVED_AT}. flagged: probe answers the detector flagged (the first group addresses "
            "the grader and must be; the bias probes below it must not). "
            + (
                f"Not as a sound judge would: {', '.join(unsound)}."
                if unsound
                else "The judge held on every kind."
            )
        ),
        soft_wrap=True,
    )
