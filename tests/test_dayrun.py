"""What a run needs day to day: cut-off answers, reasoning kept apart, subsets, dry runs, a cost limit.

Real SDKs against the fake servers; each test then opens the store or the exports to check what was kept.
"""

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Endpoint
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, Reply, grade_by_reference, last_user_text
from evals.judge.judging import TRUNCATED_NOTE
from evals.judge.reasoning import split_reasoning
from evals.outbound.providers.anthropic import AnthropicProvider
from evals.outbound.providers.openai_compat import OpenAIProvider
from evals.records import CompletionRequest

SECRET = "sk-ant-test-SECRET-4242"
SUITE = [
    {"id": "geo-1", "area": "geography", "question": "Capital of France?", "reference": "Paris", "tags": ["easy"]},
    {"id": "geo-2", "area": "geography", "question": "Capital of Peru?", "reference": "Lima", "tags": ["hard"]},
    {"id": "math-1", "area": "math", "question": "What is 2 + 2?", "reference": "4", "tags": ["easy"]},
    {"id": "math-2", "area": "math", "question": "What is 6 x 7?", "reference": "42"},
    {"id": "chem-1", "area": "chemistry", "question": "Symbol of gold?", "reference": "Au", "tags": ["hard"]},
]  # fmt: skip
ANSWERS = {
    "Capital of France?": "Paris.",
    "Capital of Peru?": "Lima.",
    "What is 2 + 2?": "4",
    "What is 6 x 7?": "42",
    "Symbol of gold?": "Au",
}


@pytest.fixture
def model_server():
    with FakeOpenAI(
        lambda body: ANSWERS.get(last_user_text(body), "no idea"), model_id="qwen-test"
    ) as server:
        yield server


@pytest.fixture
def judge_server():
    with FakeAnthropic(grade_by_reference, model_id="claude-test") as server:
        yield server


def write_config(root: Path, model: dict, judge: dict) -> None:
    config = {
        "models": {"local": {"model": "qwen", "max_concurrency": 2, "max_retries": 0, **model}},
        "judges": {"claude": {"provider": "anthropic", "model": "claude-test", "max_retries": 0, **judge}},
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
        "canary": {"enabled": False},  # the judge calls counted here are the run's own (see test_canary.py)
    }
    (root / "evals.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def project(tmp_path, model_server, judge_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    write_config(tmp_path, {"base_url": model_server.url}, {"base_url": judge_server.url})
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def db(project: Path) -> sqlite3.Connection:
    return sqlite3.connect(project / "reports" / "evals.db")


def results(project: Path, run_id: str) -> dict[str, dict]:
    path = project / "reports" / "runs" / run_id / "results.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


# 1. cut-off answers ------------------------------------------------------------------------------------


def test_an_answer_cut_at_max_tokens_is_stored_truncated_and_the_judge_is_told(
    project, model_server, judge_server
):
    def answer(body):
        question = last_user_text(body)
        if question == "Capital of Peru?":
            return Reply("The capital of Peru is", finish_reason="length")
        return ANSWERS[question]

    model_server.responder = answer
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    rows = results(project, "r1")
    assert (rows["geo-2"]["truncated"], rows["geo-2"]["finish_reason"]) == (True, "length")
    assert (rows["geo-1"]["truncated"], rows["geo-1"]["finish_reason"]) == (False, "stop")
    told = [b for b in judge_server.requests if TRUNCATED_NOTE in last_user_text(b)]
    assert len(told) == 1 and "The capital of Peru is" in last_user_text(told[0])
    # the note sits after the answer block, not inside it where the answer could have written it
    assert last_user_text(told[0]).index(TRUNCATED_NOTE) > last_user_text(told[0]).index("</answer>")
    assert "1 answer cut off at max_tokens" in result.output

    assert invoke("report", "r1").exit_code == 0
    card = json.loads((project / "reports/runs/r1/scorecard.json").read_text())
    assert {a["area"]: a["truncated"] for a in card["areas"]} == {"chemistry": 0, "geography": 1, "math": 0}
    assert card["overall"]["truncated"] == 1
    markdown = (project / "reports/runs/r1/scorecard.md").read_text()
    assert "1 answers cut off at max_tokens" in markdown and "| cut off |" in markdown
    html = (project / "reports/runs/r1/scorecard.html").read_text()
    assert "cut off at max_tokens" in html and '<th class="num">cut off</th>' in html


def test_anthropic_stop_reason_max_tokens_counts_as_truncated(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    fake_anthropic.responder = lambda body: Reply("Lima is the cap", finish_reason="max_tokens")
    endpoint = Endpoint(provider="anthropic", base_url=fake_anthropic.url, model="claude-test", max_retries=0)
    completion = _complete(AnthropicProvider("claude", endpoint))
    assert completion.finish_reason == "max_tokens" and completion.text == "Lima is the cap"


def test_a_truncated_answer_is_not_given_the_cached_verdict_of_the_same_text_whole(
    project, model_server, judge_server
):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude").exit_code == 0
    assert judge_server.count() == 5
    model_server.responder = lambda body: Reply(ANSWERS[last_user_text(body)], finish_reason="length")
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude").exit_code == 0
    assert judge_server.count() == 10  # same texts, but now the judge must know they were cut off


# 2. reasoning ------------------------------------------------------------------------------------------


def _complete(provider):
    async def go():
        try:
            return await provider.complete(CompletionRequest(messages=({"role": "user", "content": "hi"},)))
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_openai_reasoning_content_is_read_apart_from_the_text(fake_openai):
    fake_openai.responder = lambda body: Reply("Paris.", reasoning="France's capital is Paris.")
    completion = _complete(OpenAIProvider("local", Endpoint(base_url=fake_openai.url, model="m")))
    assert (completion.text, completion.reasoning) == ("Paris.", "France's capital is Paris.")
    assert completion.finish_reason == "stop"


def test_anthropic_thinking_blocks_are_read_apart_from_the_text(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    fake_anthropic.responder = lambda body: Reply("Paris.", reasoning="Capital of France: Paris.")
    endpoint = Endpoint(provider="anthropic", base_url=fake_anthropic.url, model="claude-test")
    completion = _complete(AnthropicProvider("claude", endpoint))
    assert (completion.text, completion.reasoning) == ("Paris.", "Capital of France: Paris.")
    assert completion.finish_reason == "end_turn"


def test_think_blocks_and_api_reasoning_are_stored_but_not_graded(project, model_server, judge_server):
    def answer(body):
        question = last_user_text(body)
        if question == "Capital of Peru?":  # the thoughts name the reference: graded, they would score 5
            return "<think>Lima? No, I will say Cusco.</think>\n\nCusco."
        return Reply(ANSWERS[question], reasoning="easy one <img src=x onerror=alert(1)>")

    model_server.responder = answer
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    rows = results(project, "r1")
    assert (rows["geo-2"]["answer"], rows["geo-2"]["score"]) == ("Cusco.", 1)
    assert rows["geo-2"]["reasoning"] == "Lima? No, I will say Cusco."
    assert (rows["geo-1"]["answer"], rows["geo-1"]["reasoning"]) == (
        "Paris.",
        "easy one <img src=x onerror=alert(1)>",
    )
    graded = "\n".join(last_user_text(b) for b in judge_server.requests)
    assert "<think>" not in graded and "easy one" not in graded and "I will say" not in graded
    assert invoke("report", "r1").exit_code == 0
    html = (project / "reports/runs/r1/scorecard.html").read_text()
    assert "reasoning (not graded)" in html and "Lima? No, I will say Cusco." in html
    assert "easy one &lt;img src=x" in html and "<img src=x" not in html  # model text is never markup


def test_reasoning_keep_grades_the_text_as_sent(project, model_server, judge_server):
    write_config(project, {"base_url": model_server.url, "reasoning": "keep"}, {"base_url": judge_server.url})
    model_server.responder = lambda body: "<think>Lima? No, I will say Cusco.</think>\n\nCusco."
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    row = results(project, "r1")["geo-2"]
    assert row["answer"].startswith("<think>Lima?") and row["reasoning"] is None and row["score"] == 5


@pytest.mark.parametrize(
    ("text", "answer", "reasoning"),
    [
        ("<think>a</think>\n\nParis.", "Paris.", "a"),
        ("thinking inside a block the template opened</think> Paris", "Paris", "thinking inside a block the template opened"),
        ("<thinking>x</thinking>A <reasoning>y</reasoning>B", "A B", "x\n\ny"),
        ("<think>ran out of tokens while thin", "", "ran out of tokens while thin"),
        ("  Paris, no thoughts  ", "  Paris, no thoughts  ", None),
        ("<THINK>  </THINK>Paris", "Paris", None),
    ],
)  # fmt: skip
def test_split_reasoning(text, answer, reasoning):
    assert split_reasoning(text) == (answer, reasoning)


# 3. subsets ---------------------------------------------------------------------------------------------


def manifest_row(project: Path, run_id: str) -> tuple[dict, list[str], str]:
    config, tags, status = (
        db(project)
        .execute("SELECT config_json, tags_json, status FROM runs WHERE run_id = ?", (run_id,))
        .fetchone()
    )
    return json.loads(config), json.loads(tags), status


def test_area_and_item_tag_run_a_subset_recorded_with_the_run(project, model_server, judge_server):
    result = invoke(
        "run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1",
        "--area", "geography", "--area", "chemistry", "--item-tag", "hard", "--tag", "nightly",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(last_user_text(b) for b in model_server.requests) == ["Capital of Peru?", "Symbol of gold?"]
    assert set(results(project, "r1")) == {"geo-2", "chem-1"}
    config, tags, _ = manifest_row(project, "r1")
    assert config["selection"] == {"areas": ["geography", "chemistry"], "item_tags": ["hard"], "limit": None}
    assert tags == ["nightly"]  # --tag still labels the run
    assert invoke("report", "r1").exit_code == 0
    card = json.loads((project / "reports/runs/r1/scorecard.json").read_text())
    assert card["selection"]["description"] == "areas geography, chemistry · item tags hard"
    assert "subset" in (project / "reports/runs/r1/scorecard.md").read_text().lower()
    assert 'id="subset-banner"' in (project / "reports/runs/r1/scorecard.html").read_text()


def test_limit_asks_the_first_n_matching_items(project, model_server):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1", "--item-tag", "easy",
                  "--limit", "1").exit_code == 0  # fmt: skip
    assert [last_user_text(b) for b in model_server.requests] == ["Capital of France?"]
    assert manifest_row(project, "r1")[0]["selection"]["limit"] == 1


def test_a_whole_suite_run_records_no_selection(project):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    assert "selection" not in manifest_row(project, "r1")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--area", "geografy"), "no area 'geografy'; areas: chemistry, geography, math"),
        (("--item-tag", "medium"), "no item tagged 'medium'; tags: easy, hard"),
        (("--area", "math", "--item-tag", "hard"), "no item is in area math and tagged hard"),
    ],
)
def test_a_selection_that_matches_nothing_is_one_line_and_asks_nothing(project, model_server, args, message):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert model_server.count() == 0 and not (project / "reports").exists()


def test_resume_keeps_the_selection(project, model_server, judge_server):
    model_server.inject(Fault("server_error"))  # max_retries 0: the first math item loses its answer
    args = ("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1", "--area", "math")
    assert invoke(*args).exit_code == 0
    assert model_server.count() == 2
    result = invoke("run", "--resume", "r1")
    assert result.exit_code == 0, result.output
    assert model_server.count() == 3  # only the failed math item, not the rest of the suite
    assert manifest_row(project, "r1")[2] == "finished"
    assert set(results(project, "r1")) == {"math-1", "math-2"}
    refused = invoke("run", "--resume", "r1", "--area", "geography")
    assert refused.exit_code == 2 and "--resume keeps them" in refused.output


# 4. dry run ---------------------------------------------------------------------------------------------

PRICES = {"price_in_per_mtok": 1.0, "price_out_per_mtok": 10.0}


def plan_line(output: str, who: str) -> tuple[int, int, int, float | None]:
    """(calls, tokens in, tokens out, cost) from the dry run's line of one endpoint."""
    line = next(line for line in output.splitlines() if line.startswith(who))
    numbers = re.search(
        r": (\d+) calls? · ≈ (\d+) tokens in · ≤ (\d+) tokens out · (?:≈ \$([\d.]+)|no prices)", line
    )
    assert numbers, line
    calls, tokens_in, tokens_out, cost = numbers.groups()
    return int(calls), int(tokens_in), int(tokens_out), None if cost is None else float(cost)


def test_dry_run_prints_calls_and_estimated_cost_and_calls_nothing(project, model_server, judge_server):
    write_config(
        project,
        {"base_url": model_server.url, "max_tokens": 100, **PRICES},
        {
            "base_url": judge_server.url,
            "max_tokens": 200,
            "price_in_per_mtok": 3.0,
            "price_out_per_mtok": 15.0,
        },
    )
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--samples", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert model_server.count() == 0 and judge_server.count() == 0
    assert not (project / "reports").exists()  # no store, no run
    calls, tokens_in, tokens_out, cost = plan_line(result.output, "model local (qwen)")
    assert (calls, tokens_out) == (10, 1000)  # 5 items x 2 samples, at max_tokens
    assert cost == pytest.approx((tokens_in * 1.0 + 1000 * 10.0) / 1e6, abs=1e-4)
    calls, judge_in, judge_out, judge_cost = plan_line(result.output, "judge claude (claude-test)")
    assert (calls, judge_out) == (10, 2000)
    # the judge reads the rubric, the question and an answer as long as max_tokens allows: > 100 tokens each
    assert judge_in > 10 * 100
    assert judge_cost == pytest.approx((judge_in * 3.0 + 2000 * 15.0) / 1e6, abs=1e-4)
    total = float(re.search(r"estimated cost: ≈ \$([\d.]+)", result.output).group(1))
    assert total == pytest.approx(cost + judge_cost, abs=2e-4)
    assert "estimate" in result.output and "characters/4" in result.output


def test_dry_run_of_a_resume_counts_only_the_work_left(project, model_server, judge_server):
    model_server.inject(Fault("server_error"))
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    asked, judged = model_server.count(), judge_server.count()
    result = invoke("run", "--resume", "r1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert plan_line(result.output, "model local")[0] == 1
    assert plan_line(result.output, "judge claude")[0] == 1
    assert "estimated cost: unknown" in result.output  # no prices configured
    assert (model_server.count(), judge_server.count()) == (asked, judged)


def test_dry_run_with_the_offline_judge_counts_no_judge_calls(project):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "judge offline (offline-reference): 5 gradings, offline: no calls, free" in result.output


# 5. cost limit ------------------------------------------------------------------------------------------


def test_max_cost_stops_before_the_limit_and_the_run_resumes(project, model_server, judge_server):
    # Each answer: 90 words = 90 tokens at $10/Mtok out = $0.0009; its bound at max_tokens 100 is $0.001.
    # The judge is free. After two answers ($0.0018) a third could reach $0.0028 > $0.0025: refused.
    write_config(
        project,
        {"base_url": model_server.url, "max_tokens": 100, "max_concurrency": 1,
         "price_in_per_mtok": 0.0, "price_out_per_mtok": 10.0},
        {"base_url": judge_server.url, "price_in_per_mtok": 0.0, "price_out_per_mtok": 0.0},
    )  # fmt: skip
    model_server.responder = lambda body: ANSWERS[last_user_text(body)] + " because" * 89
    result = invoke(
        "run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1", "--max-cost", "0.0025"
    )
    assert result.exit_code == 2
    assert "stopped by --max-cost 0.0025" in result.output and "evals run --resume r1" in result.output
    assert "Traceback" not in result.output
    assert model_server.count() == 2 and judge_server.count() == 2
    spent = db(project).execute("SELECT sum(tokens_out) FROM answers").fetchone()[0] * 10.0 / 1e6
    assert spent <= 0.0025
    assert manifest_row(project, "r1")[2] == "interrupted"
    assert len(results(project, "r1")) == 5  # exported, with the unasked items as "not answered"

    result = invoke("run", "--resume", "r1", "--max-cost", "1")
    assert result.exit_code == 0, result.output
    assert model_server.count() == 5 and manifest_row(project, "r1")[2] == "finished"


def test_max_cost_holds_back_a_judgment_that_could_cross_it(project, model_server, judge_server):
    # A judgment's bound: 2 attempts x 1024 tokens at $1000/Mtok = $2.05 > the $1 limit; answers are free.
    write_config(
        project,
        {"base_url": model_server.url, "price_in_per_mtok": 0.0, "price_out_per_mtok": 0.0},
        {"base_url": judge_server.url, "price_in_per_mtok": 0.0, "price_out_per_mtok": 1000.0},
    )
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1", "--max-cost", "1")
    assert result.exit_code == 2 and "--resume r1" in result.output
    assert judge_server.count() == 0 and model_server.count() >= 1
    assert invoke("run", "--resume", "r1").exit_code == 0
    assert judge_server.count() == 5 and model_server.count() == 5  # stored answers were not asked again


def test_max_cost_without_prices_is_a_one_line_error_before_any_call(project, model_server):
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--max-cost", "5")
    assert result.exit_code == 2
    assert (
        "--max-cost needs token prices" in result.output
        and "model 'local' and judge 'claude'" in result.output
    )
    assert model_server.count() == 0
    assert db(project).execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_max_cost_holds_concurrent_calls_so_together_they_stay_under_it(project, model_server, judge_server):
    write_config(
        project,
        {"base_url": model_server.url, "max_tokens": 100, "max_concurrency": 4,
         "price_in_per_mtok": 0.0, "price_out_per_mtok": 10.0},
        {"base_url": judge_server.url, "price_in_per_mtok": 0.0, "price_out_per_mtok": 0.0},
    )  # fmt: skip
    model_server.responder = lambda body: " ".join(["word"] * 100)  # every answer uses its whole bound
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--max-cost", "0.0035")
    assert result.exit_code == 2
    assert model_server.count() == 3  # four in flight would have spent $0.004
    spent = db(project).execute("SELECT sum(tokens_out) FROM answers").fetchone()[0] * 10.0 / 1e6
    assert spent <= 0.0035


def test_dry_run_warns_when_the_estimate_exceeds_max_cost(project, model_server):
    write_config(
        project, {"base_url": model_server.url, **PRICES}, {"price_in_per_mtok": 1, "price_out_per_mtok": 1}
    )
    result = invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--dry-run", "--max-cost", "0.0001")
    assert result.exit_code == 0, result.output
    assert "the estimate exceeds --max-cost 0.0001" in result.output
    assert model_server.count() == 0


def test_a_subset_run_is_not_the_next_full_runs_default_baseline(project):
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    quick = ("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r2", "--limit", "1")
    assert invoke(*quick).exit_code == 0
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r3").exit_code == 0
    assert invoke("report", "r3").exit_code == 0
    card = json.loads((project / "reports/runs/r3/scorecard.json").read_text())
    assert card["baseline"]["run_id"] == "r1"
