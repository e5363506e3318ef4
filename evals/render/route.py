"""The routing table as Markdown (for a decision memo), HTML (with cost against volume drawn per area) and
JSON; every figure read from the one ``RoutingTable``."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from evals.render import _environment
from evals.render.markdown import md_text
from evals.routing.economics import AreaCost, volume_text
from evals.routing.route import RoutingTable

CHART_W, CHART_H, PAD = 300, 120, 8


def _money(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


def _volume(value: float | None) -> str:
    if value is None:
        return "–"
    return volume_text(value)


def cost_chart(cost: AreaCost | None) -> dict[str, Any] | None:
    """SVG geometry (numbers only) of monthly cost against requests a month: the API line, the self-hosted
    line (fixed costs, then per request), the crossover and the area's volume marked."""
    if cost is None or cost.api_per_request is None or cost.self_per_request is None:
        return None
    reach = [cost.requests_per_month * 2, (cost.crossover_requests or 0) * 1.5]
    x_max = max(max(reach), 1.0)
    y_max = max(cost.api_per_request * x_max, cost.fixed_monthly + cost.self_per_request * x_max, 1e-9)

    def x(v: float) -> float:
        return round(PAD + v / x_max * (CHART_W - 2 * PAD), 1)

    def y(v: float) -> float:
        return round(CHART_H - PAD - v / y_max * (CHART_H - 2 * PAD), 1)

    chart: dict[str, Any] = {
        "api": f"{x(0)},{y(0)} {x(x_max)},{y(cost.api_per_request * x_max)}",
        "self": f"{x(0)},{y(cost.fixed_monthly)} {x(x_max)},{y(cost.fixed_monthly + cost.self_per_request * x_max)}",
        "volume_x": x(cost.requests_per_month),
        "volume": _volume(cost.requests_per_month),
        "crossover": None,
    }
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
    return env


def render_route_markdown(table: RoutingTable) -> str:
    """The routing table in Markdown, fit to paste into a decision memo."""
    return _env(False).get_template("route.md.j2").render(t=table, cell=md_text)


def render_route_html(table: RoutingTable) -> str:
    """The routing table as one self-contained HTML page."""
    import secrets

    charts = {row.area: cost_chart(row.cost) for row in table.areas}
    return (
        _env(True)
        .get_template("route.html.j2")
        .render(t=table, charts=charts, chart={"w": CHART_W, "h": CHART_H}, nonce=secrets.token_urlsafe(16))
    )
