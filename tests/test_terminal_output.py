"""A terminal that reads well (issue 20.6): rendered Markdown on a terminal and raw Markdown in pipes,
repeated retry warnings folded into one line, a run's errors summarised by kind, and `runs list` one line a
run at 80 columns."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from evals.cli import main
from evals.cli.runs import share_width
from evals.fakes import FakeAnthropic, FakeOpenAI, last_user_text
from evals.render.terminal import SafeLogHandler
from evals.results import error_kind
from evals.store import Store

ROOT = Path(__file__).parent.parent

GOOD = {f"{area}-{i:02d}": [5] for area in ("math", "chem") for i in range(3)}
LONG_ID = "20261122T231500Z-qwen2.5-7b-instruct-3f9a0c1e"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def reports(tmp_path):
    with Store(tmp_path / "reports") as store:
        make_run(store, "r01", GOOD, tags=("nightly", "baseline"), judge_model="claude-sonnet-4-5-20250929",
                 suite="customer-support-escalations", model_name="qwen2.5-7b-instruct")  # fmt: skip
        make_run(store, LONG_ID, GOOD, status="interrupted", model_name="qwen2.5-7b-instruct",
                 started_at="2026-11-03T00:00:00+00:00")  # fmt: skip
    return str(tmp_path / "reports")


def test_runs_list_is_one_line_a_run_at_80_columns_with_the_run_id_whole(reports):
    result = invoke("runs", "list", "--reports", reports, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), result.output
    rows = [line for line in lines if line.startswith(("r01", LONG_ID))]
    assert len(rows) == 2, result.output  # one line each, the run id never cut or wrapped
    assert rows[1].split()[:3] == [LONG_ID, "interrupted", "0%"]
    assert "not shown at this width:" in result.output and "--wide" in result.output


def test_runs_list_shares_a_wider_terminal_and_cuts_with_an_ellipsis(reports):
    result = invoke("runs", "list", "--reports", reports, env={"COLUMNS": "110"})
    lines = result.output.splitlines()
    assert lines[0].split() == ["run", "status", "errors", "suite", "model", "judge", "tags"]
    assert all(cell_len(line) <= 110 for line in lines) and len(lines) == 3, result.output
    assert "customer…" in lines[1] and "customer-support-escalations" not in lines[1]
    assert "not shown" not in result.output


def test_runs_list_wide_shows_every_column_whole_on_one_line(reports):
    result = invoke("runs", "list", "--wide", "--reports", reports, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if "r01" in line]
    for whole in ("customer-support-escalations", "qwen2.5-7b-instruct (qwen-1)", "claude-sonnet-4-5-20250929",
                  "nightly, baseline", "finished"):  # fmt: skip
        assert whole in row
    rows = [
        json.loads(line)
        for line in invoke("runs", "list", "--json", "--reports", reports).output.splitlines()
    ]
    assert [r["run_id"] for r in rows] == ["r01", LONG_ID]


def test_share_width_gives_short_columns_what_they_need_and_splits_the_rest():
    assert share_width([4, 30, 30], 40) == [4, 18, 18]
    assert share_width([4, 5], 40) == [4, 5]
    assert sum(share_width([10, 10, 10], 20)) == 20


BASE = {f"{area}-{i:02d}": [4] for area in ("math", "chem") for i in range(25)}
DROP = {k: ([2] if k.startswith("chem") else v) for k, v in BASE.items()}


@pytest.fixture
def gated(tmp_path):
    """A baseline r01 and a candidate whose model id is Markdown and markup (``*bold* [x](y) [red]``)."""
    with Store(tmp_path / "reports") as store:
        make_run(store, "r01", BASE)
        make_run(store, "r_02", DROP, model_id="*bold* [x](y) [red]x")
    return ("gate", "--candidate", "r_02", "--baseline", "r01", "--reports", str(tmp_path / "reports"))


def test_the_gate_draws_its_markdown_on_a_terminal(gated):
    result = invoke(*gated, env={"TTY_COMPATIBLE": "1", "COLUMNS": "100"})
    assert result.exit_code == 1, result.output
    text = result.stdout
    assert "lookingglass gate: ❌ FAIL" in text and "###" not in text
    assert "\\" not in text and "**" not in text and "| --- |" not in text  # no escapes, no raw syntax
    assert "candidate r_02 (*bold* [x](y) [red]x) vs baseline r01" in text  # names shown as written
    rows = [line.split()[:3] for line in text.splitlines() if line.strip().startswith("area ")]
    assert rows == [["area", "chem", "FAIL"], ["area", "math", "pass"]], text  # the table drawn, no pipes
    assert "|" not in text


def test_the_gate_prints_raw_markdown_into_a_pipe_or_with_the_flag(gated):
    piped = invoke(*gated)  # CliRunner's stdout is no terminal, as in a CI log
    forced = invoke(*gated, "--markdown", env={"TTY_COMPATIBLE": "1", "COLUMNS": "100"})
    for result in (piped, forced):
        assert result.exit_code == 1, result.output
        assert result.stdout.startswith("### lookingglass gate: ❌ FAIL")
        assert "candidate **r\\_02** (\\*bold\\* \\[x\\]\\(y\\) \\[red\\]x)" in result.stdout
        assert "| check | result | detail |" in result.stdout


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("unparseable verdict: no score in the reply", "unparseable verdict"),
        ("unparseable verdict: the score 7 is not 1-5", "unparseable verdict"),
        ("judge call failed: judge 'claude': 429 Too Many Requests (rate_limit_error: slow down) after 5 attempts",
         "judge call failed: 429 Too Many Requests"),
        ("judge call failed: judge 'o\'b': no answer within 30 s (timeout) after 5 attempts", "judge call failed: timeout"),
        ("model 'local': could not connect or the connection was dropped after 5 attempts",
         "could not connect or the connection was dropped"),
        ("model 'local': 500 Internal Server Error (server_error: out of memory)", "500 Internal Server Error"),
        ("model 'local': malformed response (no choices)", "malformed response"),
        ("the offline judge needs a reference answer", "the offline judge needs a reference answer"),
        ("not judged", "not judged"),
    ],
)  # fmt: skip
def test_error_kind_is_the_stable_part_of_the_text(text, kind):
    assert error_kind(text) == kind


def test_error_kind_of_two_endpoints_failing_alike_is_one_kind():
    a = "judge call failed: judge 'a': 503 Service Unavailable (overloaded) after 2 attempts"
    b = "judge call failed: judge 'b': 503 Service Unavailable (busy) after 5 attempts"
    assert error_kind(a) == error_kind(b) == "judge call failed: 503 Service Unavailable"
    assert len(error_kind("x" * 500)) == 60


SUITE = [{"id": f"geo-{n}", "area": "geo", "question": f"Q{n}?", "reference": "r"} for n in range(1, 8)]


def answer(question: str) -> str:
    if question == "Q7?":
        raise RuntimeError("model overloaded")  # the fake answers 500 with this in its error body
    return f"answer to {question}"


def grade(body):
    reply = re.search(r"<answer>(.*?)</answer>", last_user_text(body), re.S).group(1)
    if "Q1?" in reply or "Q2?" in reply:
        return "no verdict today"
    if "Q3?" in reply:
        raise RuntimeError("judge overloaded")
    return {"rationale": "fine", "score": 5}


def test_run_summarises_its_errors_by_kind_with_an_example(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with FakeOpenAI(lambda body: answer(last_user_text(body))) as model, FakeAnthropic(grade) as judge:
        endpoint = {"max_concurrency": 1, "max_retries": 0}
        config = {
            "models": {"local": {"base_url": model.url, "model": "qwen", **endpoint}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "c", **endpoint}},
            "judges_dir": str(ROOT / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in SUITE))
        result = invoke("run", "--suite", "suite.jsonl", "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert "1 answer errors, 3 judge errors" in result.stdout
    lines = result.stdout.splitlines()
    start = lines.index("judge errors by kind:")
    assert lines[start + 1].startswith("  2 unparseable verdict, e.g. item geo-1: ")
    assert lines[start + 2].startswith(
        "  1 judge call failed: 500 Internal Server Error, e.g. item geo-3: judge 'claude': 500 Internal"
    )
    assert "(api_error: Internal Server Error: responder failed" in lines[start + 2]
    answers = lines.index("answer errors by kind:")
    assert lines[answers + 1].startswith("  1 500 Internal Server Error, e.g. item geo-7: model 'local': 500")


@pytest.fixture
def folded():
    """A logger printing through a SafeLogHandler into a string; yields the logger, the handler and the text."""
    text = io.StringIO()
    handler = SafeLogHandler(Console(file=text, width=200, markup=False))
    log = logging.getLogger("evals.test.fold")
    log.addHandler(handler)
    log.propagate = False
    yield log, handler, text
    log.removeHandler(handler)


def retry_warning(log, attempt, reason="could not connect", who="model 'local'"):
    log.warning("%s: attempt %d/5 failed: %s; retrying in %.2f s", who, attempt, reason, 0.5 * attempt,
                extra={"fold_key": ("retry", who, reason), "fold_line": f"{who}: more attempts failed: {reason}"})  # fmt: skip


def test_repeated_retry_warnings_fold_into_one_line_with_a_count(folded):
    log, handler, text = folded
    for attempt in (1, 1, 2, 2, 3, 3, 4):
        retry_warning(log, attempt)
    assert (
        text.getvalue()
        == "warning: model 'local': attempt 1/5 failed: could not connect; retrying in 0.50 s\n"
    )
    handler.flush()
    assert text.getvalue().splitlines()[1:] == [
        "warning: model 'local': more attempts failed: could not connect (×6)"
    ]
    handler.flush()  # nothing held back: nothing more said
    assert len(text.getvalue().splitlines()) == 2


def test_a_different_warning_says_the_count_first_and_is_shown_itself(folded):
    log, _, text = folded
    retry_warning(log, 1)
    retry_warning(log, 2)
    retry_warning(log, 1, reason="429 Too Many Requests")  # same endpoint, another failure: shown
    log.warning("redaction: 2 e-mail addresses replaced")
    log.warning("redaction: 2 e-mail addresses replaced")  # identical text without a key folds too
    log.error("audit: chain x could not be sealed")
    assert text.getvalue().splitlines() == [
        "warning: model 'local': attempt 1/5 failed: could not connect; retrying in 0.50 s",
        "warning: model 'local': more attempts failed: could not connect (×1)",
        "warning: model 'local': attempt 1/5 failed: 429 Too Many Requests; retrying in 0.50 s",
        "warning: redaction: 2 e-mail addresses replaced",
        "warning: redaction: 2 e-mail addresses replaced again (×1)",
        "error: audit: chain x could not be sealed",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_endpoint_prints_one_retry_warning_a_count_then_its_error(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="evals.outbound.providers")
    model = {
        "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "model": "m",
        "max_retries": 4,
        "max_concurrency": 6,
    }
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"models": {"local": model}}))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in SUITE))
    result = CliRunner().invoke(
        main, ["run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1"]
    )
    assert result.exit_code == 2, result.output
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) > 4  # several calls retried at once: the warnings a terminal used to print
    lines = [line for line in result.stderr.splitlines() if line.startswith(("warning:", "error:"))]
    assert lines[0].startswith("warning: model 'local': attempt ") and "could not connect" in lines[0]
    assert lines[1] == (
        "warning: model 'local': more attempts failed: could not connect or the connection was dropped "
        f"(×{len(retries) - 1})"
    )
    assert lines[2].startswith("error: ") and "evals run --resume r1" in lines[2] and len(lines) == 3
