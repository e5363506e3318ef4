"""``evals judge drift`` (the canary's history) and ``evals judge canary reset`` (re-anchor it)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from evals.cli.common import EXIT_CODES_HELP, config_option, fmt, out, plain, reports_option, reports_path
from evals.cli.judge import judge
from evals.config import load_config
from evals.store import open_store


@judge.command("drift", epilog=EXIT_CODES_HELP)
@click.option("--judge", "judge_name", help="Only this judge's canaries (its name in evals.yaml).")
@click.option("--suite", "suite_name", help="Only this suite's canaries.")
@click.option(
    "--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="A terminal table, or JSON (a list of the scorecard's canary records).",
)  # fmt: skip
@reports_option
@config_option
def drift(
    judge_name: str | None,
    suite_name: str | None,
    output: str,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """The judge's drift canary run by run: mean anchor score, shift since the previous run with its 95%
    interval, whether it moved, the judge model ids its API reported, and the resets."""
    from evals.scorecard.canary import canary_history

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        reports = canary_history(store, judge_name, suite_name)
    if output == "json":
        out.print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2), soft_wrap=True)
        return
    if not reports:
        out.print("no canary observations yet: a run with a frontier judge draws one from its answers")
        return
    table = Table("run", "observed", "judge", "suite", "mean", "shift [95% CI]", "moved", "judge model ids")
    for r in reports:
        shift = (
            "new anchor set" if r.previous_run is None
            else f"{fmt(r.shift, '+.2f')} [{fmt(r.ci_low, '+.2f')}, {fmt(r.ci_high, '+.2f')}] vs {r.previous_run}"
        )  # fmt: skip
        table.add_row(
            *map(
                plain,
                (
                    r.run_id, r.observed_at, r.judge_name, r.suite_name, fmt(r.mean),
                    "error: " + r.error if r.error else shift, "MOVED" if r.moved else "no",
                    ", ".join(r.model_ids) or "–",
                ),
            )
        )  # fmt: skip
    out.print(table)
    seen: set[tuple[str, str | None]] = set()
    for r in reports:
        for reset, line in zip(r.resets, r.reset_lines(), strict=True):
            if (reset.at, reset.reason) not in seen:
                seen.add((reset.at, reset.reason))
                out.print(plain(f"{r.judge_name} · {r.suite_name}: {line}"), soft_wrap=True)


@judge.group("canary", epilog=EXIT_CODES_HELP)
def canary() -> None:
    """The judge's drift canary: re-anchor it after a deliberate judge change."""


@canary.command("reset", epilog=EXIT_CODES_HELP)
@click.option("--judge", "judge_name", required=True, help="The judge's name in evals.yaml.")
@click.option("--suite", "suite_name", required=True, help="The suite's name.")
@click.option("--reason", help="Why (shown on later scorecards).")
@click.option(
    "--from-latest", is_flag=True,
    help="Anchor now on the latest finished run of that suite and judge (its stored verdicts, no call), "
    "instead of at the next run.",
)  # fmt: skip
@reports_option
@config_option
def canary_reset(
    judge_name: str,
    suite_name: str,
    reason: str | None,
    from_latest: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Re-anchor the canary of JUDGE on SUITE: its anchor set is retired and a new one drawn at the next run
    (or now, from the latest run); recorded with who, when and why."""
    from evals.trust.canary import canary_options, reset

    config = load_config(config_path)
    options = canary_options(config)
    with open_store(config, reports_path(config, reports_dir)) as store:
        done = reset(store, judge_name, suite_name, reason, options, from_latest)
    when = (
        f"anchored now on run {done.anchored.source_run}" if done.anchored
        else "the next run draws a new anchor set"
    )  # fmt: skip
    out.print(
        plain(f"canary of {judge_name} on {suite_name} reset ({done.retired} set(s) retired); {when}"),
        soft_wrap=True,
    )
