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
from evals.fakes import FakeAnthropic, FakeOpenAI, Reply, last_user_text
from evals.judging import TRUNCATED_NOTE
from evals.providers.anthropic import AnthropicProvider
from evals.providers.openai_compat import OpenAIProvider
from evals.reasoning import split_reasoning
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


def grade(body):
    """A fake judge: 5 when the reference is in the answer block, else 1."""
    text = last_user_text(body)
    answer = re.search(r"<answer>(.*?)</answer>", text, re.S)
    reference = re.search(r"<reference>(.*?)</reference>", text, re.S)
    assert answer and reference
    hit = reference.group(1).strip().lower() in answer.group(1).lower()
    return {"rationale": "matches" if hit else "wrong", "score": 5 if hit else 1}


@pytest.fixture
def model_server():
    with FakeOpenAI(
        lambda body: ANSWERS.get(last_user_text(body), "no idea"), model_id="qwen-test"
    ) as server:
        yield server


@pytest.fixture
def judge_server():
    with FakeAnthropic(grade, model_id="claude-test") as server:
        yield server


def write_config(root: Path, model: dict, judge: dict) -> None:
    config = {
        "models": {"local": {"model": "qwen", "max_concurrency": 2, "max_retries": 0, **model}},
        "judges": {"claude": {"provider": "anthropic", "model": "claude-test", "max_retries": 0, **judge}},
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
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
        return Reply(ANSWERS[question], reasoning="easy one")

    model_server.responder = answer
    assert invoke("run", "--suite", "suite.jsonl", "--judge", "claude", "--run-id", "r1").exit_code == 0
    rows = results(project, "r1")
    assert (rows["geo-2"]["answer"], rows["geo-2"]["score"]) == ("Cusco.", 1)
    assert rows["geo-2"]["reasoning"] == "Lima? No, I will say Cusco."
    assert (rows["geo-1"]["answer"], rows["geo-1"]["reasoning"]) == ("Paris.", "easy one")
    graded = "\n".join(last_user_text(b) for b in judge_server.requests)
    assert "<think>" not in graded and "easy one" not in graded and "I will say" not in graded


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
