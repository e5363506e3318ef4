"""``evals store copy``, ``evals import`` and ``evals export history``: moving and analysing the history."""

from __future__ import annotations

from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain, reports_option, reports_path
from evals.config import load_config
from evals.errors import StoreError
from evals.store import DB_NAME, Store, open_store
from evals.store.core import checked_address
from evals.store.crypto import KEY_ENV, codec
from evals.store.keycheck import holds_sealed
from evals.store.retention import warn_if_written_in_clear
from evals.store.transfer import TransferReport, copy_store, import_runs


def _open(location: str, readonly: bool, password_env: str | None, label: str) -> Store:
    """The store a command-line location names: a PostgreSQL URL or keyword string, a reports folder or a
    SQLite file; a wrong EVALS_STORE_KEY is refused here, before anything is copied."""
    if checked_address(location, label).kind == "postgresql":
        opened = Store(Path("."), readonly=readonly, url=location, password_env=password_env)
    else:
        path = Path(location)
        if path.suffix != ".db" and not path.is_file():
            path = path / DB_NAME
        opened = Store(path.parent, readonly=readonly, url=str(path))
    try:
        opened.check_key()
    except BaseException:
        opened.close()
        raise
    return opened


def _summary(report: TransferReport, verb: str, where: str) -> str:
    line = f"{verb} {len(report.added)} new run(s) into {where}"
    if report.updated:
        line += f"; {len(report.updated)} already there, brought up to date"
    return line


@click.group("store", epilog=EXIT_CODES_HELP)
def store() -> None:
    """Manage run stores (SQLite files, PostgreSQL databases)."""


@store.command("copy", epilog=EXIT_CODES_HELP)
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@config_option
def store_copy(source: str, target: str, config_path: Path | None) -> None:
    """Copy the whole history (runs, answers, judgments, baselines) of store FROM into store TO.

    The whole of FROM is checked before anything is written (a run id that is no name, a score out of 1-5,
    an unreadable config... is one line naming the run and the field, exit 2), then everything is written
    in one transaction: nothing is half done. Runs TO already has are brought up to date, never duplicated:
    running it twice is harmless. A store is a PostgreSQL URL (postgresql://user@host/db) or keyword string
    (host=... dbname=... user=...; the password comes from PGPASSWORD, ~/.pgpass or store_password_env, never
    the address), a reports folder (its evals.db) or a SQLite file.

    \b
    Examples:
      evals store copy reports/ postgresql://evals@db.internal/evals
      evals store copy postgresql://evals@db.internal/evals backup/evals.db
    """
    config = load_config(config_path)
    shown = checked_address(source, "FROM").shown
    checked_address(target, "TO")
    if source == target:
        raise StoreError(f"FROM and TO are the same store ({shown})")
    with _open(source, True, config.store_password_env, "FROM") as src:
        if codec().fernet is None and holds_sealed(src.backend):
            raise StoreError(
                f'{shown} encrypts its text and {KEY_ENV} is not set: the copy would hold "(encrypted)" '
                "in place of every text; set the store's key and copy again (nothing was copied)"
            )
        with _open(target, False, config.store_password_env, "TO") as dst:
            warn_if_written_in_clear(dst, "the copied runs' text")
            report = copy_store(src, dst)
            where = str(dst.path)
    line = _summary(report, "copied", where)
    out.print(plain(f"{line}; {report.baselines} baseline approval(s) added"), soft_wrap=True)


@click.command("import", epilog=EXIT_CODES_HELP)
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@reports_option
@config_option
def import_(path: Path, reports_dir: Path | None, config_path: Path | None) -> None:
    """Load runs exported by lookingglass into the store (EVALS_STORE, store: in the config, else evals.db).

    PATH is a run's folder (reports/runs/<run_id>/, holding manifest.json and results.jsonl) or any folder
    above such folders (another machine's reports/). Every run is checked before any is written: the first
    problem (a wrong type, a run id that is no name, a score out of 1-5, an unknown status, a duplicate
    row, bytes that are not UTF-8...) is one line, file:line: field: what is wrong, exit 2, and the store
    is left as it was. Then all runs are written in one transaction. The files are streamed, never read
    whole. A run already in the store is brought up to date, never duplicated.
    """
    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir)) as target:
        warn_if_written_in_clear(target, "the imported runs' text")
        report = import_runs(path, target)
        where = str(target.path)
    out.print(plain(_summary(report, "imported", where)), soft_wrap=True)


@click.group("export", epilog=EXIT_CODES_HELP)
def export() -> None:
    """Export the store for analysis elsewhere."""


@export.command("history", epilog=EXIT_CODES_HELP)
@click.option(
    "--format", "fmt", type=click.Choice(["parquet"]), default="parquet", show_default=True,
    help="File format.",
)  # fmt: skip
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Folder to write into (default: <reports>/history/).",
)  # fmt: skip
@click.option("--suite", default=None, help="Only the runs of this suite (its name).")
@reports_option
@config_option
def export_history_command(
    fmt: str, out_dir: Path | None, suite: str | None, reports_dir: Path | None, config_path: Path | None
) -> None:
    """Write the history as runs.parquet, areas.parquet and results.parquet, for pandas or DuckDB.

    \b
    runs.parquet     one row per run: suite, model, judge, rubrics, status, counts
    areas.parquet    one row per run and area: items, mean of item means, pass rate, errors, tokens
    results.parquet  one row per item and sample of every run (results.jsonl's columns)
    All join on run_id. Example: duckdb -c "SELECT * FROM 'reports/history/areas.parquet'"
    """
    from evals.store.export import export_history

    config = load_config(config_path)
    reports = reports_path(config, reports_dir)
    with open_store(config, reports, readonly=True) as source:
        done = export_history(source, out_dir or reports / "history", config.gate.pass_score, suite)
    out.print(
        plain(f"{done.run_count} run(s), {done.result_count} result row(s) → {done.runs.parent}"),
        soft_wrap=True,
    )
