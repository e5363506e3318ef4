"""``evals judge ...``: measure the judge itself (its agreement with people, its noise, its drift, its
resistance to answers that try to move it). Each subcommand lives in its own module and attaches here."""

from __future__ import annotations

import click

from evals.cli.common import EXIT_CODES_HELP


@click.group(epilog=EXIT_CODES_HELP)
def judge() -> None:
    """Measure the judge: calibration against people, noise, drift, probes."""
