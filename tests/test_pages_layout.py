"""The scorecard and the index laid out in real headless Chromium at a desktop's width (1400 px) and a
phone's (420 px): no horizontal page scroll, no text on text in a chart or a table header, every chart with
labelled axes, long answers folded so the page stays a sane length, the index's links in view, and not one
network request.

Needs Debian's chromium (``apt-get install -y chromium``) and the ``playwright`` package (the ``test``
extra); without either the tests are skipped, saying which is missing.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from builders import make_run

from evals.render.pages import write_index, write_scorecard
from evals.scorecard import build_scorecard
from evals.store import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
WIDTHS = (1400, 420)
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"

LONG_AREA = "customer_support_refunds_and_chargebacks_for_enterprise_accounts_in_the_eu"
HOSTILE_AREA = "<img src=x onerror=\"window.__pwned='area'\">"
AREAS = ["billing", "refunds", LONG_AREA, "geo", "math", HOSTILE_AREA]
ANSWER = "The answer depends on several factors, each of which matters here. " * 30
TOKEN = "https://docs.example/" + "a" * 300  # one unbroken word longer than a phone is wide
ITEMS, SAMPLES, RUNS = 8, 2, 7


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Debian's chromium is missing: apt-get install -y chromium (scripts/setup.sh --test does)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install playwright"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """A realistic history: six areas (one name very long, one hostile), 8 items × 2 samples each, seven
    nightly runs two days apart with a model change, long answers and questions; the last run's scorecard
    against the one before, and the index."""
    reports = tmp_path_factory.mktemp("layout") / "reports"
    rng = random.Random(7)
    with Store(reports) as store:
        for k in range(RUNS):
            scores = {}
            for a, area in enumerate(AREAS):
                for i in range(ITEMS):
                    level = (
                        1.5
                        + (a % 4) * 0.8
                        + (0.3 * k if area == "refunds" else 0)
                        - (k == 6 and area == "math")
                    )
                    scores[f"{area}-{i:02d}"] = [
                        min(5, max(1, round(level + rng.gauss(0, 0.8)))) for _ in range(SAMPLES)
                    ]
            ids = list(scores)
            answers = {i: ANSWER + i for i in ids[::3]} | {ids[1]: TOKEN, ids[4]: "line\n" * 60}
            questions = {i: "Why? " + "Explain in detail, step by step, with sources. " * 8 for i in ids[::5]}
            make_run(store, f"r{k + 1:02d}", scores, started_at=f"2026-11-{2 * k + 1:02d}T02:00:00+00:00",
                     model_id="qwen-2" if k >= 4 else "qwen-1", answers=answers, questions=questions)  # fmt: skip
        for k in range(1, RUNS):
            card = build_scorecard(store, f"r{k:02d}")
            write_scorecard(card, reports / "runs" / card.run.run_id)
        card = build_scorecard(store, f"r{RUNS:02d}", f"r{RUNS - 1:02d}")
        scorecard = write_scorecard(card, reports / "runs" / card.run.run_id)["html"]
        index = write_index(store)
    return {"scorecard": scorecard, "index": index}


def open_page(browser, path: Path, width: int):
    """The page at ``width``, every network request blocked and recorded."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    attempts: list[str] = []

    def block(route):
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            attempts.append(route.request.url)
            route.abort()

    context.route("**/*", block)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return context, page, {"attempts": attempts, "requests": requests, "errors": errors}


# The boxes of every text of each chart (its glyphs, as drawn), and of each table header's text.
CHART_TEXTS = """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
  id: svg.closest('figure').id,
  texts: Array.from(svg.querySelectorAll('text')).map(t => {
    const r = t.getBoundingClientRect(); return {text: t.textContent, box: [r.left, r.top, r.right, r.bottom]};
  }),
}))"""
HEADER_TEXTS = """() => Array.from(document.querySelectorAll('table')).map(table => ({
  id: table.id,
  texts: Array.from(table.querySelectorAll('thead th')).map(th => {
    const range = document.createRange(); range.selectNodeContents(th);
    const r = range.getBoundingClientRect(); return {text: th.textContent, box: [r.left, r.top, r.right, r.bottom]};
  }).filter(t => t.box[2] > t.box[0] && t.box[3] > t.box[1]),
}))"""


def overlaps(texts: list[dict]) -> list[tuple[str, str]]:
    found = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            (al, at, ar, ab), (bl, bt, br, bb) = a["box"], b["box"]
            if min(ar, br) - max(al, bl) > 0.5 and min(ab, bb) - max(at, bt) > 0.5:
                found.append((a["text"], b["text"]))
    return found


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["scorecard", "index"])
def test_the_page_fits_its_width_and_asks_the_network_for_nothing(browser, pages, name, width):
    context, page, seen = open_page(browser, pages[name], width)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth")
    assert seen["attempts"] == [] and seen["requests"] == [pages[name].as_uri()]
    assert seen["errors"] == []
    assert (
        page.evaluate("window.__pwned") is None
    )  # the hostile area name is text everywhere, charts included
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["scorecard", "index"])
def test_no_text_lies_on_another_in_a_chart_or_a_table_header(browser, pages, name, width):
    context, page, _ = open_page(browser, pages[name], width)
    charts = page.evaluate(CHART_TEXTS)
    assert len(charts) == (4 if name == "scorecard" else 1)
    for chart in charts:
        assert overlaps(chart["texts"]) == [], chart["id"]
    for table in page.evaluate(HEADER_TEXTS):
        assert overlaps(table["texts"]) == [], table["id"]
    context.close()


@pytest.mark.parametrize("name", ["scorecard", "index"])
def test_every_chart_has_labelled_axes_with_ticks(browser, pages, name):
    context, page, _ = open_page(browser, pages[name], 1400)
    axes = page.evaluate("""() => Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
      id: svg.closest('figure').id,
      labels: Array.from(svg.querySelectorAll('text.axis-label')).map(t => [t.textContent, !!t.getAttribute('transform')]),
      ticks: Array.from(svg.querySelectorAll('text.tick')).map(t => t.textContent),
    }))""")
    for chart in axes:
        x_labels = [text for text, turned in chart["labels"] if not turned]
        y_labels = [text for text, turned in chart["labels"] if turned]
        assert len(x_labels) == 1 and len(y_labels) == 1 and all(chart["labels"]), chart
        assert len(chart["ticks"]) >= 3, chart
    by_id = {c["id"]: c for c in axes}
    if name == "scorecard":
        assert by_id["areas-chart"]["labels"] == [["mean score (1–5)", False], ["area", True]]
        assert by_id["delta-chart"]["labels"][0] == ["Δ mean vs baseline (score points)", False]
        assert by_id["distribution-chart"]["labels"][0] == ["share of scored answers (%)", False]
        history = by_id["history-chart"]
    else:
        history = by_id["trend-1"]
    assert history["labels"] == [["run started (date)", False], ["mean score (1–5)", True]]
    assert "2026-11-01" in history["ticks"] and "2026-11-13" in history["ticks"]
    context.close()


@pytest.mark.parametrize(("width", "per_row"), [(1400, 150), (420, 250)])
def test_long_answers_fold_so_the_item_table_stays_a_sane_length(browser, pages, width, per_row):
    context, page, _ = open_page(browser, pages["scorecard"], width)
    rows = page.evaluate("Array.from(document.querySelectorAll('#items tbody tr')).map(r => r.offsetHeight)")
    assert len(rows) == len(AREAS) * ITEMS * SAMPLES
    assert sum(rows) <= per_row * len(rows) and max(rows) <= 2.5 * per_row  # no 2,000-character row
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= sum(rows) + 16_000  # everything else: overall, charts, tables, regressed pairs
    context.close()


def test_a_folded_answer_opens_whole_and_the_search_still_finds_its_end(browser, pages):
    context, page, _ = open_page(browser, pages["scorecard"], 420)
    cell = page.locator("#items tbody tr", has_text=ANSWER[:40]).first.locator("td:nth-child(8)")
    answer = cell.locator("details.long")
    folded = cell.evaluate("td => td.offsetHeight")
    assert not answer.evaluate("d => d.open")
    answer.locator("summary").click()
    assert answer.evaluate("d => d.open") and answer.evaluate(
        "d => d.lastChild.textContent.endsWith('billing-00')"
    )
    assert cell.evaluate("td => td.offsetHeight") > folded + 200  # the rest of its 2,000 characters shows
    page.fill("#f-text", "each of which matters here. billing-00")
    assert page.locator("#items tbody tr:visible").count() == SAMPLES
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_index_links_every_run_in_view(browser, pages, width):
    context, page, _ = open_page(browser, pages["index"], width)
    links = page.locator("#runs a")
    assert links.count() == RUNS
    for i in range(RUNS):
        box = links.nth(i).bounding_box()
        assert links.nth(i).is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert links.first.get_attribute("href") == f"runs/r{RUNS:02d}/scorecard.html"
    context.close()
