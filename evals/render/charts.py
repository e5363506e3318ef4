"""Chart geometry for the HTML pages: plain numbers and names in, SVG shapes with labelled axes out.

Every function here is pure. It takes numbers and names and returns a ``Chart``: lines, rectangles, dots,
polylines and texts in the SVG's own coordinates, which ``templates/charts.html.j2`` draws. Nothing here
makes markup: names (area names are untrusted text) travel as plain strings that the template's
autoescaping escapes. Each chart has an x and a y axis label (texts of class ``axis-label``) and tick labels
with their units. Texts are laid out so that none overlaps another, from a deliberately generous estimate
of their width (``text_width``): a name too long for its place is cut with "…" and given whole as a tooltip;
a date or marker label with no room is left out (the runs stay marked by their dots and lines).

The charts: ``areas_chart`` (each area's mean with its 95 % interval and the baseline's mean, the weak
line), ``delta_chart`` (each area's paired Δ with its interval, zero and the −margin line),
``distribution_chart`` (each area's answers by score level, stacked) and ``trend_chart`` (each area's mean
over runs by date, marking where the model, judge or rubric changed).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

WIDTH = 480
"""Width of every chart's coordinate system; the page scales the SVG to its column."""
TICK, LABEL, SMALL = 11, 12, 10
"""Font sizes (SVG units) of tick labels and notes, of names and axis labels, and of counts in bars."""
GAP = 6
"""The least room left between two texts."""
SERIES = 8
"""Line colours before the dash patterns repeat them."""
MINUS = "\u2212"


@dataclass(frozen=True)
class Text:
    """One text of a chart. ``cls``: ``tick``, ``axis-label``, ``label`` (a name), ``value``, ``note``, ``count``."""

    x: float
    y: float
    """The baseline of the text."""
    text: str
    cls: str = "tick"
    anchor: str = "middle"
    """``start``, ``middle`` or ``end``: which end of the text is at ``x``."""
    rotate: bool = False
    """Turned a quarter left about (x, y): a y axis label."""
    title: str | None = None
    """The whole text, when ``text`` was cut to fit."""


@dataclass(frozen=True)
class Line:
    """A line: ``grid``, ``axis``, ``whisker``, ``weak``, ``margin``, ``zero`` or ``change``."""

    x1: float
    y1: float
    x2: float
    y2: float
    cls: str
    title: str | None = None


@dataclass(frozen=True)
class Rect:
    """A bar segment."""

    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str | None = None


@dataclass(frozen=True)
class Dot:
    """A point: ``cand`` (the candidate), ``base`` (the baseline, hollow) or a series' colour."""

    x: float
    y: float
    r: float
    cls: str
    title: str | None = None


@dataclass(frozen=True)
class Series:
    """One line of a trend chart, with a dot per run."""

    points: str
    """``x,y x,y …``, the polyline's points."""
    cls: str
    title: str
    dots: tuple[Dot, ...]


@dataclass(frozen=True)
class Key:
    """One entry of a chart's legend (drawn in HTML beside the chart): its text and its swatch's class."""

    text: str
    cls: str


@dataclass(frozen=True)
class Chart:
    """One SVG chart: its size, what to draw (in this order) and its legend."""

    width: float
    height: float
    title: str
    """What the chart shows, for assistive technology (``aria-label``)."""
    lines: list[Line] = field(default_factory=list)
    rects: list[Rect] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    legend: list[Key] = field(default_factory=list)


@dataclass(frozen=True)
class AreaMean:
    """One area on the areas chart."""

    name: str
    mean: float | None
    low: float | None
    high: float | None
    baseline: float | None
    """The baseline run's mean of the area; None without a baseline or when it has no score there."""


@dataclass(frozen=True)
class AreaDelta:
    """One area on the Δ chart: the paired change against the baseline and its 95 % interval."""

    name: str
    delta: float | None
    low: float | None
    high: float | None
    status: str


@dataclass(frozen=True)
class TrendRun:
    """One run on a trend chart."""

    started_at: str
    """ISO 8601, as the manifest records it."""
    means: Mapping[str, float]
    """Each area's mean."""
    changes: Sequence[str] = ()
    """What changed since the previous run: ``model``, ``judge``, ``rubric``."""


def _char_em(c: str) -> float:
    # Widths in em of DejaVu Sans (Debian's default sans-serif, among the widest), rounded up.
    if c in " ijlI.,:;'!|()[]{}ft":
        return 0.42
    if c in "mwMW@%\u2014":
        return 1.02
    if c.isascii():
        return 0.8 if c.isupper() else 0.66
    if unicodedata.category(c) in ("Mn", "Me"):
        return 0.0
    return 1.1 if unicodedata.east_asian_width(c) in "WF" else 0.92


def text_width(text: str, size: float) -> float:
    """A generous estimate of how wide ``text`` is at font size ``size`` (in the same units)."""
    return size * sum(_char_em(c) for c in text)


def fit(text: str, width: float, size: float) -> tuple[str, str | None]:
    """``text`` cut with "…" to fit ``width``, and the whole text when it was cut (else None)."""
    text = " ".join(text.split())
    if text_width(text, size) <= width:
        return text, None
    cut = text
    while cut and text_width(cut + "…", size) > width:
        cut = cut[:-1]
    return cut.rstrip() + "…", text


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """At most ``count`` round values from ``lo`` to ``hi``, as many as fit: steps of 1, 2, 2.5 or 5 times a
    power of ten."""
    if hi <= lo:
        return [lo]
    power = 10 ** math.floor(math.log10((hi - lo) / max(count - 1, 1)))
    for step in (m * power for m in (1, 2, 2.5, 5, 10, 20)):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= count:
            break
    return [round(k * step, 10) for k in range(first, last + 1)]


def _tick_text(v: float, step: float, signed: bool = False) -> str:
    decimals = next(d for d in range(6) if abs(round(step, d) - step) < 1e-9)
    if abs(v) < 1e-12:
        return "0"
    sign = "+" if signed and v > 0 else (MINUS if v < 0 else "")
    return sign + f"{abs(v):.{decimals}f}"


def _signed(v: float) -> str:
    return ("+" if v > 0 else MINUS if v < 0 else "") + f"{abs(v):.2f}"


def _clamp(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


def _centred(x: float, width: float, lo: float = 0, hi: float = WIDTH) -> float:
    """The centre nearest ``x`` that keeps a text ``width`` wide inside [lo, hi]."""
    return _clamp(x, lo + width / 2, hi - width / 2)


# --- charts with one band per area ---------------------------------------------------------------

LEFT, RIGHT, TOP, BAND, BOTTOM = 32, 14, 24, 34, 44
"""Band charts: the plot runs from x = LEFT to WIDTH − RIGHT; each area has a band of BAND units (its name
on the first line, its marks on the second) below TOP, and the x axis sits in BOTTOM units under them."""


@dataclass(frozen=True)
class _Band:
    name: str
    value: str
    """Shown at the end of the name's line."""


def _band_chart(
    title: str,
    bands: Sequence[_Band],
    ticks: Sequence[tuple[float, str]],
    x_label: str,
    note: tuple[float, str] | None = None,
) -> Chart:
    """The frame of a band chart: names and values, x ticks with labels and gridlines, both axis labels, and a
    note above the plot at an x position (the weak line, the margin)."""
    x0, x1 = LEFT, WIDTH - RIGHT
    bottom = TOP + BAND * len(bands) + 4
    chart = Chart(width=WIDTH, height=bottom + BOTTOM, title=title)
    for x, text in ticks:
        chart.lines.append(Line(x, TOP, x, bottom, "grid"))
        w = text_width(text, TICK)
        chart.texts.append(Text(_centred(x, w), bottom + 15, text))
    chart.lines.append(Line(x0, bottom, x1, bottom, "axis"))
    chart.lines.append(Line(x0, TOP, x0, bottom, "axis"))
    chart.texts.append(Text((x0 + x1) / 2, bottom + 35, x_label, "axis-label"))
    chart.texts.append(Text(14, (TOP + bottom) / 2, "area", "axis-label", rotate=True))
    for i, band in enumerate(bands):
        top = TOP + i * BAND
        value_w = text_width(band.value, LABEL) if band.value else 0
        name, whole = fit(band.name, x1 - x0 - 4 - (value_w + GAP if value_w else 0), LABEL)
        chart.texts.append(Text(x0 + 4, top + 13, name, "label", "start", title=whole))
        if band.value:
            chart.texts.append(Text(x1, top + 13, band.value, "value", "end"))
    if note is not None:
        x, text = note
        chart.texts.append(Text(_centred(x, text_width(text, TICK)), 15, text, "note"))
    return chart


def _x_scale(lo: float, hi: float) -> Callable[[float], float]:
    """Values from lo to hi onto a band chart's plot, 10 units inside its axes; a value outside is drawn at
    the edge (its tooltip keeps the value)."""
    px0, px1 = LEFT + 10, WIDTH - RIGHT - 10
    return lambda v: round(px0 + (_clamp(v, lo, hi) - lo) / (hi - lo) * (px1 - px0), 1)


def areas_chart(areas: Sequence[AreaMean], weak_mean: float) -> Chart:
    """Each area's mean (dot) with its 95 % interval (whisker) and the baseline's mean (ring), on a 1–5 axis,
    with the weak threshold as a vertical line."""
    x = _x_scale(1, 5)
    bands = []
    for a in areas:
        value = "no score" if a.mean is None else f"{a.mean:.2f}"
        if a.baseline is not None:
            value += f" · baseline {a.baseline:.2f}"
        bands.append(_Band(a.name, value))
    chart = _band_chart(
        "mean score per area with its 95% interval" + (", and the baseline's" if _any_base(areas) else ""),
        bands,
        [(x(v), str(v)) for v in (1, 2, 3, 4, 5)],
        "mean score (1–5)",
        (x(weak_mean), f"weak < {weak_mean:g}"),
    )
    chart.lines.append(Line(x(weak_mean), TOP, x(weak_mean), chart.height - BOTTOM, "weak"))
    for i, a in enumerate(areas):
        y = TOP + i * BAND + 25
        if a.mean is not None and a.low is not None and a.high is not None:
            interval = f"{a.name}: {a.mean:.2f} [{a.low:.2f}, {a.high:.2f}]"
            chart.lines.append(Line(x(a.low), y, x(a.high), y, "whisker", interval))
        if a.baseline is not None:
            chart.dots.append(Dot(x(a.baseline), y, 5.5, "base", f"{a.name}: baseline {a.baseline:.2f}"))
        if a.mean is not None:
            chart.dots.append(Dot(x(a.mean), y, 4, "cand", f"{a.name}: {a.mean:.2f}"))
    chart.legend.extend(
        [Key("this run: mean and 95% interval", "cand"), Key(f"weak below {weak_mean:g}", "weak")]
    )
    if _any_base(areas):
        chart.legend.insert(1, Key("baseline: mean", "base"))
    return chart


def _any_base(areas: Sequence[AreaMean]) -> bool:
    return any(a.baseline is not None for a in areas)


def delta_chart(areas: Sequence[AreaDelta], margin: float) -> Chart | None:
    """Each area's paired Δ against the baseline (dot) with its 95 % interval, a line at 0 and one at −margin;
    None when no area has a Δ."""
    values = [v for a in areas for v in (a.delta, a.low, a.high) if v is not None]
    if not values:
        return None
    extent = max(max(abs(v) for v in values), margin) * 1.1
    ticks = nice_ticks(-extent, extent, 7)
    x = _x_scale(-extent, extent)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    bands = [_Band(a.name, "no pairs" if a.delta is None else f"Δ {_signed(a.delta)}") for a in areas]
    chart = _band_chart(
        "change of each area's mean against the baseline, paired by item, with its 95% interval",
        bands,
        [(x(t), _tick_text(t, step, signed=True)) for t in ticks],
        "Δ mean vs baseline (score points)",
        (x(-margin), f"margin {MINUS}{margin:.2f}"),
    )
    bottom = chart.height - BOTTOM
    chart.lines.append(Line(x(0), TOP, x(0), bottom, "zero"))
    chart.lines.append(Line(x(-margin), TOP, x(-margin), bottom, "margin"))
    for i, a in enumerate(areas):
        y = TOP + i * BAND + 25
        if a.delta is None:
            continue
        cls = {"regressed": "down", "improved": "up"}.get(a.status, "cand")
        if a.low is not None and a.high is not None:
            interval = f"{a.name}: Δ {_signed(a.delta)} [{_signed(a.low)}, {_signed(a.high)}], {a.status}"
            chart.lines.append(Line(x(a.low), y, x(a.high), y, "whisker", interval))
        chart.dots.append(Dot(x(a.delta), y, 4, cls, f"{a.name}: Δ {_signed(a.delta)}, {a.status}"))
    chart.legend.extend([
        Key("Δ and its interval (simultaneous across areas)", "cand"), Key("regressed", "down"), Key("improved", "up"),
        Key(f"margin: {MINUS}{margin:.2f}", "margin"),
    ])  # fmt: skip
    return chart


LEVELS = (1, 2, 3, 4, 5)


def distribution_chart(areas: Sequence[tuple[str, Sequence[int]]]) -> Chart:
    """Each area's scored answers by score level (1–5), as one bar stacked to 100 %; a count is written in its
    segment when it fits there."""
    x = _x_scale(0, 100)
    chart = _band_chart(
        "answers of each area by score level, as shares of its scored answers",
        [_Band(name, f"n = {sum(counts)}" if sum(counts) else "no score") for name, counts in areas],
        [(x(p), str(p)) for p in (0, 25, 50, 75, 100)],
        "share of scored answers (%)",
    )
    for i, (name, counts) in enumerate(areas):
        total, below = sum(counts), 0
        top = TOP + i * BAND + 19
        for level, n in zip(LEVELS, counts, strict=True):
            if not n:
                continue
            left, right = x(100 * below / total), x(100 * (below + n) / total)
            share = f"{100 * n / total:.0f}%"
            chart.rects.append(
                Rect(
                    left,
                    top,
                    round(right - left, 1),
                    12,
                    f"s{level}",
                    f"{name}: score {level}: {n} ({share})",
                )
            )
            if text_width(str(n), SMALL) + 4 <= right - left:
                chart.texts.append(Text(round((left + right) / 2, 1), top + 10, str(n), f"count s{level}"))
            below += n
    chart.legend.extend(Key(f"score {level}", f"s{level}") for level in LEVELS)
    return chart


# --- trend over runs --------------------------------------------------------------------------------

T_LEFT, T_RIGHT, T_TOP, T_HEIGHT, T_BOTTOM = 46, 38, 24, 250, 46
"""Trend charts: the plot runs from x = T_LEFT to WIDTH − T_RIGHT and y = T_TOP to T_HEIGHT − T_BOTTOM."""


def _moment(stamp: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _run_positions(stamps: Sequence[str]) -> tuple[list[float], list[str], str]:
    """Each run's place on the x axis (0–1), its date label, and the axis label: by time when every stamp
    reads as a date and they span some time, else evenly spaced in order."""
    moments = [_moment(s) for s in stamps]
    known = [m for m in moments if m is not None]
    if len(known) == len(stamps) and (span := (max(known) - min(known)).total_seconds()) > 0:
        start = min(known)
        fractions = [(m - start).total_seconds() / span for m in known]
        fmt = "%Y-%m-%d" if span >= 2 * 86400 else "%m-%d %H:%M"
        return (
            fractions,
            [m.strftime(fmt) for m in known],
            "run started (date)" if span >= 2 * 86400 else ("run started (month-day hour:minute)"),
        )
    n = max(len(stamps) - 1, 1)
    return [i / n for i in range(len(stamps))], [s[:10] for s in stamps], "run started (in order)"


def _spaced(
    candidates: Sequence[tuple[float, str]], size: float, once: bool = False
) -> list[tuple[float, str]]:
    """The labels (centre, text) that fit side by side without touching, left to right; the last one is kept
    in place of the one before it when only that makes room. ``once``: a text already labelled is skipped."""
    kept: list[tuple[float, float, float, str]] = []  # left, right, centre, text
    seen: set[str] = set()
    for i, (x, text) in enumerate(candidates):
        if once and text in seen:
            continue
        seen.add(text)
        w = text_width(text, size)
        c = _centred(x, w)
        box = (c - w / 2, c + w / 2, c, text)
        if not kept or box[0] >= kept[-1][1] + GAP:
            kept.append(box)
        elif i == len(candidates) - 1 and len(kept) > 1 and box[0] >= kept[-2][1] + GAP:
            kept[-1] = box  # the latest run's label matters more than the one before it
    return [(c, text) for _, _, c, text in kept]


def trend_chart(runs: Sequence[TrendRun], title: str) -> Chart | None:
    """Each area's mean over the runs (a line per area; x: when the run started; y: 1–5), with a vertical
    line where the model, judge or rubric changed. None with fewer than two runs."""
    if len(runs) < 2:
        return None
    x0, x1 = T_LEFT, WIDTH - T_RIGHT
    top, bottom = T_TOP, T_HEIGHT - T_BOTTOM
    fractions, labels, x_label = _run_positions([r.started_at for r in runs])
    xs = [round(x0 + f * (x1 - x0), 1) for f in fractions]

    def y(v: float) -> float:  # 1–5, 6 units inside the plot so tick labels stay clear of the dates
        return round(bottom - 6 - (_clamp(v, 1, 5) - 1) / 4 * (bottom - top - 12), 1)

    chart = Chart(width=WIDTH, height=T_HEIGHT, title=title)
    for v in (1, 2, 3, 4, 5):
        chart.lines.append(Line(x0, y(v), x1, y(v), "grid"))
        chart.texts.append(Text(x0 - 6, y(v) + 4, str(v), "tick", "end"))
    chart.lines.append(Line(x0, bottom, x1, bottom, "axis"))
    chart.lines.append(Line(x0, top, x0, bottom, "axis"))
    for x in xs:
        chart.lines.append(Line(x, bottom, x, bottom + 4, "axis"))
    for c, text in _spaced(list(zip(xs, labels, strict=True)), TICK, once=True):
        chart.texts.append(Text(round(c, 1), bottom + 16, text))
    chart.texts.append(Text((x0 + x1) / 2, bottom + 37, x_label, "axis-label"))
    chart.texts.append(Text(14, (top + bottom) / 2, "mean score (1–5)", "axis-label", rotate=True))
    marks = [(x, "+".join(r.changes)) for x, r in zip(xs, runs, strict=True) if r.changes]
    for x, what in marks:
        chart.lines.append(Line(x, top, x, bottom, "change", f"{what} changed"))
    for c, text in _spaced(marks, TICK):
        chart.texts.append(Text(round(c, 1), 15, text, "note"))
    names = sorted({a for r in runs for a in r.means})
    for i, name in enumerate(names):
        cls = f"c{i % SERIES} d{min(i // SERIES, 2)}"
        dots = tuple(
            Dot(x, y(r.means[name]), 2.5, cls, f"{r.means[name]:.2f}")
            for x, r in zip(xs, runs, strict=True)
            if name in r.means
        )
        chart.series.append(Series(" ".join(f"{d.x},{d.y}" for d in dots), cls, name, dots))
        chart.legend.append(Key(name, cls))
    if marks:
        chart.legend.append(Key("model, judge or rubric changed", "change"))
    return chart
