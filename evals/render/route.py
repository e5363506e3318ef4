"""The routing table as Markdown (for a decision memo), HTML (cost against volume drawn per area, with
labelled axes) and JSON; every figure and every recommendation read from the one ``RoutingTable``, its
overall answer first."""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment

from evals.render.markdown import md_text
from evals.render.pages import _environment
from evals.routing.economics import AreaCost, money_text, volume_text
from evals.routing.records import RoutingTable

CHART_W, CHART_H = 380, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 44
"""Room around the plot for the y tick labels (left) and the x tick labels and axis title (bottom)."""


def _money(value: float | None) -> str:
    return money_text(value)


def _volume(value: float | None) -> str:
    if value is None:
        return "–"
    return volume_text(value)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 × a power of ten), ``count`` or so."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _tick_money(value: float) -> str:
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"${value / size:g}{unit}"
    return f"${value:g}"


def _tick_volume(value: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def cost_chart(cost: AreaCost | None) -> dict[str, Any] | None:
    """SVG geometry (numbers and tick labels only) of monthly cost against requests a month: both axes with
    round ticks and their units, the API line, the self-hosted line (fixed costs, then per request), the
    area's volume and the crossover marked."""
    if cost is None or cost.api_per_request is None or cost.self_per_request is None:
        return None
    reach = max(cost.requests_per_month * 2, (cost.crossover_requests or 0) * 1.5, 1.0)
    x_ticks = nice_ticks(reach)
    x_max = x_ticks[-1]
    y_ticks = nice_ticks(
        max(cost.api_per_request * x_max, cost.fixed_monthly + cost.self_per_request * x_max)
    )
    y_max = y_ticks[-1]
    plot_w, plot_h = CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM

    def x(v: float) -> float:
        return round(LEFT + v / x_max * plot_w, 1)

    def y(v: float) -> float:
        return round(TOP + plot_h - v / y_max * plot_h, 1)

    chart: dict[str, Any] = {
        "left": LEFT, "right": CHART_W - RIGHT, "top": TOP, "bottom": CHART_H - BOTTOM,
        "x_ticks": [{"at": x(v), "label": _tick_volume(v)} for v in x_ticks],
        "y_ticks": [{"at": y(v), "label": _tick_money(v)} for v in y_ticks],
        "x_title": {"x": round(LEFT + plot_w / 2, 1), "y": CHART_H - 6},
        "y_title": {"x": 14, "y": round(TOP + plot_h / 2, 1)},
        "api": f"{x(0)},{y(0)} {x(x_max)},{y(cost.api_per_request * x_max)}",
        "self": f"{x(0)},{y(cost.fixed_monthly)} {x(x_max)},{y(cost.fixed_monthly + cost.self_per_request * x_max)}",
        "volume_x": x(cost.requests_per_month),
        "volume": _volume(cost.requests_per_month),
        "crossover": None,
    }  # fmt: skip
    if cost.crossover_requests is not None:
        chart["crossover"] = {
            "x": x(cost.crossover_requests),
            "y": y(cost.api_per_request * cost.crossover_requests),
            "label": _volume(cost.crossover_requests),
        }
    return chart


def _env(html: bool) -> Environment:
    env = _environment(html)
    env.filters["money"] = _money
    env.filters["volume"] = _volume
    env.filters["ms"] = _ms
    env.filters["with_ms"] = lambda v: "–" if v is None else f"{_ms(v)} ms"
    return env


def render_route_markdown(table: RoutingTable) -> str:
    """The routing table in Markdown, fit to paste into a decision memo: the overall answer first."""
    return _env(False).get_template("route.md.j2").render(t=table, cell=md_text)


def render_route_html(table: RoutingTable) -> str:
    """The routing table as one self-contained HTML page: the overall answer first."""
    import secrets

    charts = {row.area: cost_chart(row.cost) for row in table.areas}
    return (
        _env(True)
        .get_template("route.html.j2")
        .render(t=table, charts=charts, chart={"w": CHART_W, "h": CHART_H}, nonce=secrets.token_urlsafe(16))
    )
