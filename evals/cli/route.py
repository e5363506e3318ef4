"""``evals route``: which areas may move from the frontier API to the local model, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain, reports_option, reports_path
from evals.cli.examples import with_examples
from evals.config import load_config
from evals.files import write_atomic
from evals.names import RUN_ID
from evals.store import open_store

if TYPE_CHECKING:
    from evals.routing.route import RoutingTable


@click.command("route", epilog=with_examples(EXIT_CODES_HELP, "route"))
@click.option("--local", "local_id", required=True, type=RUN_ID, help="The local model's run.")
@click.option(
    "--frontier",
    "frontier_id",
    required=True,
    type=RUN_ID,
    help="The frontier model's run of the same suite.",
)
@click.option(
    "--margin", default=0.3, show_default=True, type=click.FloatRange(0, 4),
    help="δ: how many points worse than the frontier the local model may be and still be non-inferior.",
)  # fmt: skip
@click.option(
    "--floor", default=4.0, show_default=True, type=click.FloatRange(1, 5),
    help="The mean a restricted area's local model must clear (one-sided 95 % bound): it has no frontier run.",
)  # fmt: skip
@click.option(
    "--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "md", "html", "json"]),
    help="table (terminal), md (for a decision memo), html (cost against volume drawn), json.",
)  # fmt: skip
@click.option(
    "--out", "out_path", type=click.Path(path_type=Path), help="Write it to this file instead of stdout."
)
@click.option(
    "--no-record", is_flag=True,
    help="Do not keep this table's recommendations (kept by default, so the next table says what changed).",
)  # fmt: skip
@reports_option
@config_option
def route(
    local_id: str,
    frontier_id: str,
    margin: float,
    floor: float,
    fmt: str,
    out_path: Path | None,
    no_record: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Route each area to the local model or keep it on the frontier: quality, cost, sensitivity, latency.

    Pairs the two runs item by item (same suite, judge and rubric, or it refuses) and tests, per area, whether the
    local model is non-inferior at margin δ (one-sided, 5 %); restricted areas are never sent out and need the
    local mean to clear --floor. Monthly costs each way come from 'usage:' and 'hosting:' in evals.yaml, the
    frontier model's prices and the runs' own tokens and busy time; each side's p99 latency from its run,
    against the area's latency_slo_ms. 'local' when good enough and cheaper (or restricted, or only it meets
    the latency target); 'frontier' when local is not good enough, dearer at your volume (the reason says
    above which volume it pays) or too slow; 'not yet' otherwise. The overall answer is printed first.
    """
    from evals.render.route import render_route_html, render_route_markdown
    from evals.routing.route import route as route_table
    from evals.routing.route import save_table, with_changes

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=no_record) as store:
        table = route_table(
            store, local_id, frontier_id, config, margin, floor, decided_at=datetime.now(UTC).isoformat()
        )
        table = with_changes(store, table)
        if not no_record:
            save_table(store, table)
    if fmt == "table":
        if out_path is not None:
            raise click.UsageError("--out needs --format md, html or json")
        _print_table(table)
        return
    text = {
        "md": render_route_markdown,
        "html": render_route_html,
        "json": lambda t: t.model_dump_json(indent=2) + "\n",
    }[fmt](table)
    if out_path is None:
        click.echo(text, nl=False)
    else:
        write_atomic(out_path, text)
        out.print(plain(f"wrote {out_path}"), soft_wrap=True)


_COLUMNS = ("area", "sensitivity", "items", "Δ", "bound", "p99 ms local/frontier", "target ms", "$/mo API/self", "route")  # fmt: skip


def _print_table(table: RoutingTable) -> None:
    from evals.render.route import _money, _ms

    out.print(plain(table.overall.text), style="bold", soft_wrap=True)
    grid = Table(
        title=plain(f"what goes where: {table.local.model_name} vs {table.frontier.model_name} ({table.local.suite})"),
        caption=plain(f"local {table.local.run_id} · frontier {table.frontier.run_id} · judge {table.judge} · δ {table.margin} · ! misses the latency target"),
    )  # fmt: skip
    for name in _COLUMNS:
        grid.add_column(name, justify="left" if name in ("area", "sensitivity", "route") else "right")
    for r in table.areas:
        changed = f" (was {r.previous.recommendation})" if r.previous else ""
        lat = r.latency
        p99 = f"{_ms(lat.local_p99_ms)}{'!' * lat.local_misses}/{_ms(lat.frontier_p99_ms)}{'!' * lat.frontier_misses}"
        cost = f"{_money(r.cost.api_monthly if r.cost else None)} / {_money(r.cost.self_monthly if r.cost else None)}"
        grid.add_row(
            plain(r.area), r.sensitivity, str(r.n_pairs),
            "–" if r.delta is None else f"{r.delta:+.2f}", "–" if r.bound_low is None else f"{r.bound_low:+.2f}",
            p99, "–" if lat.slo_ms is None else f"≤ {_ms(lat.slo_ms)}", cost, r.recommendation + changed,
        )  # fmt: skip
    out.print(grid)
    for r in table.areas:  # why, under the table: a column there would be a few characters wide
        out.print(plain(f"{r.area}: {r.recommendation}, {r.because}"), style="bold")
        out.print(plain(f"  {r.reason}"))
    for note in table.notes:
        out.print(plain(note), soft_wrap=True)
