"""Commands that decide and undo: ``gate``, ``baseline set|list``, ``rollback``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from evals.cli.common import (
    EXIT_CODES_HELP,
    GATE_EXIT_HELP,
    append_step_summary,
    config_option,
    err,
    markdown_option,
    out,
    plain,
    policy_option,
    print_markdown,
    reports_option,
    reports_path,
)
from evals.cli.examples import with_examples
from evals.config import load_config
from evals.errors import EvalsError, StoreError
from evals.files import write_atomic
from evals.names import BASELINE_NAME, RUN_ID, RUN_OR_BASELINE
from evals.records import RunManifest
from evals.store import Store, open_store

if TYPE_CHECKING:
    pass


@click.command(epilog=with_examples(GATE_EXIT_HELP, "gate"))
@click.option(
    "--candidate",
    type=RUN_ID,
    metavar="RUN_ID",
    help="The run of the model that wants in (default: the latest finished run).",
)
@click.option(
    "--baseline",
    type=RUN_OR_BASELINE,
    metavar="RUN_ID|NAME",
    help="The approved run (or baseline name); not the candidate itself. Default: chosen as `evals report` "
    "does, among runs of the same model name, judge and rubrics (the suite's approved baseline, else its "
    "latest run tagged baseline, else the latest earlier finished run within the gate's error rate).",
)
@policy_option
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write JUnit XML here.")
@click.option(
    "--allow-judge-change", is_flag=True, help="Decide even if the runs had different judges/rubrics."
)
@markdown_option
@reports_option
@config_option
def gate(
    candidate: str | None,
    baseline: str | None,
    policy_path: Path | None,
    junit_path: Path | None,
    allow_judge_change: bool,
    raw_markdown: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Decide whether CANDIDATE may replace BASELINE: exit 0 pass, 1 fail, 2 cannot decide (also when no
    baseline is given and none can be chosen).

    The decision is the scorecard's (`evals report` shows the same): its settings are evals.yaml's gate:
    section, with --policy overriding any of them. Reads the store only (it may be read-only). The verdict
    is Markdown: drawn on a terminal, printed as is in a pipe, a file or with --markdown, and appended to
    $GITHUB_STEP_SUMMARY when set. If the step summary or --junit cannot be written, the gate says so and
    exits 2: a CI must not read a decision it did not get in full.
    """
    from evals.render import gate as render_gate
    from evals.scorecard import decision as deciding
    from evals.scorecard import latest_run

    config = load_config(config_path)
    settings = deciding.load_settings(config.gate, policy_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        try:
            if candidate is None:
                candidate = latest_run(store).run_id
                err.print(plain(f"candidate {candidate}: the latest finished run"), soft_wrap=True)
            base = (
                store.baseline(baseline)
                if baseline is not None
                else _default_baseline(store, candidate, settings.max_error_rate)
            )
            verdict = deciding.decide(store, candidate, base.run_id, settings, allow_judge_change)
        except EvalsError as exc:  # a missing run is "cannot decide", not a crash
            err.print(plain(f"cannot decide: {exc}"))
            sys.exit(deciding.UNDECIDED)
    if settings.confirm_repeats and verdict.outcome == "fail" and deciding.failing_areas(verdict):
        try:
            from evals.cli.confirm import confirm_failing

            with open_store(config, reports_path(config, reports_dir)) as store:
                verdict = confirm_failing(config, store, verdict, allow_judge_change)
        except EvalsError as exc:
            err.print(
                plain(f"cannot decide: the failing areas could not be confirmed: {exc}"), soft_wrap=True
            )
            sys.exit(deciding.UNDECIDED)
    text = render_gate.markdown(verdict)
    print_markdown(text, raw=raw_markdown)
    append_step_summary(text)
    if junit_path is not None:
        junit_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(junit_path, render_gate.junit(verdict))
    sys.exit(verdict.exit_code)


@click.group()
def baseline() -> None:
    """Approve runs as named baselines (prod, staging...) and list them."""


@baseline.command("set", epilog=EXIT_CODES_HELP)
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--name",
    default="prod",
    show_default=True,
    type=BASELINE_NAME,
    help="Baseline name (letters, digits, '.', '_', '-'; not a run id).",
)
@click.option("--note", help="Why it was approved.")
@reports_option
@config_option
def baseline_set(
    run_id: str, name: str, note: str | None, reports_dir: Path | None, config_path: Path | None
) -> None:
    """Approve RUN_ID as baseline NAME (the approval history is kept)."""
    from evals.plan import now

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir)) as store:
        store.set_baseline(name, run_id, now(), note)
    out.print(plain(f"baseline {name} → {run_id}"), soft_wrap=True)


@baseline.command("list", epilog=EXIT_CODES_HELP)
@click.option("--history", is_flag=True, help="Every approval, not only the current one per name.")
@reports_option
@config_option
def baseline_list(history: bool, reports_dir: Path | None, config_path: Path | None) -> None:
    """List baselines: name, run, when it was approved, model."""
    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        table = Table("name", "run", "approved at", "model", "note")
        for name, run_id, set_at, note in store.baselines(history=history):
            m = store.run(run_id)
            table.add_row(plain(name), plain(run_id), plain(set_at), plain(f"{m.model_name} ({m.model_id or m.model})"),
                          plain(note or ""))  # fmt: skip
    out.print(table)


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--to", "name", required=True, type=RUN_OR_BASELINE, metavar="NAME|RUN_ID", help="Baseline to go back to."
)
@click.option("--write", is_flag=True, help="Put that model configuration back into the config file.")
@config_option
@reports_option
def rollback(name: str, write: bool, config_path: Path | None, reports_dir: Path | None) -> None:
    """Show (or with --write restore) the model configuration of an approved run."""
    from evals.scorecard.rollback import restore_model

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        run = store.baseline(name)
    text, written = restore_model(run, config_path or Path("evals.yaml"), write)
    out.print(plain(text, newlines=True), soft_wrap=True)
    if written:
        out.print(plain(f"wrote model {run.model_name!r} of run {run.run_id} into {written}"), soft_wrap=True)


def _default_baseline(store: Store, candidate: str, max_error_rate: float) -> RunManifest:
    """The baseline ``evals report`` would choose for the candidate; says which and why on stderr."""
    from evals.scorecard.baselines import choose_baseline  # the scorecard's imports, only when needed

    chosen, choice = choose_baseline(store, store.run(candidate), None, max_error_rate)
    if chosen is None:
        raise StoreError(f"no baseline given and none to choose: {choice.reason}; approve one with "
                         "evals baseline set RUN_ID --name NAME, or pass --baseline")  # fmt: skip
    err.print(plain(f"baseline {chosen.run_id}: {choice.reason}"), soft_wrap=True)
    return chosen
