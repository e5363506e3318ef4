"""Panels of judges end to end: real SDKs against fake Anthropic and OpenAI judges whose scores we choose."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import load_config
from evals.errors import ConfigError
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, last_user_text, text_reply
from evals.judge.judging import build_judge
from evals.judge.panel import stored_labels
from evals.judge.rubrics import rubric_search
from evals.outbound.gateway import Gateway

SUITE = [
    {"id": "geo-1", "area": "geography", "question": "Capital of France?", "reference": "Paris"},
    {"id": "geo-2", "area": "geography", "question": "Capital of Peru?", "reference": "Lima"},
    {"id": "geo-3", "area": "geography", "question": "Capital of Chile?", "reference": "Santiago"},
    {"id": "math-1", "area": "math", "question": "What is 2 + 2?", "reference": "4"},
    {"id": "math-2", "area": "math", "question": "What is 6 x 7?", "reference": "42"},
    {"id": "math-3", "area": "math", "question": "What is 9 - 3?", "reference": "6"},
]
# What each judge gives each question: claude grades by the reference; gpt is a point harsher on some
# items and two on geo-3 and math-2; mistral, the third, is the lenient one.
CLAUDE = {"France": 5, "Peru": 1, "Chile": 5, "2 + 2": 4, "6 x 7": 5, "9 - 3": 3}
GPT = {"France": 4, "Peru": 1, "Chile": 3, "2 + 2": 4, "6 x 7": 3, "9 - 3": 2}
MISTRAL = {"France": 5, "Peru": 2, "Chile": 5, "2 + 2": 5, "6 x 7": 5, "9 - 3": 4}
ITEM_KEY = {"geo-1": "France", "geo-2": "Peru", "geo-3": "Chile", "math-1": "2 + 2", "math-2": "6 x 7",
            "math-3": "9 - 3"}  # fmt: skip


def grades(table: dict[str, int], name: str):
    """A fake judge's structured verdict from a table of scores by a word of the question."""

    def respond(body):
        question = re.search(r"<question>(.*?)</question>", last_user_text(body), re.S)
        assert question, "the judge prompt must carry the question in delimiters"
        [score] = [s for word, s in table.items() if word in question.group(1)]
        return {"rationale": f"{name} gives {score}", "score": score}

    return respond


@pytest.fixture
def servers():
    with (
        FakeOpenAI(text_reply(lambda q: f"answer to {q}"), model_id="qwen-test") as model,
        FakeAnthropic(grades(CLAUDE, "claude"), model_id="claude-x") as claude,
        FakeOpenAI(grades(GPT, "gpt"), model_id="gpt-y") as gpt,
        FakeOpenAI(grades(MISTRAL, "mistral"), model_id="mistral-z") as mistral,
    ):
        yield {"model": model, "claude": claude, "gpt": gpt, "mistral": mistral}


def write_config(folder: Path, servers, **panels) -> None:
    config = {
        "models": {"local": {"base_url": servers["model"].url, "model": "qwen", "max_retries": 0}},
        "judges": {
            "claude": {"provider": "anthropic", "base_url": servers["claude"].url, "model": "claude-x",
                       "max_retries": 0, "price_in_per_mtok": 3, "price_out_per_mtok": 15},
            "gpt": {"provider": "openai", "base_url": servers["gpt"].url, "model": "gpt-y", "max_retries": 0,
                    "price_in_per_mtok": 1, "price_out_per_mtok": 4},
            "mistral": {"provider": "openai", "base_url": servers["mistral"].url, "model": "mistral-z",
                        "max_retries": 0, "price_in_per_mtok": 0, "price_out_per_mtok": 0},
            **panels,
        },
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
        "canary": {"enabled": False},  # these tests count each member's calls
    }  # fmt: skip
    (folder / "evals.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def project(tmp_path, servers, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    write_config(tmp_path, servers, both={"panel": ["claude", "gpt"]})
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def verdicts(project: Path, run_id: str) -> list[tuple[str, str, float | None]]:
    db = sqlite3.connect(project / "reports" / "evals.db")
    rows = db.execute(
        "SELECT item_id, judge, score FROM judgments WHERE run_id = ? ORDER BY item_id, judge", (run_id,)
    ).fetchall()
    return [(item, judge.partition(" (")[0], score) for item, judge, score in rows]


def results(project: Path, run_id: str) -> dict[str, dict]:
    path = project / "reports" / "runs" / run_id / "results.jsonl"
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_every_answer_gets_one_verdict_per_member_and_the_mean_of_them(project, servers):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert servers["claude"].count() == 6 and servers["gpt"].count() == 6
    assert verdicts(project, "r1") == [
        (item, member, table[ITEM_KEY[item]])
        for item in sorted(ITEM_KEY)
        for member, table in (("claude", CLAUDE), ("gpt", GPT))
    ]
    rows = results(project, "r1")
    assert {i: r["score"] for i, r in rows.items()} == {
        "geo-1": 4.5, "geo-2": 1.0, "geo-3": 4.0, "math-1": 4.0, "math-2": 4.0, "math-3": 2.5,
    }  # fmt: skip
    assert rows["geo-3"]["member_scores"] == {"claude": 5.0, "gpt": 3.0}
    db = sqlite3.connect(project / "reports" / "evals.db")
    name, model, config = db.execute("SELECT judge_name, judge_model, config_json FROM runs").fetchone()
    assert (name, model) == ("both", "panel(claude-x, gpt-y)")
    config = json.loads(config)
    assert config["judge"]["panel"] == {"members": ["claude", "gpt"], "aggregate": "mean"}
    assert config["judge"]["members"]["gpt"]["model"] == "gpt-y"
    assert config["judge"]["members"]["claude"]["api_key_env"] == "ANTHROPIC_API_KEY"


def test_median_of_three_members_is_the_middle_score(project, servers):
    write_config(project, servers, trio={"panel": {"members": ["claude", "gpt", "mistral"], "aggregate": "median"}},
                 mean3={"panel": ["claude", "gpt", "mistral"]})  # fmt: skip
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "trio", "--run-id", "med").exit_code == 0
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "mean3", "--run-id", "avg").exit_code == 0
    median = {i: r["score"] for i, r in results(project, "med").items()}
    mean = {i: r["score"] for i, r in results(project, "avg").items()}
    # claude, gpt, mistral: France 5 4 5 · Peru 1 1 2 · Chile 5 3 5 · 2+2 4 4 5 · 6x7 5 3 5 · 9-3 3 2 4
    assert median == {"geo-1": 5, "geo-2": 1, "geo-3": 5, "math-1": 4, "math-2": 5, "math-3": 3}
    assert mean == pytest.approx(
        {"geo-1": 14 / 3, "geo-2": 4 / 3, "geo-3": 13 / 3, "math-1": 13 / 3, "math-2": 13 / 3, "math-3": 3}
    )
    # the second panel reused every verdict of the first: same members, same answers
    assert servers["mistral"].count() == 6


def test_each_member_is_cached_by_its_own_key(project, servers):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r2").exit_code == 0
    assert servers["claude"].count() == 6 and servers["gpt"].count() == 6  # nobody asked again
    assert results(project, "r2").keys() == results(project, "r1").keys()
    assert [r["score"] for r in results(project, "r2").values()] == [
        r["score"] for r in results(project, "r1").values()
    ]
    config = yaml.safe_load((project / "evals.yaml").read_text())
    config["judges"]["gpt"]["temperature"] = 0.7  # another gpt judge: its verdicts are not the same
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r3").exit_code == 0
    assert servers["claude"].count() == 6 and servers["gpt"].count() == 12


def test_resume_after_one_members_outage_asks_only_that_member(project, servers):
    servers["gpt"].inject(*[Fault("server_error", status=503)] * 6)  # max_retries 0: every gpt verdict fails
    args = ("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1", "--fail-after", "0")
    assert invoke(*args).exit_code == 0
    rows = results(project, "r1")
    # the score is the aggregate of the members that scored it, and the row says which did
    assert {i: r["score"] for i, r in rows.items()} == {i: CLAUDE[ITEM_KEY[i]] for i in ITEM_KEY}
    assert all(r["member_scores"] == {"claude": r["score"]} for r in rows.values())
    result = invoke("run", "--resume", "r1")
    assert result.exit_code == 0, result.output
    assert servers["claude"].count() == 6 and servers["gpt"].count() == 12
    assert results(project, "r1")["geo-3"]["score"] == 4.0
    assert invoke("run", "--resume", "r1").exit_code == 0  # nothing left: nobody is asked
    assert servers["claude"].count() == 6 and servers["gpt"].count() == 12


def test_resume_with_other_members_is_refused(project, servers):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    write_config(project, servers, both={"panel": ["claude", "mistral"]})
    result = invoke("run", "--resume", "r1")
    assert result.exit_code == 2
    assert "judged by claude, gpt, but judge 'both' is now claude, mistral" in result.output


@pytest.mark.parametrize(
    ("panel", "said"),
    [
        (["claude", "nope"], "judges.bad.panel.members.1: unknown judge 'nope'"),
        ([], "judges.bad.panel.members: a panel needs at least two judges, not 0"),
        (["claude"], "judges.bad.panel.members: a panel needs at least two judges, not 1"),
        (["claude", "gpt", "claude"], "judges.bad.panel.members.2: 'claude' is listed twice"),
        (["claude", "both"], "judges.bad.panel.members.1: 'both' is a panel itself"),
        ({"members": ["claude", "gpt"], "aggregate": "mode"}, "judges.bad.panel.aggregate: Input should be"),
    ],
)
def test_a_bad_panel_is_a_config_error_with_its_line(project, servers, panel, said):
    write_config(project, servers, both={"panel": ["claude", "gpt"]}, bad={"panel": panel})
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude")
    assert result.exit_code == 2
    assert re.search(r"evals\.yaml:\d+: " + re.escape(said), result.output), result.output
    assert servers["model"].count() == 0


def test_a_panel_entry_holds_nothing_but_its_members(project, servers):
    write_config(project, servers, bad={"panel": ["claude", "gpt"], "model": "x", "temperature": 1})
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "bad")
    assert result.exit_code == 2
    assert (
        "a panel entry holds only 'panel:' (members and aggregate), not model, temperature" in result.output
    )


def test_members_with_different_rubrics_are_refused(project, servers):
    write_config(project, servers, both={"panel": ["claude", "gpt"]})
    config = yaml.safe_load((project / "evals.yaml").read_text())
    config["judges"]["gpt"]["rubric"] = "other"
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude")
    assert (
        result.exit_code == 2
        and "the members grade with different rubrics (correctness, other)" in result.output
    )


def test_a_command_taking_one_judge_refuses_a_panel_by_name(project):
    config = load_config(project / "evals.yaml")
    name, endpoint = config.judge("both")
    with pytest.raises(ConfigError, match="judge 'both' is a panel of claude, gpt; this needs one judge"):
        build_judge(name, endpoint, rubric_search(config))


def test_a_panel_is_never_the_default_judge(project):
    assert load_config(project / "evals.yaml").judge(None)[0] == "claude"


def test_stored_labels_are_what_each_member_describes_itself_as(project):
    config = load_config(project / "evals.yaml")
    name, endpoint = config.judge("both")
    built = [
        build_judge(m, e, rubric_search(config), Gateway()) for m, e in endpoint.panel.endpoints().items()
    ]
    offline = build_judge("offline", config.judge("offline")[1], rubric_search(config))
    assert stored_labels(name, endpoint, rubric_search(config)) == [j.describe() for j in built]
    assert stored_labels("offline", config.judge("offline")[1], rubric_search(config)) == [offline.describe()]


def test_dry_run_counts_and_prices_every_member(project, servers):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--judge-repeats", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    claude = re.search(r"judge claude \(claude-x\): 12 calls .* ≈ \$([\d.]+)", result.output)
    gpt = re.search(r"judge gpt \(gpt-y\): 12 calls .* ≈ \$([\d.]+)", result.output)
    assert claude and gpt, result.output
    assert float(claude.group(1)) > float(gpt.group(1)) > 0  # each at its own prices
    assert servers["claude"].count() == servers["gpt"].count() == servers["model"].count() == 0


def test_dry_run_of_a_resume_counts_only_the_missing_members_verdicts(project, servers):
    servers["gpt"].inject(*[Fault("server_error", status=503)] * 2)
    args = ("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1", "--fail-after", "0")
    assert invoke(*args).exit_code == 0
    result = invoke("run", "--resume", "r1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "judge claude (claude-x): 0 calls" in result.output
    assert "judge gpt (gpt-y): 2 calls" in result.output


def test_max_cost_needs_every_members_prices(project, servers):
    config = yaml.safe_load((project / "evals.yaml").read_text())
    del config["judges"]["gpt"]["price_in_per_mtok"], config["judges"]["gpt"]["price_out_per_mtok"]
    config["models"]["local"].update(price_in_per_mtok=0, price_out_per_mtok=0)
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--max-cost", "1")
    assert result.exit_code == 2 and "--max-cost needs token prices" in result.output
    assert "judge 'gpt'" in result.output and "judge 'claude'" not in result.output


def test_max_cost_counts_every_member_at_its_price(project, servers):
    config = yaml.safe_load((project / "evals.yaml").read_text())
    config["models"]["local"].update(price_in_per_mtok=0, price_out_per_mtok=0)
    config["judges"]["gpt"].update(price_in_per_mtok=0, price_out_per_mtok=0)
    config["judges"]["claude"].update(price_in_per_mtok=2000, price_out_per_mtok=2000, max_concurrency=1)
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    # claude's worst case is (its prompt + 1024 tokens) x $2000/M, over $2 a call: never asked
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--max-cost", "2", "--run-id", "r1")
    assert result.exit_code == 2 and "stopped by --max-cost" in result.output
    assert servers["claude"].count() == 0
    assert servers["gpt"].count() == 6  # the free member graded every answer that was bought


# the scorecard: members, agreement, disagreements, cost


def scorecard(project: Path, run_id: str) -> tuple[dict, str, str, str]:
    result = invoke("report", run_id)
    assert result.exit_code == 0, result.output
    folder = project / "reports" / "runs" / run_id
    card = json.loads((folder / "scorecard.json").read_text())
    return card, (folder / "scorecard.html").read_text(), (folder / "scorecard.md").read_text(), result.output


def test_scorecard_agreement_equals_scikit_learn_and_krippendorff_on_the_same_scores(project):
    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    card, *_ = scorecard(project, "r1")
    panel = card["panel"]
    claude = [CLAUDE[ITEM_KEY[i]] for i in sorted(ITEM_KEY)]
    gpt = [GPT[ITEM_KEY[i]] for i in sorted(ITEM_KEY)]
    [pair] = panel["overall"]["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == ("claude", "gpt", 6)
    assert pair["kappa"] == pytest.approx(
        cohen_kappa_score(claude, gpt, weights="quadratic", labels=[1, 2, 3, 4, 5])
    )
    assert pair["kappa_ci_low"] <= pair["kappa"] <= pair["kappa_ci_high"]
    alpha = krippendorff.alpha(
        reliability_data=np.array([claude, gpt], float), level_of_measurement="ordinal"
    )
    assert panel["overall"]["alpha"] == pytest.approx(alpha)
    assert panel["areas"] == []  # three answers an area: too few for figures of its own
    assert [(m["name"], m["scored"], m["errors"]) for m in panel["members"]] == [
        ("claude", 6, 0),
        ("gpt", 6, 0),
    ]
    assert panel["aggregate"] == "mean" and panel["partial"] == 0


def test_the_disagreement_list_holds_exactly_the_answers_two_points_apart(project):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    card, html, md, terminal = scorecard(project, "r1")
    listed = card["panel"]["disagreements"]
    apart = sorted(i for i, word in ITEM_KEY.items() if abs(CLAUDE[word] - GPT[word]) >= 2)
    assert apart == ["geo-3", "math-2"]
    assert sorted(d["id"] for d in listed) == apart
    geo3 = next(d for d in listed if d["id"] == "geo-3")
    assert geo3["scores"] == {"claude": 5.0, "gpt": 3.0} and geo3["spread"] == 2.0
    assert geo3["rationales"] == {"claude": "claude gives 5", "gpt": "gpt gives 3"}
    assert geo3["area"] == "geography" and geo3["question"] == "Capital of Chile?"
    for shown in (html, md):
        assert "geo-3" in shown and "math-2" in shown and "gpt gives 3" in shown
    assert "  geo-3 (geography): claude 5.0, gpt 3.0" in terminal
    assert "| geo-3 | geography | 2.0 | 5.0: claude gives 5 | 3.0: gpt gives 3 |" in md


def test_cost_on_the_scorecard_sums_every_member_at_its_prices(project):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    card, *_ = scorecard(project, "r1")
    db = sqlite3.connect(project / "reports" / "evals.db")
    spent = db.execute(
        "SELECT judge, sum(tokens_in), sum(tokens_out), count(*) FROM judgments GROUP BY judge"
    )
    by = {judge.partition(" (")[0]: (tin, tout, n) for judge, tin, tout, n in spent}
    judge = card["cost"]["judge"]
    assert judge["calls"] == 12
    assert judge["tokens_in"] == by["claude"][0] + by["gpt"][0]
    expected = (by["claude"][0] * 3 + by["claude"][1] * 15 + by["gpt"][0] * 1 + by["gpt"][1] * 4) / 1e6
    assert judge["cost"] == pytest.approx(expected)
    # a second run reuses every verdict: it cost nothing on the judge side
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r2").exit_code == 0
    card, *_ = scorecard(project, "r2")
    assert card["cost"]["judge"]["cost"] == 0 and card["cost"]["judge"]["calls"] == 0


def test_kappa_of_every_bootstrap_table_is_scikit_learns():
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from evals.scorecard.panel import kappa_tables

    rng = np.random.default_rng(7)
    for _ in range(200):
        a, b = rng.integers(1, 6, 12), rng.integers(1, 6, 12)
        b[:6] = a[:6]  # some agreement, so kappa is defined and away from 0
        table = np.zeros((5, 5))
        np.add.at(table, (a - 1, b - 1), 1)
        expected = cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5])
        assert kappa_tables(table[None])[0] == pytest.approx(expected)


def test_agreement_is_none_when_undefined_and_never_warns():
    from evals.trust.agreement import ordinal_alpha, quadratic_kappa

    assert quadratic_kappa([4, 4, 4], [4, 4, 4]) is None
    assert ordinal_alpha([[4, 4, 4], [4, 4, float("nan")]]) is None
    assert quadratic_kappa([], []) is None


def test_areas_with_enough_answers_get_their_own_agreement():
    from evals.records import Judgment, RunManifest
    from evals.results import ResultRow
    from evals.scorecard.panel import MIN_AREA_N, build_panel
    from evals.trust.agreement import quadratic_kappa

    run = RunManifest(
        run_id="r", suite_name="s", suite_path="s", suite_hash="h", model_name="m", model="m", judge_name="p",
        judge_model="panel(a, b)", rubric_name="c", rubric_hash="h", samples=1, started_at="2026-11-30T00:00:00+00:00",
        config={"judge": {"panel": {"members": ["a", "b"], "aggregate": "median"}}},
    )  # fmt: skip
    scores = {
        "big": [(s % 5 + 1, (s + s // 5) % 5 + 1) for s in range(MIN_AREA_N)],
        "small": [(3, 4), (2, 2)],
    }
    rows, verdicts = [], []
    for area, pairs in scores.items():
        for n, (sa, sb) in enumerate(pairs):
            item = f"{area}-{n}"
            fields = dict.fromkeys(("reference", "finish_reason", "reasoning", "rationale", "error", "error_kind",
                                    "judge", "cached", "answer_tokens_in", "answer_tokens_out", "answer_latency_ms",
                                    "judge_tokens_in", "judge_tokens_out", "judge_latency_ms"))  # fmt: skip
            rows.append(ResultRow(run_id="r", id=item, sample=0, area=area, question="q", answer="x", truncated=False,
                                  score=(sa + sb) / 2, item_hash="h", **fields))  # fmt: skip
            verdicts += [Judgment("r", item, 0, sa, "ra", None, "a (m1), rubric c@h", "k"),
                         Judgment("r", item, 0, sb, "rb", None, "b (m2), rubric c@h", "k2")]  # fmt: skip
    panel = build_panel(run, rows, verdicts)
    assert [g.area for g in panel.areas] == ["big"]  # "small" has too few answers for figures of its own
    big = scores["big"]
    assert panel.areas[0].pairs[0].kappa == pytest.approx(
        quadratic_kappa([a for a, _ in big], [b for _, b in big])
    )
    assert panel.overall.n == MIN_AREA_N + 2 and panel.aggregate == "median"


def test_provenance_names_what_changed_in_any_member(project, servers):
    from evals.judge.provenance import judged_differently
    from evals.store import Store

    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    config = yaml.safe_load((project / "evals.yaml").read_text())
    config["judges"]["gpt"].update(temperature=0.7, max_concurrency=3)  # concurrency changes no verdict
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r2").exit_code == 0
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r3").exit_code == 0
    with Store(project / "reports") as store:
        r1, r2, r3 = (store.run(r) for r in ("r1", "r2", "r3"))
        said = judged_differently(store, r1, r2)
        assert judged_differently(store, r2, r3) == []
    assert "judge setting gpt.temperature 0.0 vs 0.7" in said
    assert any(d.startswith("judge fingerprint") for d in said)  # the verdicts' fingerprints say it too
    assert not any("claude." in d or "max_concurrency" in d for d in said)


def test_judge_text_in_the_disagreement_list_stays_inert(project, servers):
    hostile = "<script>alert(1)</script> | [click](http://evil.example) \x1b[31m @team"
    servers["gpt"].responder = lambda body: {"rationale": hostile, "score": 1}
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "both", "--run-id", "r1").exit_code == 0
    card, html, md, terminal = scorecard(project, "r1")
    assert card["panel"]["disagreements"]  # claude's 5s against gpt's 1s
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "[click](http" not in md and "\\<script\\>" in md and "@\u200bteam" in md
    assert "\x1b" not in terminal


def test_the_offline_judge_can_sit_on_a_panel_for_free(project, servers):
    write_config(project, servers, cheap={"panel": ["claude", "offline"]})
    dry = invoke("run", "--suite", "suite.jsonl", "--judge", "cheap", "--dry-run")
    assert "judge offline (offline-reference): 6 gradings, offline: no calls, free" in dry.output
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "cheap", "--run-id", "r1").exit_code == 0
    assert servers["claude"].count() == 6
    assert sorted({member for _, member, _ in verdicts(project, "r1")}) == ["claude", "offline"]
    assert len(verdicts(project, "r1")) == 12
    assert invoke("run", "--resume", "r1").exit_code == 0 and servers["claude"].count() == 6
