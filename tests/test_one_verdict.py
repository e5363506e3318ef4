"""One verdict on every page (issue 20, item 8): the scorecard (JSON, Markdown, HTML), `evals report` and
its `--fail-on-regression`, `evals compare`, `evals gate` (exit code, Markdown, JUnit) and the index agree on
every area's status and on the run's verdict, for the pairs that used to make them disagree."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from builders import make_run
from click.testing import CliRunner

from evals import stats
from evals.cli import main
from evals.store import Store

AREAS = ("alpha", "beta", "gamma", "delta")
N = 20


def _scores(base: int, lose: dict[str, tuple[int, int]], areas=AREAS, n=N) -> dict[str, list[int]]:
    """Every item scores ``base``; in each area of ``lose``, its first k items move by ``points``."""
    out = {}
    for area in areas:
        k, points = lose.get(area, (0, 0))
        for i in range(n):
            out[f"{area}-{i:02d}"] = [base + (points if i < k else 0)]
    return out


SCENARIOS = {
    # alpha: 5 of 20 lose a point. Its 95 % interval alone excludes 0; the simultaneous one (4 areas) does not.
    "unadjusted-only": (
        _scores(4, {}),
        _scores(4, {"alpha": (5, -1)}),
        {"alpha": "not shown non-inferior"},
        "pass",
    ),
    # every area loses 0.25: no area alone is significant, the overall one-sided bound fails the margin.
    "spread-drop": (
        _scores(4, {}),
        _scores(4, {a: (5, -1) for a in AREAS}),
        {a: "not shown non-inferior" for a in AREAS},
        "fail",
    ),
    "large-drop": (_scores(4, {}), _scores(4, {"beta": (15, -2)}), {"beta": "regressed"}, "fail"),
    "improvement": (
        _scores(3, {}),
        _scores(3, {a: (12, 1) for a in AREAS}),
        {a: "improved" for a in AREAS},
        "pass",
    ),
    # a fifth area with 3 items: too thin to decide alone; the rest decides the run
    "thin-area": (
        {**_scores(4, {}), **_scores(4, {}, ("epsilon",), 3)},
        {**_scores(4, {}), **_scores(4, {}, ("epsilon",), 3)},
        {"epsilon": "cannot decide"},
        "pass",
    ),
}
ANSWER = {"pass": "yes", "fail": "no", "cannot decide": "cannot decide"}


def invoke(*args: str, **env: str):
    return CliRunner(env={"COLUMNS": "240", **env}).invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_page_shows_the_same_status_for_every_area_and_the_same_verdict(tmp_path, name):
    base_scores, cand_scores, special, outcome = SCENARIOS[name]
    reports = tmp_path / "reports"
    with Store(reports) as store:
        make_run(store, "r01", base_scores)
        make_run(store, "r02", cand_scores)
    areas = sorted({k.split("-")[0] for k in cand_scores})
    expected = {a: special.get(a, "unchanged") for a in areas}
    common = ("--reports", str(reports))

    report = invoke("report", "r02", "--baseline", "r01", "--fail-on-regression", *common)
    assert report.exit_code == (1 if outcome == "fail" else 0), report.output
    card = json.loads((reports / "runs/r02/scorecard.json").read_text())
    assert card["decision"]["outcome"] == outcome
    assert {a["area"]: a["drift"]["status"] for a in card["areas"]} == expected
    headline = card["decision"]["headline"]
    assert headline.startswith(f"safe to ship: {ANSWER[outcome]}, because")
    assert report.output.splitlines()[0] == headline  # the terminal opens with the answer

    md = (reports / "runs/r02/scorecard.md").read_text()
    html = (reports / "runs/r02/scorecard.html").read_text()
    assert (
        f"**{headline.replace('(', chr(92) + '(').replace(')', chr(92) + ')')}" in md
        or headline in md.replace("\\", "")
    )
    assert f'class="verdict v-{outcome.replace(" ", "-")}"' in html
    for area, status in expected.items():
        md_row = next(line for line in md.splitlines() if line.startswith(f"| {area}"))
        assert f"| {status}" in md_row, md_row
        assert (
            f'data-area="{area}"' in html and f'class="status s-{status.replace(" ", "-")}">{status}<' in html
        )

    compared = invoke("compare", "r01", "r02", *common)
    assert compared.exit_code == 0 and headline in compared.output
    for area, status in expected.items():
        row = next(line for line in compared.output.splitlines() if line.startswith(f"│ {area} "))
        assert status in row, row

    junit_path = tmp_path / "junit.xml"
    gate = invoke(
        "gate", "--candidate", "r02", "--baseline", "r01", "--junit", str(junit_path), "--markdown", *common
    )
    assert gate.exit_code == {"pass": 0, "fail": 1, "cannot decide": 2}[outcome], gate.output
    assert headline.replace("(", "\\(").replace(")", "\\)") in gate.output or headline in gate.output.replace(
        "\\", ""
    )
    for area, status in expected.items():
        row = next(line for line in gate.output.splitlines() if line.startswith(f"| area {area} "))
        assert status in row.replace("\\", ""), row
    cases = {c.get("name"): c for c in ET.parse(junit_path).getroot()}
    for area, status in expected.items():
        assert (cases[f"area {area}"].find("failure") is not None) == (status == "regressed")

    index = (reports / "index.html").read_text()
    row = next(r for r in index.split("<tr>") if "r02" in r)
    assert f">{ANSWER[outcome]} <span" in row


def test_the_drop_of_the_first_scenario_is_significant_only_without_the_correction(tmp_path):
    """The premise of ``unadjusted-only``: the unadjusted 95 % interval excludes 0, the shown one does not."""
    base, cand, _, _ = SCENARIOS["unadjusted-only"]
    pick = lambda s: {k: v for k, v in s.items() if k.startswith("alpha")}  # noqa: E731
    alone = stats.paired_delta(pick(base), pick(cand))
    assert alone.ci_high is not None and alone.ci_high < 0
    with Store(tmp_path) as store:
        make_run(store, "r01", base)
        make_run(store, "r02", cand)
    invoke("report", "r02", "--baseline", "r01", "--reports", str(tmp_path))
    card = json.loads((tmp_path / "runs/r02/scorecard.json").read_text())
    alpha = next(a for a in card["areas"] if a["area"] == "alpha")["drift"]
    assert alpha["delta_ci_low"] < 0 < alpha["delta_ci_high"] and "Bonferroni, 4 areas" in alpha["interval"]


def test_gate_and_report_default_to_the_latest_finished_run_and_policy_overrides_one_setting(tmp_path):
    reports = tmp_path / "reports"
    base, cand, _, _ = SCENARIOS["spread-drop"]  # fails the 0.3 margin; passes a 0.5 one
    with Store(reports) as store:
        make_run(store, "r01", base)
        make_run(store, "r02", cand)
        make_run(
            store, "r03", cand, status="interrupted", unanswered=set(cand)
        )  # not finished: never the default
    common = ("--baseline", "r01", "--reports", str(reports))
    gate = invoke("gate", *common)
    assert gate.exit_code == 1 and "candidate r02: the latest finished run" in gate.output
    policy = tmp_path / "policy.yaml"
    policy.write_text("margin: 0.5\n")
    relaxed = invoke("gate", "--policy", str(policy), *common)
    assert relaxed.exit_code == 0 and "margin 0.5" in relaxed.output
    report = invoke("report", "--policy", str(policy), "--fail-on-regression", *common)
    assert report.exit_code == 0 and report.output.startswith("safe to ship: yes")
    assert "decided with: margin 0.5" in report.output
    compared = invoke("compare", "r01", "r02", "--policy", str(policy), "--reports", str(reports))
    assert "safe to ship: yes" in compared.output
