"""Chart geometry (evals.render.charts): marks where the numbers put them, labelled axes, no text on text,
and the figures the charts read (score distribution, the baseline's area means)."""

from dataclasses import MISSING, fields
from itertools import combinations

import pytest
from builders import make_run

from evals.render.charts import (
    LABEL,
    SMALL,
    TICK,
    WIDTH,
    AreaDelta,
    AreaMean,
    Chart,
    Text,
    TrendRun,
    areas_chart,
    delta_chart,
    distribution_chart,
    fit,
    nice_ticks,
    text_width,
    trend_chart,
)
from evals.render.pages import fold, render_html
from evals.results import ResultRow
from evals.scorecard import build_scorecard
from evals.scorecard.figures import score_distribution
from evals.store import Store

LONG = "customer_support_refunds_and_chargebacks_for_enterprise_accounts_in_the_eu_and_the_uk"
SIZES = {"tick": TICK, "note": TICK, "count": SMALL}


def box(t: Text) -> tuple[float, float, float, float]:
    """The box a text takes (left, top, right, bottom) by the same width estimate the layout uses."""
    size = SIZES.get(t.cls.split()[0], LABEL)
    w = text_width(t.text, size)
    left = {"start": t.x, "middle": t.x - w / 2, "end": t.x - w}[t.anchor]
    if t.rotate:  # a quarter turn about (x, y): the width runs up the page, the glyphs' tops face left
        return t.x - size, t.y - w / 2, t.x + 0.25 * size, t.y + w / 2
    return left, t.y - size, left + w, t.y + 0.25 * size


def overlapping(chart: Chart) -> list[tuple[str, str]]:
    def apart(a, b):
        return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]

    return [(a.text, b.text) for a, b in combinations(chart.texts, 2) if not apart(box(a), box(b))]


def inside(chart: Chart) -> bool:
    return all(-1e-6 <= box(t)[0] and box(t)[2] <= chart.width + 1e-6 and 0 <= box(t)[1] for t in chart.texts)


def axis_labels(chart: Chart) -> list[str]:
    return [t.text for t in chart.texts if t.cls == "axis-label"]


AREAS = [
    AreaMean("billing", 2.2, 1.6, 2.8, 2.0),
    AreaMean(LONG, 4.9, 4.5, 5.3, None),  # an interval past 5 is drawn to the axis
    AreaMean("chem", None, None, None, 3.1),  # every answer failed
    AreaMean("日本語の領域名はとても長いことがあります日本語の領域名", 1.0, 1.0, 1.0, 1.0),
]


def test_areas_chart_places_means_intervals_baselines_and_the_weak_line_on_a_labelled_1_to_5_axis():
    chart = areas_chart(AREAS, weak_mean=3.5)
    assert axis_labels(chart) == ["mean score (1–5)", "area"]
    assert [t.text for t in chart.texts if t.cls == "tick"] == ["1", "2", "3", "4", "5"]
    x1, x5 = (next(t.x for t in chart.texts if t.text == v) for v in ("1", "5"))
    weak = next(line for line in chart.lines if line.cls == "weak")
    assert weak.x1 == pytest.approx(x1 + (x5 - x1) * 2.5 / 4, abs=0.1)
    cand = {d.title.split(":")[0]: d.x for d in chart.dots if d.cls == "cand"}
    assert cand["billing"] == pytest.approx(x1 + (x5 - x1) * 1.2 / 4, abs=0.1)
    assert "chem" not in cand  # no score, no dot; its baseline ring is still there
    assert [d.title for d in chart.dots if d.cls == "base"] == [
        "billing: baseline 2.00", "chem: baseline 3.10", f"{AREAS[3].name}: baseline 1.00"
    ]  # fmt: skip
    whisker = next(line for line in chart.lines if line.cls == "whisker" and line.title.startswith(LONG))
    assert whisker.x2 == pytest.approx(x5)  # clamped to the axis, the title keeps the true bound
    assert "5.30" in whisker.title
    assert overlapping(chart) == [] and inside(chart)


def test_a_long_or_wide_area_name_is_cut_to_its_room_and_given_whole_as_a_tooltip():
    chart = areas_chart(AREAS, weak_mean=3.5)
    names = {t.title: t.text for t in chart.texts if t.cls == "label" and t.title}
    assert set(names) == {LONG, AREAS[3].name}
    assert all(text.endswith("…") and whole.startswith(text[:-1]) for whole, text in names.items())
    short, whole = fit("billing", 200, LABEL)
    assert (short, whole) == ("billing", None)
    assert fit("a  b\nc", 200, LABEL) == ("a b c", None)  # whitespace of a name collapses as SVG does


def test_delta_chart_has_zero_and_the_minus_margin_line_and_colours_regressions():
    rows = [
        AreaDelta("billing", -1.2, -1.6, -0.8, "regressed"),
        AreaDelta("geo", 0.1, -0.2, 0.4, "unchanged"),
        AreaDelta("new-area", None, None, None, "new"),
    ]
    chart = delta_chart(rows, margin=0.3)
    assert axis_labels(chart) == ["Δ mean vs baseline (score points)", "area"]
    zero = next(line for line in chart.lines if line.cls == "zero")
    margin = next(line for line in chart.lines if line.cls == "margin")
    ticks = {t.text: t.x for t in chart.texts if t.cls == "tick"}
    assert zero.x1 == pytest.approx(ticks["0"], abs=0.1)
    unit = (ticks["+0.5"] - ticks["0"]) * 2
    assert list(ticks) == ["−1.5", "−1.0", "−0.5", "0", "+0.5", "+1.0", "+1.5"]
    assert margin.x1 == pytest.approx(zero.x1 - 0.3 * unit, abs=0.2)
    assert [d.cls for d in chart.dots] == ["down", "cand"]
    assert next(t.text for t in chart.texts if t.cls == "note") == "margin −0.30"
    assert [t.text for t in chart.texts if t.cls == "value"] == ["Δ −1.20", "Δ +0.10", "no pairs"]
    assert overlapping(chart) == [] and inside(chart)
    assert delta_chart([AreaDelta("geo", None, None, None, "new")], 0.3) is None


def test_distribution_chart_stacks_each_areas_answers_to_100_percent_with_counts_that_fit():
    chart = distribution_chart(
        [("billing", [2, 0, 1, 0, 7]), ("geo", [0, 0, 0, 0, 40]), (LONG, [1, 1, 1, 1, 96])]
    )
    assert axis_labels(chart) == ["share of scored answers (%)", "area"]
    assert [t.text for t in chart.texts if t.cls == "tick"] == ["0", "25", "50", "75", "100"]
    x0, x100 = (next(t.x for t in chart.texts if t.text == v) for v in ("0", "100"))
    billing = [r for r in chart.rects if r.title.startswith("billing")]
    assert [r.cls for r in billing] == ["s1", "s3", "s5"]  # no segment for a level nobody got
    assert [r.w for r in billing] == pytest.approx(
        [0.2 * (x100 - x0), 0.1 * (x100 - x0), 0.7 * (x100 - x0)], abs=0.2
    )
    assert billing[0].x == pytest.approx(x0) and billing[-1].x + billing[-1].w == pytest.approx(x100, abs=0.2)
    counts = [t.text for t in chart.texts if t.cls.startswith("count")]
    assert counts == ["2", "1", "7", "40", "96"]  # the 1s of the last area have no room: left to the tooltip
    assert "score 1: 1 (1%)" in next(r.title for r in chart.rects if r.title.startswith(LONG))
    assert [t.text for t in chart.texts if t.cls == "value"] == ["n = 10", "n = 40", "n = 100"]
    assert overlapping(chart) == [] and inside(chart)


def nightly(days: int, start: int = 1) -> list[TrendRun]:
    return [
        TrendRun(f"2026-{1 + (start + d - 1) // 28:02d}-{1 + (start + d - 1) % 28:02d}T02:00:00+00:00",
                 {"geo": 3 + (d % 3) / 2, LONG: 2.0}, ["model"] if d == 3 else [])
        for d in range(days)
    ]  # fmt: skip


def test_trend_chart_places_runs_by_date_with_dated_ticks_and_marks_changes():
    runs = [
        TrendRun("2026-11-01T00:00:00+00:00", {"geo": 3.0, "math": 1.0}),
        TrendRun("2026-11-02T00:00:00+00:00", {"geo": 4.0}, ["judge"]),
        TrendRun("2026-11-05T00:00:00+00:00", {"geo": 5.0, "math": 2.0}, ["model", "rubric"]),
    ]
    chart = trend_chart(runs, "t")
    assert axis_labels(chart) == ["run started (date)", "mean score (1–5)"]
    geo = next(s for s in chart.series if s.title == "geo")
    xs = [d.x for d in geo.dots]
    assert (xs[2] - xs[0]) == pytest.approx(4 * (xs[1] - xs[0]), abs=0.2)  # four days against one
    assert [d.title for d in geo.dots] == ["3.00", "4.00", "5.00"]
    y = {t.text: t.y - 4 for t in chart.texts if t.cls == "tick" and t.text in "12345"}
    assert [d.y for d in geo.dots] == pytest.approx([y["3"], y["4"], y["5"]], abs=0.1)
    math = next(s for s in chart.series if s.title == "math")
    assert len(math.dots) == 2  # a run without the area leaves no point
    assert [t.text for t in chart.texts if t.cls == "tick" and "-" in t.text] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-05",
    ]
    assert [line.title for line in chart.lines if line.cls == "change"] == [
        "judge changed",
        "model+rubric changed",
    ]
    assert [k.text for k in chart.legend] == ["geo", "math", "model, judge or rubric changed"]
    assert overlapping(chart) == [] and inside(chart)
    assert trend_chart(runs[:1], "t") is None


def test_a_long_history_keeps_its_date_labels_apart_and_the_latest_one_shown():
    runs = nightly(60)
    chart = trend_chart(runs, "t")
    dates = [t.text for t in chart.texts if t.cls == "tick" and "-" in t.text]
    assert 3 <= len(dates) < 60 and dates[0] == "2026-01-01" and dates[-1] == runs[-1].started_at[:10]
    assert overlapping(chart) == [] and inside(chart)
    same_day = [TrendRun(f"2026-11-01T{h:02d}:00:00+00:00", {"geo": 3.0}) for h in range(0, 24, 3)]
    labels = [t.text for t in trend_chart(same_day, "t").texts if t.cls in ("tick", "axis-label")]
    assert "11-01 00:00" in labels and "run started (month-day hour:minute)" in labels
    undated = [TrendRun("yesterday", {"geo": 3.0}), TrendRun("today", {"geo": 4.0})]
    assert "run started (in order)" in axis_labels(trend_chart(undated, "t"))


def test_many_areas_get_distinct_line_styles():
    runs = [
        TrendRun(f"2026-11-0{d}T00:00:00+00:00", {f"area{i:02d}": 3.0 for i in range(12)}) for d in (1, 2)
    ]
    styles = [s.cls for s in trend_chart(runs, "t").series]
    assert len(set(styles)) == 12


@pytest.mark.parametrize("n", [1, 4, 30])
def test_band_charts_grow_with_the_areas_and_stay_in_their_width(n):
    areas = [AreaMean(f"{LONG}{i}", 3.0, 2.5, 3.5, 3.2) for i in range(n)]
    chart = areas_chart(areas, 3.5)
    assert chart.width == WIDTH and inside(chart) and overlapping(chart) == []
    assert chart.height == pytest.approx(24 + 34 * n + 4 + 44)


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(1, 5) == [1, 2, 3, 4, 5]
    assert nice_ticks(-1.65, 1.65, 7) == [-1.5, -1.0, -0.5, 0, 0.5, 1.0, 1.5]
    assert nice_ticks(-0.33, 0.33, 7) == [-0.3, -0.2, -0.1, 0, 0.1, 0.2, 0.3]


def row(score: float | None) -> ResultRow:
    needed = {f.name: None for f in fields(ResultRow) if f.default is MISSING}
    given = {"run_id": "r", "id": "geo-1", "sample": 0, "area": "geo", "question": "q", "truncated": False}
    return ResultRow(**{**needed, **given, "item_hash": "h", "score": score})


def test_score_distribution_counts_each_scored_answer_at_its_nearest_level():
    scores = [1, 2, 2, 5, 3.5, 2.5, 4.49, 1.2, None]  # a panel's mean counts at its nearest level, halves up
    assert score_distribution([row(s) for s in scores]) == [2, 2, 1, 2, 1]


def test_fold_shows_the_start_of_a_long_text_and_keeps_all_of_it():
    assert fold("short answer") == ("short answer", "")
    text = "word " * 100
    head, tail = fold(text)
    assert head + tail == text and len(head) <= 160 and tail.startswith(" ")
    lines = "\n".join(f"line {i}" for i in range(10))
    head, tail = fold(lines)
    assert head.count("\n") == 3 and head + tail == lines


def test_the_scorecard_carries_each_areas_distribution_and_the_baselines_own_mean(tmp_path):
    store = Store(tmp_path)
    base = {**{f"geo-{i}": [5] for i in range(4)}, "geo-9": [1], **{f"math-{i}": [2] for i in range(4)}}
    make_run(store, "r01", base)
    make_run(store, "r02", {**{f"geo-{i}": [3, 4] for i in range(4)}, "math-0": [None, 2]})
    card = build_scorecard(store, "r02", "r01")
    geo, math = card.area("geo"), card.area("math")
    assert geo.distribution == [0, 0, 4, 4, 0] and math.distribution == [0, 1, 0, 0, 0]
    assert card.overall.distribution == [0, 1, 4, 4, 0]
    # geo-9 is the baseline's only (not paired): its mean still counts in the baseline's own mean
    assert geo.baseline_mean == pytest.approx(21 / 5) and math.baseline_mean == pytest.approx(2.0)
    assert build_scorecard(store, "r01").area("geo").baseline_mean is None


def test_area_names_in_charts_are_escaped(tmp_path):
    store = Store(tmp_path)
    hostile = "<svg onload=alert(1)>"
    make_run(store, "r01", {f"{hostile}-{i}": [4] for i in range(3)} | {"geo-1": [2]})
    make_run(store, "r02", {f"{hostile}-{i}": [2] for i in range(3)} | {"geo-1": [3]})
    page = render_html(build_scorecard(store, "r02", "r01"))
    assert "<svg onload" not in page and "&lt;svg onload=alert(1)&gt;" in page
    assert page.count('<svg class="chart"') == 4  # areas, Δ, distribution, history
