"""Exit codes mean what they say (issue 19.6): a judge whose first verdicts are all unparseable stops the run;
a run with no score at all never exits 0; a tool call is an answer error, not an empty answer; answers are
capped before they are stored or judged. Every case runs the CLI against fake servers over real HTTP."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from evals.cli import main
from evals.cli.run import _execute
from evals.config import load_config
from evals.errors import EvalsError
from evals.fakes import FakeAnthropic, FakeOpenAI, FakeServer, Fault, Reply, last_user_text, text_reply
from evals.judge.judging import TRUNCATED_NOTE
from evals.judge.reasoning import separate
from evals.outbound.providers.health import FAIL_AFTER
from evals.records import MAX_ANSWER_CHARS, Completion
from evals.store import Store
from evals.suites import load_suite

JUDGES = Path(__file__).parent.parent / "judges"
KEY = "sk-ant-test-round3"
TOOL_ERROR = "the model answered with a tool call, not text"
SERVERS: dict[str, type[FakeServer]] = {"openai": FakeOpenAI, "anthropic": FakeAnthropic}


def suite(n: int) -> list[dict[str, str]]:
    return [{"id": f"q{i:02}", "area": "math", "question": f"What is {i} + 1?", "reference": str(i + 1)}
            for i in range(n)]  # fmt: skip


def answer(question: str) -> str:
    return str(int(question.split()[2]) + 1)


def good_verdict(body: dict[str, Any]) -> str | dict[str, Any]:
    """A valid verdict in whatever mode was asked: a structured object, or text ending 'SCORE: N'."""
    if body.get("response_format") or body.get("tools"):
        return {"rationale": "matches the reference", "score": 4}
    return "matches the reference\nSCORE: 4"


def write_project(
    tmp_path: Path,
    model: FakeServer,
    judge: FakeServer | None,
    n: int,
    model_settings: dict[str, Any] | None = None,
    judge_settings: dict[str, Any] | None = None,
) -> None:
    provider = "anthropic" if isinstance(model, FakeAnthropic) else "openai"
    config: dict[str, Any] = {
        "models": {"local": {"provider": provider, "base_url": model.url, "model": "m", "max_retries": 0,
                             "max_concurrency": 1, **(model_settings or {})}},
        "judges_dir": str(JUDGES),
        "canary": {"enabled": False},
    }  # fmt: skip
    if judge is not None:
        kind = "anthropic" if isinstance(judge, FakeAnthropic) else "openai"
        config["judges"] = {"lj": {"provider": kind, "base_url": judge.url, "model": "j", "max_retries": 0,
                                   "max_concurrency": 1, **(judge_settings or {})}}  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in suite(n)))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run(judge: str = "lj", run_id: str = "r1", *more: str) -> Result:
    return invoke("run", "--suite", "suite.jsonl", "--judge", judge, "--run-id", run_id, *more)


def error_line(result: Result) -> str:
    """The one error line a failed command ends with (progress lines may come before it on stderr)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def config_problem(result: Result) -> str:
    """The one problem of a bad evals.yaml (``file:line: field: what is wrong``), under its one header."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[:1] == ["error: invalid config:"], result.stderr
    [problem] = result.stderr.strip().splitlines()[1:]
    return problem.strip()


def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "reports" / "evals.db")


def status(tmp_path: Path, run_id: str = "r1") -> str:
    with db(tmp_path) as conn:
        return conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]


def scored(tmp_path: Path, run_id: str = "r1") -> int:
    with db(tmp_path) as conn:
        return conn.execute(
            "SELECT count(*) FROM judgments WHERE run_id = ? AND score IS NOT NULL", (run_id,)
        ).fetchone()[0]


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


# 1. A judge whose first verdicts are all unparseable stops the run, whatever each verdict's fault.

UNPARSEABLE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "prose": lambda body: "I would rather not grade this answer.",
    "score out of range": lambda body: {"rationale": "fine", "score": 9},
    "score as text": lambda body: {"rationale": "fine", "score": "4"},
    "no rationale": lambda body: {"score": 4},
    "broken json fence": lambda body: '```json\n{"rationale": "fine", "score": 4\n```',
    "empty reply": lambda body: "",
    "score line not a number": lambda body: "fine\nSCORE: four",
    "json without a score": lambda body: {"rationale": "fine"},
    "score 7": lambda body: {"rationale": "fine", "score": 7},
    "score 0 in text": lambda body: "bad\nSCORE: 0",
    "score 'five'": lambda body: {"rationale": "fine", "score": "five"},
    "score true": lambda body: {"rationale": "fine", "score": True},
    "score 3.5": lambda body: {"rationale": "fine", "score": 3.5},
    "score null": lambda body: {"rationale": "fine", "score": None},
    "truncated json": lambda body: '{"rationale": "the answer matches the refer',
    "a json list": lambda body: '[{"rationale": "fine", "score": 4}]',
    "score line without rationale": lambda body: "SCORE: 4",
    "whitespace only": lambda body: "  \n\t ",
}


def rotating() -> Callable[[dict[str, Any]], Any]:
    """Each call fails to parse in the next way: the parse errors differ, and still every verdict is bad."""
    kinds = itertools.cycle(UNPARSEABLE.values())
    return lambda body: next(kinds)(body)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("shape", [*UNPARSEABLE, "a different fault each time"])
def test_a_judge_whose_first_verdicts_are_all_unparseable_stops_the_run_resumably(tmp_path, provider, shape):
    responder = rotating() if shape not in UNPARSEABLE else UNPARSEABLE[shape]
    with FakeOpenAI(text_reply(answer)) as model, SERVERS[provider](responder) as judge:
        write_project(tmp_path, model, judge, 20)

        line = error_line(run())

        assert f"judge 'lj': its first {FAIL_AFTER} verdicts were all unparseable" in line
        assert "'structured: text'" in line and "evals run --resume r1" in line
        assert judge.count() == 2 * FAIL_AFTER, "each bad verdict asked once more, then the run stopped"
        assert status(tmp_path) == "interrupted" and scored(tmp_path) == 0
        assert (tmp_path / "reports" / "runs" / "r1" / "results.jsonl").exists()

        with db(tmp_path) as conn:
            answered = conn.execute("SELECT count(*) FROM answers WHERE error IS NULL").fetchone()[0]
        judge.responder = good_verdict  # fixed: the resumed run grades everything, answers kept
        model.clear()
        result = invoke("run", "--resume", "r1")
    assert result.exit_code == 0, result.output
    assert status(tmp_path) == "finished" and scored(tmp_path) == 20
    assert 0 < answered and model.count() == 20 - answered, "stored answers are not asked again"


def test_a_text_judge_is_told_to_try_structured_output(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(lambda body: "looks fine to me") as judge:
        write_project(tmp_path, model, judge, 12, judge_settings={"structured": "text"})
        line = error_line(run())
    assert "unparseable" in line and "'structured: json_schema'" in line and "--resume r1" in line


def test_one_parsed_verdict_among_the_first_keeps_the_run_going(tmp_path):
    calls = itertools.count(1)

    def late(body):  # the first 7 gradings (two calls each) are unparseable, then the judge recovers
        return "no idea" if next(calls) <= 2 * (FAIL_AFTER - 1) else good_verdict(body)

    with FakeOpenAI(text_reply(answer)) as model, FakeAnthropic(late) as judge:
        write_project(tmp_path, model, judge, 20)
        result = run()
    assert result.exit_code == 0, result.output
    assert status(tmp_path) == "finished" and scored(tmp_path) == 20 - (FAIL_AFTER - 1)


def test_a_refused_output_format_steps_down_and_is_not_an_unparseable_verdict(tmp_path):
    # structured: auto, on a server that refuses both structured modes: 20 items end judged in text.
    with (
        FakeOpenAI(text_reply(answer)) as model,
        FakeOpenAI(good_verdict, refuses=("json_schema", "json_object")) as judge,
    ):
        write_project(tmp_path, model, judge, 20, judge_settings={"structured": "auto"})
        result = run()
    assert result.exit_code == 0, result.output
    assert scored(tmp_path) == 20


def test_fail_after_zero_lets_every_verdict_be_asked_and_the_run_still_fails(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(lambda body: "no verdict here") as judge:
        write_project(tmp_path, model, judge, 10)
        line = error_line(run("lj", "r1", "--fail-after", "0"))
        assert judge.count() == 2 * 10
    assert "ended with no score: every verdict was unparseable (10 answers)" in line
    assert status(tmp_path) == "finished"


# 2. A run that ends with no score at all never exits 0.


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_judge_outage_on_a_small_suite_ends_in_exit_2_and_resumes(tmp_path, provider):
    with FakeOpenAI(text_reply(answer)) as model, SERVERS[provider](good_verdict) as judge:
        judge.inject(*[Fault("server_error", status=503)] * 4)
        write_project(tmp_path, model, judge, 4)

        line = error_line(run())
        assert "run r1 ended with no score: every judge call failed (4 answers; the first:" in line
        assert "503" in line and "evals run --resume r1" in line
        assert status(tmp_path) == "finished" and scored(tmp_path) == 0

        result = invoke("run", "--resume", "r1")  # the judge is back
    assert result.exit_code == 0, result.output
    assert scored(tmp_path) == 4


def test_a_judge_failing_a_different_way_each_call_ends_in_exit_2(tmp_path):
    faults = [Fault("server_error", status=s) for s in (503, 400, 502, 404, 500, 403, 529, 422, 501, 409)]
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(good_verdict) as judge:
        judge.inject(*faults)  # no two alike: the fail-fast watch never fires, every item fails
        write_project(tmp_path, model, judge, 10)
        line = error_line(run())
    assert "ended with no score: every judge call failed (10 answers" in line


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_few_unparseable_verdicts_and_nothing_else_end_in_exit_2(tmp_path, provider):
    with FakeOpenAI(text_reply(answer)) as model, SERVERS[provider](rotating()) as judge:
        write_project(tmp_path, model, judge, 3)
        line = error_line(run())
    assert "ended with no score: every verdict was unparseable (3 answers)" in line
    assert "'structured:'" in line and "--resume r1" in line


def test_failed_calls_and_unparseable_verdicts_together_are_counted(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(lambda body: "no verdict") as judge:
        judge.inject(Fault("server_error", status=503), Fault("server_error", status=503))
        write_project(tmp_path, model, judge, 4)
        line = error_line(run())
    assert "none of 4 answers was scored (2 judge calls failed, 2 verdicts unparseable;" in line


def test_an_offline_judge_without_references_ends_in_exit_2(tmp_path):
    with FakeOpenAI(text_reply(lambda q: "4")) as model:
        write_project(tmp_path, model, None, 2)
        (tmp_path / "suite.jsonl").write_text(
            "".join(json.dumps({"id": f"q{i}", "area": "a", "question": f"q {i}?"}) + "\n" for i in range(2))
        )
        line = error_line(run("offline"))
    assert "none of 2 answers was scored (2 not graded; e.g." in line and "reference" in line


@pytest.mark.parametrize(("down", "n"), [("refused", 3), ("refused", 20), ("a different status each", 5)])
def test_a_run_whose_model_never_answers_exits_2(tmp_path, down, n):
    with FakeOpenAI(good_verdict) as judge:
        with FakeOpenAI(text_reply(answer)) as model:
            write_project(tmp_path, model, judge, n)
            if down != "refused":
                model.inject(*[Fault("server_error", status=s) for s in (503, 400, 502, 404, 500)])
                line = error_line(run())
        if down == "refused":  # the server is gone: every connection refused
            line = error_line(run())
    assert (
        "every one of" in line or f"the first {FAIL_AFTER} calls all failed" in line
    ) and "--resume r1" in line
    assert scored(tmp_path) == 0 and judge.count() == 0


def test_every_worker_of_a_run_with_no_score_exits_2(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(good_verdict) as judge:
        judge.inject(*[Fault("server_error", status=503)] * 3)
        write_project(tmp_path, model, judge, 3)
        assert run("lj", "w1", "--plan-only").exit_code == 0
        finisher = error_line(invoke("worker", "w1"))
        assert "run w1 ended with no score: every judge call failed (3 answers" in finisher
        late = error_line(invoke("worker", "w1"))  # a worker starting after the finisher (a retried pod)
        assert "run w1 ended with no score" in late and "evals run --resume w1" in late and "?." not in late
        assert invoke("run", "--resume", "w1").exit_code == 0  # the judge is back
        assert invoke("worker", "w1").exit_code == 0
    assert scored(tmp_path, "w1") == 3


def test_a_rerun_whose_judge_never_scores_exits_2_and_resumes(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeAnthropic(good_verdict) as judge:
        write_project(tmp_path, model, judge, 4)
        assert run().exit_code == 0

        judge.responder = lambda body: "I will not grade."
        line = error_line(invoke("judge", "rerun", "r1", "--judge", "lj", "--run-id", "r2", "--repeats", "1"))
        assert "run r2 ended with no score: every verdict was unparseable" in line
        assert "evals run --resume r2" in line

        judge.responder = good_verdict
        result = invoke("run", "--resume", "r2")
    assert result.exit_code == 0, result.output
    assert scored(tmp_path, "r2") == 4


def test_a_resume_that_still_scores_nothing_exits_2_again(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(lambda body: "nope") as judge:
        write_project(tmp_path, model, judge, 3)
        error_line(run())
        line = error_line(invoke("run", "--resume", "r1"))
    assert "run r1 ended with no score" in line


def test_the_demo_hint_replaces_resume_when_no_score(tmp_path):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(good_verdict) as judge:
        judge.inject(*[Fault("server_error", status=503)] * 2)
        write_project(tmp_path, model, judge, 2)
        config = load_config(tmp_path / "evals.yaml")
        name, endpoint = config.model("local")
        judge_name, judge_endpoint = config.judge("lj")
        with Store(tmp_path / "reports") as store, pytest.raises(EvalsError) as caught:
            _execute(
                config, store, load_suite(tmp_path / "suite.jsonl"), name, endpoint, judge_name,
                judge_endpoint, 1, (), None, None, again="run evals demo again",
            )  # fmt: skip
    message = str(caught.value)
    assert "ended with no score: every judge call failed" in message
    assert message.endswith("run evals demo again") and "--resume" not in message


# 3. A tool call instead of text is an answer error, never an empty answer that gets judged.

TOOL_REPLIES: dict[str, Reply] = {
    "a bare tool call": Reply("", tool_call=("search", {"query": "the answer"})),
    "text, then a tool call": Reply("Let me look that up.", tool_call=("search", {"query": "x"})),
    "a finish reason saying so": Reply(""),  # finish reason filled in per SDK below
}
TOOL_FINISH = {"openai": "tool_calls", "anthropic": "tool_use"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("shape", list(TOOL_REPLIES))
def test_a_tool_call_instead_of_text_is_an_answer_error(tmp_path, provider, shape):
    reply = TOOL_REPLIES[shape]
    if shape == "a finish reason saying so":
        reply = Reply("", finish_reason=TOOL_FINISH[provider])

    def model_reply(body):  # the first two items get a tool call; the others a real answer
        question = last_user_text(body)
        return reply if question.split()[2] in ("0", "1") else answer(question)

    with SERVERS[provider](model_reply) as model, FakeAnthropic(good_verdict) as judge:
        write_project(tmp_path, model, judge, 5, model_settings={"max_retries": 2})
        result = run()
        assert model.count() == 5, "a tool call is not retried"
        assert judge.count() == 3, "the two tool calls are not judged as empty answers"
        assert all("Let me look that up" not in last_user_text(b) for b in judge.requests)
    assert result.exit_code == 0, result.output
    with db(tmp_path) as conn:
        errors = dict(conn.execute("SELECT item_id, error FROM answers WHERE text IS NULL"))
    assert set(errors) == {"q00", "q01"}
    assert all(error == f"model 'local': {TOOL_ERROR}" for error in errors.values())
    rows = [
        json.loads(line) for line in (tmp_path / "reports/runs/r1/results.jsonl").read_text().splitlines()
    ]
    assert {r["id"]: r["error_kind"] for r in rows if r["error"]} == {"q00": "answer", "q01": "answer"}


OTHER_TOOL_SHAPES = [
    ("openai", Reply("", tool_call=("search", {"q": "x"}), tool_shape="function_call")),  # the older field
    ("openai", Reply("Looking.", tool_call=("search", {"q": "x"}), tool_shape="function_call", finish_reason="stop")),
    ("openai", Reply("", tool_call=("search", {"q": "x"}), finish_reason="stop")),  # finish reason not saying so
    ("anthropic", Reply("", tool_call=("web_search", {"query": "x"}), tool_shape="server_tool_use")),
    ("anthropic", Reply("Let me check.", tool_call=("lookup", {"q": "x"}), tool_shape="mcp_tool_use")),
    ("anthropic", Reply("Let me check.", tool_call=("lookup", {"q": "x"}), finish_reason="end_turn")),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "reply"), OTHER_TOOL_SHAPES)
def test_every_shape_of_tool_call_is_an_answer_error(tmp_path, provider, reply):
    def model_reply(body):  # the first item gets the tool call; the others a real answer
        question = last_user_text(body)
        return reply if question.split()[2] == "0" else answer(question)

    with SERVERS[provider](model_reply) as model, FakeAnthropic(good_verdict) as judge:
        write_project(tmp_path, model, judge, 3)
        result = run()
        assert judge.count() == 2, "the tool call is not judged as an (empty or partial) answer"
    assert result.exit_code == 0, result.output
    with db(tmp_path) as conn:
        errors = dict(conn.execute("SELECT item_id, error FROM answers WHERE text IS NULL"))
    assert errors == {"q00": f"model 'local': {TOOL_ERROR}"}


def test_openai_tool_call_arguments_that_are_not_json_are_an_answer_error_too(tmp_path):
    reply = Reply("", tool_call=("search", '{"query": "unterminated'))
    with FakeOpenAI(lambda body: reply) as model:
        write_project(tmp_path, model, None, 3)
        line = error_line(run("offline"))
    assert "every one of 3 model calls failed" in line
    with db(tmp_path) as conn:
        errors = {row[0] for row in conn.execute("SELECT error FROM answers")}
    assert errors == {f"model 'local': {TOOL_ERROR}"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_model_that_always_calls_tools_stops_the_run_with_what_to_change(tmp_path, provider):
    with SERVERS[provider](lambda body: Reply("", tool_call=("lookup", {"q": "x"}))) as model:
        write_project(tmp_path, model, None, 20)
        line = error_line(run("offline"))
        assert model.count() == FAIL_AFTER
    assert f"the first {FAIL_AFTER} calls all failed with the same error: {TOOL_ERROR}" in line
    assert "tool-call parsing" in line and "--resume r1" in line
    assert status(tmp_path) == "interrupted"


# 4. Answers are capped before they are stored or sent to the judge, and marked cut off.

TEN_MB = 10_000_000


def answer_block(body: dict[str, Any]) -> str:
    found = re.search(r"<answer>\n(.*)\n</answer>", last_user_text(body), re.S)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_10_mb_answer_is_capped_marked_and_the_judge_is_told(tmp_path, provider):
    huge = "lorem ipsum " * (TEN_MB // 12)
    with SERVERS[provider](lambda body: huge) as model, FakeOpenAI(good_verdict) as judge:
        write_project(tmp_path, model, judge, 2)
        result = run()
        sent = [answer_block(body) for body in judge.requests]
        told = [TRUNCATED_NOTE in last_user_text(body) for body in judge.requests]
    assert result.exit_code == 0, result.output
    assert len(sent) == 2 and all(text == huge[:MAX_ANSWER_CHARS] for text in sent)
    assert all(told)
    with db(tmp_path) as conn:
        stored = conn.execute("SELECT length(text), truncated, finish_reason FROM answers").fetchall()
    assert {row[:2] for row in stored} == {(MAX_ANSWER_CHARS, 1)}
    assert all(row[2] in ("stop", "end_turn") for row in stored), "the server's own finish reason is kept"
    assert (tmp_path / "reports" / "evals.db").stat().st_size < TEN_MB // 10
    assert "2 answers longer than max_answer_chars" in result.output
    rows = [
        json.loads(line) for line in (tmp_path / "reports/runs/r1/results.jsonl").read_text().splitlines()
    ]
    assert all(r["truncated"] and len(r["answer"]) == MAX_ANSWER_CHARS for r in rows)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_max_answer_chars_caps_answers_and_reasoning_per_model(tmp_path, provider):
    def reply(body):
        n = int(last_user_text(body).split()[2])  # answers of 99, 100 and 101 characters
        return Reply("x" * (99 + n), reasoning="thinking " * 100_000)

    with SERVERS[provider](reply) as model, FakeAnthropic(good_verdict) as judge:
        write_project(tmp_path, model, judge, 3, model_settings={"max_answer_chars": 100})
        result = run()
        sent = sorted(len(answer_block(body)) for body in judge.requests)
        told = sorted(TRUNCATED_NOTE in last_user_text(body) for body in judge.requests)
    assert result.exit_code == 0, result.output
    assert sent == [99, 100, 100] and told == [False, False, True]
    with db(tmp_path) as conn:
        stored = conn.execute(
            "SELECT item_id, length(text), truncated, length(reasoning) FROM answers"
        ).fetchall()
    assert sorted(stored) == [("q00", 99, 0, 100), ("q01", 100, 0, 100), ("q02", 100, 1, 100)]
    config = json.loads(db(tmp_path).execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["model"]["max_answer_chars"] == 100, "the cap is kept with the run"


@pytest.mark.parametrize(
    "reply",
    [
        lambda body: "word " * (TEN_MB // 5) + "\nSCORE: 4",  # a verdict after 10 MB of reasons
        lambda body: {"rationale": "x" * TEN_MB, "score": 4},
        lambda body: {"rationale": "fine", "score": "x" * TEN_MB},  # unparseable, quoting its score
        lambda body: "word " * (TEN_MB // 5),  # unparseable: no verdict at all
    ],
)
def test_a_10_mb_verdict_is_capped_before_it_is_stored(tmp_path, reply):
    with FakeOpenAI(text_reply(answer)) as model, FakeOpenAI(reply) as judge:
        write_project(tmp_path, model, judge, 2)
        result = run("lj", "r1", "--fail-after", "0")
    assert result.exit_code in (0, 2) and "Traceback" not in result.output
    with db(tmp_path) as conn:
        stored = conn.execute(
            "SELECT length(raw), length(rationale), length(error) FROM judgments"
        ).fetchall()
    assert len(stored) == 2
    for raw, rationale, error in stored:
        assert raw <= MAX_ANSWER_CHARS and (rationale or 0) <= MAX_ANSWER_CHARS + 1 and (error or 0) <= 501
    assert (tmp_path / "reports" / "evals.db").stat().st_size < TEN_MB // 10
    results = (tmp_path / "reports" / "runs" / "r1" / "results.jsonl").read_text()
    assert len(results) < 4 * MAX_ANSWER_CHARS + 20_000
    # The capped run is one an import takes: its texts are within what an import checks.
    moved = CliRunner().invoke(main, ["import", "reports/runs/r1", "--reports", "elsewhere"])
    assert moved.exit_code == 0, moved.output


def test_an_answer_cut_at_max_tokens_is_still_told_as_such(tmp_path):
    with FakeOpenAI(lambda body: Reply("cut he", finish_reason="length")) as model:
        with FakeOpenAI(good_verdict) as judge:
            write_project(tmp_path, model, judge, 1)
            result = run()
    assert result.exit_code == 0, result.output
    assert "1 answer cut off at max_tokens" in result.output
    assert "max_answer_chars" not in result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "greater than or equal to 1"), (-5, "greater than or equal to 1"), ("lots", "valid integer")],
)
def test_a_bad_max_answer_chars_is_one_line_naming_it(tmp_path, value, expected):
    with FakeOpenAI() as model:
        write_project(tmp_path, model, None, 1, model_settings={"max_answer_chars": value})
        result = run("offline")
    line = config_problem(result)
    assert re.fullmatch(r"evals\.yaml:\d+: models\.local\.max_answer_chars: .+", line), line
    assert expected in line
    assert not (tmp_path / "reports" / "evals.db").exists() or status_count(tmp_path) == 0


def status_count(tmp_path: Path) -> int:
    with db(tmp_path) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_max_answer_chars_on_a_judge_is_refused(tmp_path):
    with FakeOpenAI() as model, FakeOpenAI() as judge:
        write_project(tmp_path, model, judge, 1, judge_settings={"max_answer_chars": 100})
        line = config_problem(run())
    assert re.fullmatch(r"evals\.yaml:\d+: judges\.lj: max_answer_chars caps a model's answers.+", line), line


def test_separate_caps_the_answer_and_the_reasoning_and_says_so():
    completion = Completion(text="<think>" + "t" * 50 + "</think>" + "a" * 30, reasoning="r" * 40)
    split = separate(completion, "separate", 20)
    assert split.answer == "a" * 20 and split.cut
    assert split.reasoning is not None and len(split.reasoning) == 20
    whole = separate(completion, "keep", 200)
    assert not whole.cut and whole.answer == completion.text
