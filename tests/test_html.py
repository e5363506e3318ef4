"""The HTML scorecard in real headless Chromium: no network, no console errors, hostile text inert, filters work."""

from pathlib import Path

import pytest
from builders import make_run

from evals.render.pages import write_scorecard
from evals.scorecard import build_scorecard
from evals.store import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
HOSTILE = {
    "geo-01": '<script>window.__pwned = "script"</script>Paris',
    "geo-02": "<img src=x onerror=\"window.__pwned = 'img'\">",
    "geo-03": '"><svg onload="window.__pwned=\'svg\'"></svg><a href="https://evil.example/x">link</a>',
    "math-01": "</td></tr></table><iframe src='https://evil.example'></iframe>",
}


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium (.ci/run installs it)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_file(tmp_path):
    with Store(tmp_path / "reports") as store:
        base = {f"{a}-{i:02d}": [5] for a in ("geo", "math", "chem") for i in range(1, 13)}
        make_run(store, "r01", base, tags=("baseline",))
        cand = {k: ([2] if k.startswith("chem") else v) for k, v in base.items()}
        cand["geo-02"] = [None]
        hostile = {"geo-03": "<b onmouseover=\"window.__pwned='hover'\">hover</b>?"}
        make_run(store, "r02", cand, answers=HOSTILE, questions=hostile)
        make_run(store, "r03", cand, answers=HOSTILE, questions=hostile, judge_model="offline-reference")
        card = build_scorecard(store, "r03", "r01")
        return write_scorecard(card, tmp_path / "out")["html"]


def open_page(browser, path, width=1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    events = {"console": [], "requests": [], "errors": []}
    page.on("console", lambda m: events["console"].append(m) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: events["errors"].append(e))
    page.on("request", lambda r: events["requests"].append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, events


def test_page_loads_with_no_console_errors_and_no_network(browser, page_file):
    page, events = open_page(browser, page_file)
    assert events["errors"] == [] and [m.text for m in events["console"]] == []
    assert events["requests"] == [page_file.as_uri()]  # the file itself, nothing else
    assert page.locator("#offline-banner").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "scorecard-1280.png"), full_page=True)
    page.close()


def test_hostile_answers_are_shown_as_text_and_never_run(browser, page_file):
    page, events = open_page(browser, page_file)
    page.locator("#items td", has_text="hover").first.hover()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#items script, #items img, #items iframe, #items svg, #items a").count() == 0
    assert page.locator("#items", has_text="<script>window.__pwned").count() == 1  # visible as text
    assert events["requests"] == [page_file.as_uri()]
    page.close()


def test_filters_narrow_the_item_table(browser, page_file):
    page, _ = open_page(browser, page_file)
    rows = page.locator("#items tbody tr")
    assert rows.count() == 36
    page.select_option("#f-area", "chem")
    assert page.locator("#items tbody tr:visible").count() == 12
    page.select_option("#f-area", "")
    page.select_option("#f-status", "regressed")
    visible = page.locator("#items tbody tr:visible")
    assert visible.count() == 12 and all(
        t == "chem" for t in visible.locator("td:nth-child(2)").all_inner_texts()
    )
    page.select_option("#f-status", "error")
    assert page.locator("#items tbody tr:visible").count() == 1
    page.select_option("#f-status", "")
    page.fill("#f-text", "geo-1")
    assert page.locator("#items tbody tr:visible").count() == 3  # geo-10, geo-11, geo-12
    page.close()


def test_tables_are_readable_without_javascript_and_at_phone_width(browser, page_file):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(page_file.as_uri())
    assert page.locator("#items tbody tr:visible").count() == 36
    assert page.locator("#areas tbody tr").count() == 3
    assert not page.locator("#filters").is_visible()  # filters need JS, so they stay hidden without it
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # tables scroll inside their box; the page does not
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "scorecard-phone.png"), full_page=True)
    context.close()
