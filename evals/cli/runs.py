"""``runs list`` and ``runs exclude``: what the store holds, and taking a wrong run out of the comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from evals.cli.common import EXIT_CODES_HELP, config_option, fmt, out, plain, reports_option, reports_path
from evals.config import load_config
from evals.names import RUN_ID
from evals.store import open_store


@click.group()
def runs() -> None:
    """List the stored runs; exclude a wrong one from baseline choice and history."""


@runs.command("list", epilog=EXIT_CODES_HELP)
@click.option("--suite", "suite_name", help="Only runs of this suite.")
@click.option("--model", "model_name", help="Only runs of this model (its name in evals.yaml).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run and line, for scripts.")
@reports_option
@config_option
def runs_list(
    suite_name: str | None,
    model_name: str | None,
    as_json: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """List runs, oldest first: status, error rate, suite, model, judge, tags.

    The error rate is the larger of the answer and judge error shares, as the gate's max_error_rate
    reads it; an excluded run shows the tag `excluded`.
    """
    from evals.scorecard.baselines import run_health

    config = load_config(config_path)
    table = Table("run", "started", "status", "errors", "scored", "suite", "model", "judge", "tags")
    for column in table.columns:
        column.overflow = "fold"  # a run id or a tag is shown whole, wrapped, never cut with an ellipsis
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        for m in store.runs(suite_name):
            if model_name is not None and m.model_name != model_name:
                continue
            h = run_health(store, m.run_id)
            if as_json:
                line = {
                    "run_id": m.run_id, "started_at": m.started_at, "status": m.status,
                    "error_rate": h.error_rate if h.rows else None, "scored": h.scored, "rows": h.rows,
                    "answer_errors": h.answer_errors, "judge_errors": h.judge_errors, "suite_name": m.suite_name,
                    "model_name": m.model_name, "model_id": m.model_id, "judge_model": m.judge_model,
                    "tags": list(m.tags),
                }  # fmt: skip
                click.echo(json.dumps(line, ensure_ascii=False))
                continue
            table.add_row(*map(plain, (
                m.run_id, m.started_at, m.status, fmt(h.error_rate if h.rows else None, ".0%"),
                f"{h.scored}/{h.rows}", m.suite_name, f"{m.model_name} ({m.model_id or m.model})", m.judge_model,
                ", ".join(m.tags),
            )))  # fmt: skip
    if not as_json:
        out.print(table)


@runs.command("exclude", epilog=EXIT_CODES_HELP)
@click.argument("run_id", type=RUN_ID)
@click.option("--undo", is_flag=True, help="Take the exclusion back.")
@reports_option
@config_option
def runs_exclude(run_id: str, undo: bool, reports_dir: Path | None, config_path: Path | None) -> None:
    """Leave RUN_ID out of baseline choice and history (tags it `excluded`); the run itself is kept.

    An excluded run is still reported and gated when named explicitly (evals report RUN_ID,
    --baseline RUN_ID).
    """
    from evals.scorecard.baselines import EXCLUDED

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir)) as store:
        store.set_tag(run_id, EXCLUDED, present=not undo)
    verb = "no longer excluded" if undo else "excluded from baseline choice and history"
    out.print(plain(f"run {run_id} {verb}"), soft_wrap=True)
