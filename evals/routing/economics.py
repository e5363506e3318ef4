"""Volume economics: what an area costs a month on a frontier API and on owned inference, and the volume
at which owning pays off.

API side: ``requests × (tokens in × price in + tokens out × price out) / 1e6``, with the tokens per request
the frontier run measured for that area and the prices of its model's endpoint (``price_in_per_mtok``,
``price_out_per_mtok``).

Self-hosted side: the local run's *busy time* — the union of its answers' in-flight intervals, so
concurrent calls are not counted twice and idle gaps are not counted at all — is shared among its answers
in proportion to their latency; an area's busy seconds per request × requests a month is the server time
it needs. Paid GPU hours are that time × GPUs ÷ utilisation (idle capacity and headroom are paid for too),
and ``fixed_monthly`` (a share of an engineer, monitoring, storage) is added once. Each area is costed as if
it moved alone, bearing the fixed costs; the table's total moves every area together, paying them once.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from evals.config import Config, Hosting
from evals.errors import ConfigError
from evals.records import RunConfig
from evals.results import ResultRow

HOURS_PER_MONTH = 730.0
"""Hours in an average month (365 × 24 / 12)."""


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals: the time at least one call was in flight."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def _timed(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """Rows whose answer kept its call time (answers stored before ``finished_at`` did not)."""
    return [r for r in rows if r.answer_finished_at is not None and r.answer_latency_ms]


def run_busy_seconds(rows: Iterable[ResultRow]) -> float | None:
    """The time the model's server was busy with these answers: the union of their in-flight intervals
    (``finished_at`` minus latency, to ``finished_at``); None when none kept its call time."""
    spans = [
        (r.answer_finished_at - r.answer_latency_ms / 1000, r.answer_finished_at)
        for r in rows
        if r.answer_finished_at is not None and r.answer_latency_ms
    ]
    return busy_seconds(spans) if spans else None


def volume_text(n: float) -> str:
    """A volume for people: ``2.1 M``, ``38.0 k``, ``950``."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f}"


def money_text(value: float | None) -> str:
    """An amount of dollars for people: ``$1,250``, ``$7.80``; an en dash for None."""
    if value is None:
        return "–"
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


@dataclass(frozen=True)
class Measured:
    """What a run measured of one area: answered requests, their mean tokens and busy seconds."""

    requests: int
    """Answers with token counts."""
    tokens_in: float
    """Mean prompt tokens per request."""
    tokens_out: float
    """Mean completion tokens per request."""
    busy_s: float | None
    """The area's share of the run's busy time per request (None when the run kept no call times)."""


def measure(rows: Sequence[ResultRow]) -> dict[str, Measured]:
    """Per area, the requests a run answered and what each took: tokens and a share of the busy time."""
    answered = [r for r in rows if r.answer_tokens_in is not None and r.answer_error is None and r.answer]
    busy = run_busy_seconds(answered) or 0.0
    total_latency = sum(r.answer_latency_ms or 0.0 for r in _timed(answered))
    by_area: dict[str, list[ResultRow]] = defaultdict(list)
    for row in answered:
        by_area[row.area].append(row)
    out = {}
    for area, area_rows in sorted(by_area.items()):
        n = len(area_rows)
        share = None
        if total_latency > 0:
            area_latency = sum(
                r.answer_latency_ms or 0.0 for r in area_rows if r.answer_finished_at is not None
            )
            share = busy * area_latency / total_latency / n
        out[area] = Measured(
            requests=n,
            tokens_in=sum(r.answer_tokens_in or 0 for r in area_rows) / n,
            tokens_out=sum(r.answer_tokens_out or 0 for r in area_rows) / n,
            busy_s=share,
        )
    return out


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AreaCost(_Record):
    """The monthly cost of one area each way, and where they cross."""

    requests_per_month: float
    tokens_per_month: float | None
    """Tokens in and out a month at the frontier model's tokens per request (what the API bills)."""
    api_per_request: float | None
    """Frontier API cost of one request (None without the frontier run's prices)."""
    self_per_request: float | None
    """Self-hosted variable cost of one request (None without ``hosting:`` or call times)."""
    fixed_monthly: float
    """The self-hosted fixed costs this area bears when it moves alone."""
    api_monthly: float | None
    self_monthly: float | None
    crossover_requests: float | None
    """Requests a month above which self-hosting is cheaper; None when it never is (or is unknown)."""

    @property
    def saving(self) -> float | None:
        """The share of the API cost self-hosting saves (negative: it costs more); None when unknown."""
        if self.api_monthly is None or self.self_monthly is None or self.api_monthly == 0:
            return None
        return (self.api_monthly - self.self_monthly) / self.api_monthly


def api_price(run_config: RunConfig) -> tuple[float, float] | None:
    """Prices per million tokens in and out of a run's model, from its config snapshot; None if unpriced."""
    model = run_config.model
    if model.price_in_per_mtok is None and model.price_out_per_mtok is None:
        return None
    return float(model.price_in_per_mtok or 0.0), float(model.price_out_per_mtok or 0.0)


def area_cost(
    requests: float,
    local: Measured | None,
    frontier: Measured | None,
    prices: tuple[float, float] | None,
    hosting: Hosting | None,
) -> AreaCost:
    """One area's monthly cost on the API (``frontier`` tokens × ``prices``) and self-hosted (``local``
    busy time × ``hosting``), with the crossover volume."""
    api_per = None
    tokens = None
    if frontier is not None:
        tokens = requests * (frontier.tokens_in + frontier.tokens_out)
        if prices is not None:
            api_per = (frontier.tokens_in * prices[0] + frontier.tokens_out * prices[1]) / 1e6
    self_per = None
    fixed = hosting.fixed_monthly if hosting else 0.0
    if hosting is not None and local is not None and local.busy_s is not None:
        self_per = local.busy_s / 3600 * hosting.gpus * hosting.gpu_hour / hosting.utilisation
    crossover = None
    if api_per is not None and self_per is not None and api_per > self_per:
        crossover = fixed / (api_per - self_per)
    return AreaCost(
        requests_per_month=requests,
        tokens_per_month=tokens,
        api_per_request=api_per,
        self_per_request=self_per,
        fixed_monthly=fixed,
        api_monthly=None if api_per is None else requests * api_per,
        self_monthly=None if self_per is None else fixed + requests * self_per,
        crossover_requests=crossover,
    )


def monthly_requests(config: Config) -> dict[str, float]:
    """Requests a month per area: ``usage.areas``, then (for areas not listed there) the ``usage.csv`` file."""
    volume: dict[str, float] = {}
    if config.usage.csv:
        volume.update(read_traffic(config.path(config.usage.csv)))
    volume.update(
        {
            area: u.requests_per_month
            for area, u in config.usage.areas.items()
            if u.requests_per_month is not None
        }
    )
    return volume


def read_traffic(path: Path) -> dict[str, float]:
    """Monthly requests per area from a CSV of real traffic (``area,requests[,month]``): summed per area,
    divided by the number of months present (one when there is no ``month`` column)."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the traffic file: {exc.strerror or exc}") from None
    totals: dict[str, float] = defaultdict(float)
    months: set[str] = set()
    with handle:
        reader = csv.DictReader(handle)
        missing = {"area", "requests"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(
                f"{path}:1: the traffic file needs columns area and requests (missing {', '.join(sorted(missing))})"
            )
        for row in reader:
            line = reader.line_num
            area = (row.get("area") or "").strip()
            if not area:
                raise ConfigError(f"{path}:{line}: empty area")
            try:
                requests = float(row.get("requests") or "")
            except ValueError:
                raise ConfigError(
                    f"{path}:{line}: requests must be a number, not {row.get('requests')!r}"
                ) from None
            if not requests >= 0 or requests == float("inf"):
                raise ConfigError(f"{path}:{line}: requests must be a finite number ≥ 0")
            totals[area] += requests
            if row.get("month"):
                months.add(row["month"].strip())
    per = max(1, len(months))
    return {area: total / per for area, total in totals.items()}
