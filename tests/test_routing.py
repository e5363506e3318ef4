"""`evals route`: local against frontier per area, on the fake servers; the cost arithmetic by hand."""

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Hosting
from evals.errors import ConfigError
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.records import Answer, Item, Judgment, RunManifest
from evals.routing.economics import Measured, area_cost, busy_seconds, read_traffic
from evals.routing.records import RoutingTable
from evals.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
N = 12
# area -> how many of its N items the local model gets right (the frontier gets all right)
LOCAL_RIGHT = {"easy": N, "hard": 0, "close": N - 1, "secret": N}
SUITE = [
    {"id": f"{area}-{i}", "area": area, "question": f"{area} question {i}?", "reference": f"R{area}{i}",
     **({"sensitivity": "restricted"} if area == "secret" else {})}
    for area in LOCAL_RIGHT for i in range(N)
]  # fmt: skip


def local_answer(question: str) -> str:
    area, rest = question.split(" question ")
    i = int(rest.rstrip("?"))
    return f"It is R{area}{i}." if i < LOCAL_RIGHT[area] else "No idea."


def frontier_answer(question: str) -> str:
    area, rest = question.split(" question ")
    # A frontier answer of a few hundred tokens: at these prices self-hosting "easy" (100 k a month) pays.
    return f"The answer is R{area}{int(rest.rstrip('?'))}. " + "Here is the reasoning behind it. " * 80


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with (
        FakeOpenAI(text_reply(local_answer), model_id="qwen-local") as local,
        FakeAnthropic(text_reply(frontier_answer), model_id="claude-frontier") as frontier,
        FakeAnthropic(grade_by_reference, model_id="claude-judge") as judge,
    ):
        config = {
            "models": {
                "local": {"base_url": local.url, "model": "qwen"},
                "claude": {"provider": "anthropic", "base_url": frontier.url, "model": "claude-x",
                           "price_in_per_mtok": 3.0, "price_out_per_mtok": 15.0, "external": True},
            },
            "judges": {"judge": {"provider": "anthropic", "base_url": judge.url, "model": "claude-judge"}},
            "usage": {"areas": {"easy": {"requests_per_month": 100000}, "hard": {"requests_per_month": 5000}}},
            "hosting": {"gpu_hour": 2.0, "gpus": 1, "utilisation": 0.5, "fixed_monthly": 100.0},
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in SUITE))
        monkeypatch.chdir(tmp_path)
        yield tmp_path, frontier


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def runs(project):
    folder, frontier = project
    assert (
        invoke(
            "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "judge", "--run-id", "loc"
        ).exit_code
        == 0
    )
    areas = [a for area in LOCAL_RIGHT if area != "secret" for a in ("--area", area)]
    result = invoke(
        "run", "--suite", "suite.jsonl", "--model", "claude", "--judge", "judge", "--run-id", "fro", *areas
    )
    assert result.exit_code == 0, result.output
    return folder, frontier


def test_each_area_is_routed_by_quality_and_restricted_never_goes_out(project):
    _, frontier = runs(project)
    assert not any("secret" in json.dumps(body) for body in frontier.requests)  # never sent to the frontier
    result = invoke("route", "--local", "loc", "--frontier", "fro", "--format", "json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    rows = {r["area"]: r for r in table["areas"]}
    assert {a: r["recommendation"] for a, r in rows.items()} == {
        "easy": "local", "hard": "frontier", "close": "not yet", "secret": "local",
    }  # fmt: skip
    assert rows["easy"]["delta"] == 0 and rows["hard"]["delta"] == -4
    assert rows["close"]["items_needed"] > N and "items would tell" in rows["close"]["reason"]
    assert rows["secret"]["sensitivity"] == "restricted" and rows["secret"]["n_pairs"] == 0
    assert "restricted" in rows["secret"]["reason"]
    assert rows["easy"]["reason"].startswith("non-inferior (Δ +0.00, bound +0.00 > -0.30)")
    # The API cost of an area is its volume times the frontier run's own tokens at its prices.
    cost = rows["easy"]["cost"]
    assert cost["api_monthly"] == pytest.approx(100000 * cost["api_per_request"])
    assert cost["self_monthly"] == pytest.approx(100 + 100000 * cost["self_per_request"])
    assert rows["close"]["cost"] is None and "no volume" in rows["close"]["reason"]


def test_markdown_and_html_and_the_change_since_last_time(project):
    runs(project)
    first = invoke("route", "--local", "loc", "--frontier", "fro", "--format", "md")
    assert first.exit_code == 0, first.output
    assert "| easy | internal | 12 |" in first.output and "**local**" in first.output
    assert "was" not in first.output
    LOCAL_RIGHT["close"] = N  # tonight's local model gets the last one right too
    try:
        assert (
            invoke(
                "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "judge", "--run-id", "loc3"
            ).exit_code
            == 0
        )
    finally:
        LOCAL_RIGHT["close"] = N - 1
    second = invoke("route", "--local", "loc3", "--frontier", "fro", "--format", "md")
    assert "**local** (was not yet on " in second.output
    assert second.output.count("(was ") == 1  # only the area whose recommendation changed
    html = invoke("route", "--local", "loc", "--frontier", "fro", "--format", "html", "--no-record")
    assert "<svg" in html.output and "crossover" in html.output
    # The local run's scorecard carries the latest table it was the local side of.
    assert invoke("report", "loc").exit_code == 0
    card = (project[0] / "reports" / "runs" / "loc" / "scorecard.md").read_text()
    assert "**What goes where** (against frontier run fro): close **not yet**; easy **local**" in card


def test_runs_judged_differently_are_refused(project, monkeypatch):
    folder, _ = project
    runs(project)
    config = yaml.safe_load((folder / "evals.yaml").read_text())
    config["judges"]["other"] = {**config["judges"]["judge"], "model": "claude-other"}
    (folder / "evals.yaml").write_text(yaml.safe_dump(config))
    assert (
        invoke(
            "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "other", "--run-id", "loc2"
        ).exit_code
        == 0
    )
    result = CliRunner().invoke(main, ["route", "--local", "loc2", "--frontier", "fro"])
    assert result.exit_code == 2
    assert "judged differently" in result.output and "evals judge rerun loc2" in result.output


def test_busy_time_is_the_union_of_in_flight_intervals():
    assert busy_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)
    assert busy_seconds([]) == 0


def test_cost_arithmetic_against_hand_computed_figures():
    # Frontier: 1000 tokens in, 200 out per request at $3 / $15 per million: 0.003 + 0.003 = $0.006 a request.
    frontier = Measured(requests=10, tokens_in=1000, tokens_out=200, busy_s=None)
    # Local: 0.9 busy seconds a request on 1 GPU at $2/h and 50 % utilisation: 0.9/3600*2/0.5 = $0.001.
    local = Measured(requests=10, tokens_in=900, tokens_out=150, busy_s=0.9)
    hosting = Hosting(gpu_hour=2.0, gpus=1, utilisation=0.5, fixed_monthly=500.0)
    cost = area_cost(200_000, local, frontier, (3.0, 15.0), hosting)
    assert cost.api_per_request == pytest.approx(0.006)
    assert cost.self_per_request == pytest.approx(0.001)
    assert cost.api_monthly == pytest.approx(1200.0)
    assert cost.self_monthly == pytest.approx(700.0)
    assert cost.crossover_requests == pytest.approx(100_000)  # 500 / (0.006 - 0.001)
    assert cost.saving == pytest.approx(500 / 1200)
    assert cost.tokens_per_month == pytest.approx(200_000 * 1200)


def test_traffic_csv_is_averaged_over_months_and_errors_name_the_line(tmp_path):
    path = tmp_path / "traffic.csv"
    path.write_text("area,requests,month\nbilling,100,2026-09\nbilling,300,2026-10\nlegal,50,2026-10\n")
    assert read_traffic(path) == {"billing": 200.0, "legal": 25.0}
    path.write_text("area,requests\nbilling,lots\n")
    with pytest.raises(ConfigError, match=r"traffic.csv:2: requests must be a number"):
        read_traffic(path)


def test_runs_whose_models_read_differently_redacted_text_are_refused(project, monkeypatch):
    folder, frontier = project
    SUITE_WITH_ID = [{**i, "question": i["question"] + " Reply to ana.perez@example.com"} if i["id"] == "easy-0" else i
                     for i in SUITE if i["area"] != "secret"]  # fmt: skip
    (folder / "suite2.jsonl").write_text("".join(json.dumps(i) + "\n" for i in SUITE_WITH_ID))
    monkeypatch.setitem(LOCAL_RIGHT, "easy", N)
    assert (
        invoke(
            "run", "--suite", "suite2.jsonl", "--model", "local", "--judge", "judge", "--run-id", "l2"
        ).exit_code
        == 0
    )
    assert (
        invoke(
            "run", "--suite", "suite2.jsonl", "--model", "claude", "--judge", "judge", "--run-id", "f2"
        ).exit_code
        == 0
    )
    assert not any("ana.perez@example.com" in json.dumps(body) for body in frontier.requests)
    result = CliRunner().invoke(main, ["route", "--local", "l2", "--frontier", "f2"])
    assert result.exit_code == 2
    assert (
        "redaction changed what the model of run f2 read (1 identifier(s) in 1 item(s), e.g. easy-0)"
        in result.output
    )


# -- the recommendation weighs quality, cost, sensitivity and latency, on runs built for each reason ------------

# Frontier answers: 1000 tokens in and 500 out at $3 / $15 a million: 0.003 + 0.0075 = $0.0105 a request.
PRICES = {"price_in_per_mtok": 3.0, "price_out_per_mtok": 15.0}
# One GPU at $3.6 an hour, all of it serving: a busy second costs $0.001; plus $100 a month fixed.
HOSTING = {"gpu_hour": 3.6, "gpus": 1, "utilisation": 1.0, "fixed_monthly": 100.0}
GOOD, BAD = [5] * 12, [1] * 12
# area -> (local scores, frontier scores (None: restricted), local latencies ms, frontier latencies ms)
AREAS = {
    "cheap": (GOOD, GOOD, [100] * 12, [300] * 12),  # good enough, and cheaper at 100 k a month
    "dear": (GOOD, GOOD, [100] * 12, [300] * 12),  # good enough, but 1 k a month does not pay the fixed costs
    "weak": (BAD, GOOD, [100] * 12, [300] * 12),  # not good enough
    "secret": (GOOD, None, [100] * 12, []),  # restricted: never sent out, dearer than the API would be
    "slowapi": (GOOD, GOOD, [100] * 12, [2000] * 12),  # the frontier misses the 800 ms target
    "slowlocal": (GOOD, GOOD, [100] * 11 + [1500], [300] * 12),  # local p99 misses it; its mean does not
    "bothslow": (GOOD, GOOD, [1000] * 12, [2000] * 12),  # neither meets it
    "unsure": ([5] * 11 + [1], GOOD, [100] * 12, [300] * 12),  # undecided
    "novolume": (GOOD, GOOD, [100] * 12, [300] * 12),  # good enough, no volume stated
}
USAGE = {
    "latency_slo_ms": 5000,  # every area not naming its own
    "areas": {
        "cheap": {"requests_per_month": 100_000}, "dear": {"requests_per_month": 1000},
        "secret": {"requests_per_month": 1000}, "slowapi": {"requests_per_month": 1000, "latency_slo_ms": 800},
        "slowlocal": {"requests_per_month": 100_000, "latency_slo_ms": 800}, "bothslow": {"latency_slo_ms": 800},
    },
}  # fmt: skip


def store_run(store, run_id, model_name, sides, price=None):
    """A finished run of ``sides`` (area -> (scores, latencies ms)), judged by one judge and rubric; its
    answers 100 s apart, so the server's busy time is the sum of their latencies."""
    items = [
        Item(id=f"{area}-{i}", area=area, question=f"{area} question {i}?", reference=f"R{area}{i}",
             sensitivity="restricted" if area == "secret" else None)
        for area, (scores, _) in sides.items() for i in range(len(scores))
    ]  # fmt: skip
    manifest = RunManifest(
        run_id=run_id, suite_name="support", suite_path="suites/support.jsonl", suite_hash="h",
        model_name=model_name, model=model_name, judge_name="judge", judge_model="claude-judge",
        rubric_name="correctness", rubric_hash="r1", samples=1, started_at="2026-12-01T00:00:00+00:00",
        config={"model": {"model": model_name, **(price or {})}, "judge": {"model": "claude-judge"}},
        model_id=model_name, status="finished",
    )  # fmt: skip
    store.create_run(manifest, items)
    clock = 1_000_000.0
    for area, (scores, latencies) in sides.items():
        for i, (score, ms) in enumerate(zip(scores, latencies, strict=True)):
            clock += 100
            store.save_answer(Answer(run_id, f"{area}-{i}", 0, "an answer", 1000, 500, float(ms), model_name,
                                     finished_at=clock))  # fmt: skip
            store.save_judgment(Judgment(
                run_id, f"{area}-{i}", 0, score, "because", "raw", "claude-judge", f"{run_id}-{area}-{i}",
                rubric_hash="r1", judge_fingerprint="judge-fp",
            ))  # fmt: skip
    store.set_status(run_id, "finished", "2026-12-01T01:00:00+00:00")


@pytest.fixture
def weighed(tmp_path):
    """The runs of ``AREAS`` in the store, and an evals.yaml with ``USAGE`` and ``HOSTING``."""
    with Store(tmp_path / "reports") as store:
        store_run(store, "loc", "qwen", {a: (v[0], v[2]) for a, v in AREAS.items()})
        frontier = {a: (v[1], v[3]) for a, v in AREAS.items() if v[1] is not None}
        store_run(store, "fro", "claude", frontier, PRICES)
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"usage": USAGE, "hosting": HOSTING}))
    return tmp_path


def route_json(*extra):
    result = invoke("route", "--local", "loc", "--frontier", "fro", "--no-record", *extra)
    assert result.exit_code == 0, result.output
    return result.output


def test_each_reason_arises_from_the_data_built_for_it(weighed):
    table = RoutingTable.model_validate_json(route_json("--format", "json"))
    rows = {r.area: r for r in table.areas}
    said = {a: (r.recommendation, r.because) for a, r in rows.items()}
    # $0.0105 a request on the API; self-hosted $100 + $0.0001 a request (0.1 busy seconds at $0.001).
    assert said["cheap"] == ("local", "good enough and 90 % cheaper")  # (1050 - 110) / 1050
    cheap = rows["cheap"].cost
    assert cheap.api_monthly == pytest.approx(1050) and cheap.self_monthly == pytest.approx(110)
    # 1 k a month: $10.50 against $100.10, 853 % more; pays above 100 / (0.0105 - 0.0001) = 9615 a month.
    assert said["dear"] == (
        "frontier", "good enough, but self-hosting costs 853 % more at your volume, cheaper above 9.6 k requests a month"
    )  # fmt: skip
    assert rows["dear"].cost.crossover_requests == pytest.approx(100 / 0.0104)
    figures = "self-hosting 853 % dearer at 1.0 k requests a month ($100 against $10.50 on the API)"
    assert figures in rows["dear"].reason
    assert said["weak"] == ("frontier", "local not good enough")
    assert said["secret"] == (
        "local", "restricted: it may not leave, though self-hosting costs 853 % more at your volume, "
        "cheaper above 9.6 k requests a month",
    )  # fmt: skip
    recommendation, because = said["slowapi"]
    assert recommendation == "local" and because.startswith("only it meets the latency target, though")
    assert said["slowlocal"] == ("frontier", "only it meets the latency target")
    assert said["bothslow"] == ("not yet", "neither side meets the latency target")
    assert said["unsure"][0] == "not yet" and said["unsure"][1].startswith("quality not settled: about ")
    assert said["novolume"] == ("local", "good enough; cost not weighed (no volume)")
    assert "cost not weighed: no volume configured for it" in rows["novolume"].reason


def test_a_side_missing_the_latency_target_is_not_recommended_and_both_p99s_are_shown(weighed):
    table = RoutingTable.model_validate_json(route_json("--format", "json"))
    rows = {r.area: r.latency for r in table.areas}
    # p99 of eleven answers at 100 ms and one at 1500 ms: 100 + 0.89 × 1400 (linear interpolation).
    assert rows["slowlocal"].local_p99_ms == pytest.approx(1346) and rows["slowlocal"].local_misses
    assert rows["slowlocal"].frontier_p99_ms == pytest.approx(300) and not rows["slowlocal"].frontier_misses
    assert rows["slowapi"].frontier_misses and not rows["slowapi"].local_misses
    both = rows["bothslow"]
    assert both.slo_ms == 800 and both.local_misses and both.frontier_misses
    assert rows["cheap"].slo_ms == 5000  # the default for areas naming none
    assert rows["secret"].frontier_p99_ms is None  # no frontier run for a restricted area
    # Without the 800 ms target the same runs route slowlocal by cost: local, cheaper.
    config = yaml.safe_load((weighed / "evals.yaml").read_text())
    del config["usage"]["areas"]["slowlocal"]["latency_slo_ms"]
    (weighed / "evals.yaml").write_text(yaml.safe_dump(config))
    again = {r.area: r for r in RoutingTable.model_validate_json(route_json("--format", "json")).areas}
    assert again["slowlocal"].recommendation == "local"
    md = route_json("--format", "md")
    assert "| slowapi | internal | 12 | +0.00 | +0.00 | 100 | 2,000 (misses) | 800 |" in md


def test_no_local_is_shown_beside_a_dearer_self_hosted_cost_without_the_reason_saying_it(weighed):
    table = RoutingTable.model_validate_json(route_json("--format", "json"))
    dearer = [r for r in table.areas if r.cost and r.cost.saving is not None and r.cost.saving < 0]
    assert {r.area for r in dearer} == {"dear", "secret", "slowapi"}
    for row in dearer:
        assert row.recommendation != "local" or "more at your volume" in row.because
        assert "dearer" in row.reason


def test_the_overall_answer_comes_first_and_every_rendering_shows_one_recommendation(weighed):
    table = RoutingTable.model_validate_json(route_json("--format", "json"))
    assert table.overall.local == ["cheap", "novolume", "secret", "slowapi"]
    # cheap, secret and slowapi moved together: $1,071 on the API against $100 + $10.20 self-hosted.
    assert table.overall.monthly_saving == pytest.approx(1071 - 110.2)
    assert table.overall.local_traffic == pytest.approx(102_000 / 203_000)
    assert table.overall.text.startswith(
        "route 4 of 9 areas to local (50 % of the stated traffic), keep 3 on frontier: dear (good enough, but "
        "self-hosting costs 853 % more at your volume, cheaper above 9.6 k requests a month), slowlocal (only it "
        "meets the latency target), weak (local not good enough); not yet for 2: bothslow (neither side meets "
        "the latency target), unsure (quality not settled: about "
    )
    assert table.overall.text.endswith("; saves $961 a month (without novolume: no cost known)")
    expected = {r.area: r.recommendation for r in table.areas}

    md = route_json("--format", "md")
    assert md.index("route 4 of 9 areas") < md.index("| area |")
    md_rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| ") and "**" in line]
    assert {cells[0][2:]: cells[-2].strip("*") for cells in md_rows} == expected

    html = route_json("--format", "html")
    assert html.index('id="overall"') < html.index("<table") and "route 4 of 9 areas" in html
    html_rows = re.findall(r'<tr data-area="([^"]+)">.*?class="rec r-([a-z-]+)"', html, re.S)
    assert {area: rec.replace("-", " ") for area, rec in html_rows} == expected

    terminal = route_json()
    assert terminal.index("route 4 of 9 areas") < terminal.index("area")
    lines = re.findall(r"^(\w+): (local|frontier|not yet), ", terminal, re.M)
    assert dict(lines) == expected


def test_an_area_may_state_only_a_latency_target_and_a_bad_one_is_one_line(weighed):
    config = yaml.safe_load((weighed / "evals.yaml").read_text())
    config["usage"]["areas"]["bothslow"]["latency_slo_ms"] = -5
    (weighed / "evals.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["route", "--local", "loc", "--frontier", "fro", "--no-record"])
    assert result.exit_code == 2
    assert re.search(r"evals.yaml:\d+: usage.areas.bothslow.latency_slo_ms: .*greater than 0", result.output)


def test_html_reason_column_is_readable_charts_have_axes_and_a_phone_gets_no_sideways_scroll(weighed):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium (.ci/run installs it)")
    page_file = weighed / "route.html"
    assert invoke("route", "--local", "loc", "--frontier", "fro", "--no-record", "--format", "html",
                  "--out", str(page_file)).exit_code == 0  # fmt: skip
    html = page_file.read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            wide, requests = browser.new_page(viewport={"width": 1280, "height": 900}), []
            errors: list[object] = []
            wide.on("request", lambda r: requests.append(r.url))
            wide.on("pageerror", lambda e: errors.append(e))
            wide.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            wide.goto(page_file.as_uri())
            assert requests == [page_file.as_uri()] and errors == []
            why = wide.locator('tr[data-area="dear"] td.why').bounding_box()
            assert why is not None and why["width"] >= 300  # not a 60 px column
            assert wide.evaluate("document.documentElement.scrollWidth") <= 1280
            overall = wide.locator("#overall").bounding_box()
            assert overall is not None and overall["y"] < wide.locator("#routes").bounding_box()["y"]
            chart = wide.locator("figure", has_text="cheap").locator("svg")
            assert chart.locator("text.x-title").text_content() == "requests a month"
            assert chart.locator("text.y-title").text_content() == "cost, $ a month"
            assert chart.locator("text", has_text="$").count() >= 2  # y tick labels in dollars
            narrow = browser.new_page(viewport={"width": 420, "height": 900})
            narrow.goto(page_file.as_uri())
            assert narrow.evaluate("document.documentElement.scrollWidth") <= 420
            card = narrow.locator('tr[data-area="dear"] td.why').bounding_box()
            assert card is not None and card["width"] >= 300  # the row became a card as wide as the screen
            ARTIFACTS.mkdir(exist_ok=True)
            wide.screenshot(path=str(ARTIFACTS / "route-1280.png"), full_page=True)
            narrow.screenshot(path=str(ARTIFACTS / "route-420.png"), full_page=True)
        finally:
            browser.close()
