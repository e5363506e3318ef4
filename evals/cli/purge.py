"""``evals purge`` (retention) and ``evals store keygen`` (encryption at rest): what the store keeps, and
how."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain, reports_option, reports_path
from evals.cli.store import store
from evals.config import load_config
from evals.errors import ConfigError, StoreError
from evals.names import RUN_ID
from evals.store import open_store


def _size(n: int) -> str:
    """Bytes for people: ``812 B``, ``4.2 kB``, ``1.3 MB``."""
    if n < 1000:
        return f"{n} B"
    value, units = n / 1000, ["kB", "MB", "GB"]
    while value >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.1f} {units[0]}"


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--older-than", metavar="AGE|DATE", default=None,
    help="Runs that ended before this: 30d, 12h, 2w, or a date (2026-10-31). Default: retention.text_days.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="List the runs, rows and bytes of text; change nothing.")
@click.option(
    "--include-baselines", is_flag=True, default=None,
    help="Purge runs approved as baselines too (default: retention.include_baselines, else kept).",
)  # fmt: skip
@click.option(
    "--run", "runs", multiple=True, type=RUN_ID, metavar="RUN_ID",
    help="Only this run (repeatable); without --older-than, whatever its age.",
)  # fmt: skip
@click.option(
    "--if-configured", is_flag=True,
    help="Without --older-than and retention.text_days, do nothing (for scheduled jobs: nightly.sh).",
)  # fmt: skip
@reports_option
@config_option
def purge(
    older_than: str | None,
    dry_run: bool,
    include_baselines: bool | None,
    runs: tuple[str, ...],
    if_configured: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Remove the text of old runs from the store and their exports, keeping their scores.

    Questions, references, answers, reasoning, rationales, raw verdicts and error messages become
    "(purged)"; scores, which answers failed, tokens, latencies, per-area aggregates, item hashes and
    cache keys stay, so reports, history, the index and gates still work on purged runs (they can no
    longer be resumed). results.jsonl,
    manifest.json and the scorecards under reports/runs/<id>/ are rewritten without text. Running it
    again does nothing. See `evals docs retention`.

    \b
    Examples:
      evals purge --older-than 30d --dry-run
      evals purge                              # retention.text_days from evals.yaml
      evals purge --run 20261001T231500Z-qwen-3f9a0c1e --include-baselines
    """
    from evals.render.purge import purge as do_purge
    from evals.store.purge import cutoff_of, plan_purge

    config = load_config(config_path)
    now = datetime.now(UTC)
    if older_than is None and not runs and config.retention.text_days is not None:
        older_than = f"{config.retention.text_days}d"
    if older_than is None and not runs:
        if if_configured:
            out.print("no retention configured (retention.text_days in evals.yaml): nothing purged")
            return
        raise ConfigError(
            "how old must a run be to lose its text? give --older-than (30d, 2w, 2026-10-31) or set "
            "retention: {text_days: 30} in evals.yaml"
        )
    cutoff = cutoff_of(older_than, now) if older_than is not None else None
    baselines = config.retention.include_baselines if include_baselines is None else include_baselines
    with open_store(config, reports_path(config, reports_dir), readonly=dry_run) as run_store:
        plan = plan_purge(run_store, cutoff, baselines, runs)
        if not dry_run:
            plan = do_purge(run_store, plan, now)
    verb = "would purge" if dry_run else "purged"
    for t in plan.targets:
        out.print(
            plain(
                f"{verb} {t.run_id} (ended {t.ended_at}): {t.held.rows} rows, {_size(t.held.bytes)} of text"
            )
        )
    when = f"ended before {cutoff.isoformat(timespec='seconds')}" if cutoff else "named with --run"
    out.print(
        plain(f"{verb} {len(plan.targets)} run(s) {when}: {plan.rows} rows, {_size(plan.bytes)} of text"),
        soft_wrap=True,
    )
    if plan.kept_baselines:
        out.print(
            plain(f"kept {len(plan.kept_baselines)} baseline run(s) (--include-baselines to purge them): "
                  + ", ".join(plan.kept_baselines)),
            soft_wrap=True,
        )  # fmt: skip
    if plan.busy:
        out.print(
            plain(
                "skipped, being worked by another evals process (purge again later): " + ", ".join(plan.busy)
            ),
            soft_wrap=True,
        )


@store.command("keygen", epilog=EXIT_CODES_HELP)
def keygen() -> None:
    """Print a new key for encrypting the store's text at rest (EVALS_STORE_KEY).

    With EVALS_STORE_KEY set, questions, answers, reasoning, rationales, raw verdicts and error messages
    are written encrypted (Fernet); scores and aggregates stay readable without it. The first key used on
    a store is recorded (a sealed check value): any other key is refused before anything is written. To
    rotate, put the new key first: EVALS_STORE_KEY=NEW,OLD, then evals store rekey. Keep the key in a
    secret manager: text written with a lost key is lost.

    \b
    Example:
      export EVALS_STORE_KEY=$(evals store keygen)
    """
    from evals.store.crypto import new_key

    click.echo(new_key())


@store.command("rekey", epilog=EXIT_CODES_HELP)
@reports_option
@config_option
def rekey_command(reports_dir: Path | None, config_path: Path | None) -> None:
    """Write all the store's text again under the newest key of EVALS_STORE_KEY.

    Finishes a key rotation (EVALS_STORE_KEY=NEW,OLD: text under OLD is re-encrypted with NEW, after
    which OLD can be dropped) and encrypts text stored in clear (written before encryption was turned on,
    or by a process without the key). Text none of the keys opens is left as it is and named by run, with
    exit 2: add its key and run rekey again. A key that is not the store's changes nothing. Run it while
    no other evals process writes the store. Each run is moved in one transaction, and the newest key is
    the store's from the start: an interrupted rekey is finished by running it again.
    """
    from evals.store.rekey import rekey_store

    config = load_config(config_path)
    # Not checked at opening: a store holding text under several keys is what rekey is for.
    with open_store(config, reports_path(config, reports_dir), check_key=False) as run_store:
        done = rekey_store(run_store)
    out.print(plain(f"{done.written} text value(s) written under the newest key"), soft_wrap=True)
    problem = done.problem()
    if problem:
        raise StoreError(problem)
