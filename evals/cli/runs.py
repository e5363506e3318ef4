"""``runs list`` and ``runs exclude``: what the store holds, and taking a wrong run out of the comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.cells import cell_len
from rich.console import JustifyMethod
from rich.measure import Measurement
from rich.table import Table

from evals.cli.common import EXIT_CODES_HELP, config_option, fmt, out, plain, reports_option, reports_path
from evals.config import load_config
from evals.names import RUN_ID
from evals.render.terminal import visible
from evals.store import open_store


@click.group()
def runs() -> None:
    """List the stored runs; exclude a wrong one from baseline choice and history."""


@runs.command("list", epilog=EXIT_CODES_HELP)
@click.option("--suite", "suite_name", help="Only runs of this suite.")
@click.option("--model", "model_name", help="Only runs of this model (its name in evals.yaml).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run and line, for scripts.")
@click.option(
    "--wide",
    is_flag=True,
    help="Every column in full (start time, model id, items scored), a row one line however long.",
)
@reports_option
@config_option
def runs_list(
    suite_name: str | None,
    model_name: str | None,
    as_json: bool,
    wide: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """List runs, oldest first: status, error rate, suite, model, judge, tags.

    One line a run: the run id in full, the other columns cut with an ellipsis to fit the terminal
    (--wide shows every column whole, --json everything). The error rate is the larger of the answer
    and judge error shares, as the gate's max_error_rate reads it; an excluded run shows the tag
    `excluded`.
    """
    from evals.scorecard.baselines import run_health

    config = load_config(config_path)
    table = _wide_table()
    narrow: list[tuple[str, ...]] = []
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
            errors = fmt(h.error_rate if h.rows else None, ".0%")
            if wide:
                table.add_row(*map(plain, (
                    m.run_id, m.started_at, m.status, errors, f"{h.scored}/{h.rows}", m.suite_name,
                    f"{m.model_name} ({m.model_id or m.model})", m.judge_model, ", ".join(m.tags),
                )))  # fmt: skip
            else:
                narrow.append(
                    (m.run_id, m.status, errors, m.suite_name, m.model_name, m.judge_model, ", ".join(m.tags))
                )
    if not as_json:
        if wide:
            _print_whole(table)
            return
        shown, hidden = narrow_table(narrow, out.width)
        out.print(shown)
        if hidden:
            out.print(f"not shown at this width: {', '.join(hidden)} (--wide shows every column)")


def _wide_table() -> Table:
    return Table("run", "started", "status", "errors", "scored", "suite", "model", "judge", "tags")


def _print_whole(table: Table) -> None:
    """Print ``table`` at its natural width, each row one line however long (a narrower terminal wraps it,
    a pipe or a file keeps it whole)."""
    whole = Measurement.get(out, out.options.update_width(10_000), table).maximum
    wide = type(out)(
        file=out.file, width=max(out.width, whole), force_terminal=out.is_terminal,
        color_system="auto" if out.color_system else None, highlight=False, markup=False, emoji=False,
    )  # fmt: skip
    wide.print(table, crop=False)


NARROW_COLUMNS = ("run", "status", "errors", "suite", "model", "judge", "tags")
_WHOLE = 3
"""The first columns are shown whole: the run id, the status and the error rate are what a reader copies
and checks. The others share the width left, each cut with an ellipsis when it does not fit."""
_DROP_ORDER = ("tags", "suite", "judge", "model")
"""Which shared column goes first when the width left cannot show each of them usefully."""
_USEFUL, _GAP = 6, 2


def narrow_table(rows: list[tuple[str, ...]], width: int) -> tuple[Table, list[str]]:
    """A borderless table of ``rows`` (in ``NARROW_COLUMNS`` order), one line a run within ``width``, and
    the names of the columns left out because the width could not show them (``--wide`` does)."""
    shown = list(NARROW_COLUMNS)
    needs = {
        name: max(cell_len(visible(text)) for text in (name, *(row[i] for row in rows)))
        for i, name in enumerate(NARROW_COLUMNS)
    }
    whole = sum(needs[name] for name in NARROW_COLUMNS[:_WHOLE])
    while True:
        shared = shown[_WHOLE:]
        left = width - whole - _GAP * (len(shown) - 1)
        if not shared or left >= sum(min(needs[n], _USEFUL) for n in shared):
            break
        shown.remove(next(n for n in _DROP_ORDER if n in shown))
    widths = dict(zip(shared, share_width([needs[n] for n in shared], left), strict=True))
    table = Table(box=None, padding=(0, _GAP, 0, 0), pad_edge=False, show_edge=False, header_style="bold")
    for name in shown:
        justify: JustifyMethod = "right" if name == "errors" else "left"
        table.add_column(name, width=widths.get(name, needs[name]), no_wrap=True, overflow="ellipsis",
                         justify=justify)  # fmt: skip
    index = [NARROW_COLUMNS.index(name) for name in shown]
    for row in rows:
        table.add_row(*(plain(row[i]) for i in index))
    return table, [name for name in NARROW_COLUMNS if name not in shown]


def share_width(needs: list[int], budget: int) -> list[int]:
    """Widths within ``budget`` for columns needing ``needs``: a column that fits its fair share gets what
    it needs, the others split what is left evenly."""
    widths = list(needs)
    open_ = list(range(len(needs)))
    while open_:
        fair = budget // len(open_)
        fits = [i for i in open_ if needs[i] <= fair]
        if not fits:
            spare = budget - fair * len(open_)
            for n, i in enumerate(open_):
                widths[i] = max(1, fair + (1 if n < spare else 0))
            break
        for i in fits:
            budget -= needs[i]
            open_.remove(i)
    return widths


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
