"""`evals route`: local against frontier per area, on the fake servers; the cost arithmetic by hand."""

import json

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Hosting
from evals.errors import ConfigError
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.routing.economics import Measured, area_cost, busy_seconds, read_traffic

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
    return f"The answer is R{area}{int(rest.rstrip('?'))}."


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
