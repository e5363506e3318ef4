"""OpenTelemetry export (``telemetry:``, the ``otel`` extra): spans and evaluation events of a run on fake
servers, received by an in-process OTLP/HTTP collector that decodes what the SDK's exporter sends."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otel extra is not installed")
from otlp_kit import Collector, serve_collector

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, last_user_text, text_reply
from evals.outbound import telemetry

# -- the collector (tests/otlp_kit.py) -------------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[Collector]:
    with serve_collector() as got:
        yield got


# -- the project ----------------------------------------------------------------------------------------

EMAIL = "mara.quill@example.com"
SECRET = "quartzite"  # a restricted item's word: in its question, so in the answer and the explanation

SUITE = {
    "suite": "desk",
    "areas": {"vault": {"sensitivity": "restricted"}, "faq": {"sensitivity": "public"}},
    "items": [
        {"id": "billing-1", "area": "billing", "question": f"Who refunds {EMAIL}?", "reference": "the desk"},
        {"id": "billing-2", "area": "billing", "question": "Who pays refunds?", "reference": "the desk"},
        {"id": "vault-1", "area": "vault", "question": f"Which {SECRET} shelf?", "reference": "the desk"},
        {
            "id": "faq-1",
            "area": "faq",
            "question": "What are the opening hours?",
            "reference": "nine to five",
        },
    ],
}


def _quoting_judge(body: dict[str, Any]) -> dict[str, Any]:
    """Grades by the reference, and quotes the answer in its explanation (so item text is in the rationale)."""
    verdict = grade_by_reference(body)
    answer = re.search(r"<answer>(.*?)</answer>", last_user_text(body), re.S)
    return {**verdict, "rationale": f"the answer says: {answer.group(1).strip() if answer else ''}"}


def _model(question: str) -> str:
    return f"the desk handles it ({question})" if "refunds" in question or SECRET in question else "no idea"


def _project(
    path: Path, model: FakeOpenAI, judge: FakeAnthropic, telemetry: dict | None, **extra: Any
) -> None:
    config = {
        "models": {"local": {"base_url": model.url, "model": "qwen-local", "max_retries": 0, "temperature": 0}},
        "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test", "max_retries": 0}},
        **({"telemetry": telemetry} if telemetry is not None else {}),
        **extra,
    }  # fmt: skip
    (path / "evals.yaml").write_text(yaml.safe_dump(config))
    (path / "suite.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False))


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude", *args])


# -- a run's tree ---------------------------------------------------------------------------------------


def test_a_run_exports_run_item_and_call_spans_with_genai_attributes(tmp_path, keys, collector):
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, {"otlp_endpoint": collector.url, "service_name": "desk-evals"})
        result = _run("--samples", "2", "--run-id", "r1")
        assert result.exit_code == 0, result.output

    (run,) = collector.named("evals run")
    assert run.attributes["evals.run.id"] == "r1"
    assert run.parent == ""
    assert run.resource["service.name"] == "desk-evals"
    items = collector.named("evals item")
    # one span per item and sample, each under the run, in the run's trace
    assert sorted((s.attributes["evals.item.id"], s.attributes["evals.sample"]) for s in items) == sorted(
        (i["id"], n) for i in SUITE["items"] for n in (0, 1)
    )
    assert {s.parent for s in items} == {run.span_id}
    assert {s.trace_id for s in collector.spans} == {run.trace_id}
    by_id = {s.span_id: s for s in items}

    answers = collector.named("chat qwen-local")
    verdicts = collector.named("chat claude-test")
    # both samples' answers are alike, so each second verdict is the first one's, reused: no call
    assert (len(answers), len(verdicts)) == (8, 4)
    for span in answers + verdicts:
        item = by_id[span.parent]  # every call under its own item and sample
        assert (span.attributes["evals.item.id"], span.attributes["evals.sample"]) == (
            item.attributes["evals.item.id"],
            item.attributes["evals.sample"],
        )
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
        assert span.attributes["server.address"] == "127.0.0.1"
        assert item.start <= span.start <= span.end <= item.end <= run.end
    model_call = answers[0].attributes
    assert model_call["gen_ai.provider.name"] == model_call["gen_ai.system"] == "openai"
    assert model_call["gen_ai.request.model"] == "qwen-local"
    assert model_call["gen_ai.response.model"] == "fake-gpt"  # what the server says answered
    assert model_call["gen_ai.request.temperature"] == 0
    assert model_call["evals.role"] == "model"
    assert model_call["gen_ai.response.finish_reasons"] == ["stop"]
    assert verdicts[0].attributes["gen_ai.provider.name"] == "anthropic"
    assert verdicts[0].attributes["evals.role"] == "judge"
    assert "gen_ai.input.messages" not in collector.received()  # text of calls only with capture_text


def test_each_verdict_is_one_evaluation_event_on_its_items_span(tmp_path, keys, collector):
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, {"otlp_endpoint": collector.url})
        assert _run("--run-id", "r1", "--judge-repeats", "2").exit_code == 0

    events = collector.events()
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    stored = db.execute("SELECT item_id, repeat, score, judge, judge_fingerprint FROM judgments").fetchall()
    assert len(events) == len(stored) == 8
    seen = {(a["evals.item.id"], a["evals.verdict.repeat"]): a for _, a in events}
    for item_id, repeat, score, judge, fingerprint in stored:
        event = seen[(item_id, repeat)]
        assert event["gen_ai.evaluation.name"] == "correctness"  # the shipped default rubric
        assert event["gen_ai.evaluation.score.value"] == score
        assert event["gen_ai.evaluation.score.label"] == ("pass" if score >= 4 else "fail")
        assert event["evals.judge"] == judge
        assert event["evals.judge.fingerprint"] == fingerprint
    for span, event in events:  # on the span of the answer it grades
        assert span.name == "evals item"
        assert span.attributes["evals.item.id"] == event["evals.item.id"]
    assert {a["gen_ai.evaluation.score.label"] for _, a in events} == {"pass", "fail"}
    # The collector is on loopback, inside the perimeter: explanations go as written, restricted ones too.
    explanations = {a["evals.item.id"]: a["gen_ai.evaluation.explanation"] for _, a in events}
    assert EMAIL in explanations["billing-1"]
    assert SECRET in explanations["vault-1"]


def test_the_pass_label_follows_the_gates_pass_score(tmp_path, keys, collector):
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, {"otlp_endpoint": collector.url}, gate={"pass_score": 5})
        assert _run().exit_code == 0
    labels = {
        (a["gen_ai.evaluation.score.value"], a["gen_ai.evaluation.score.label"])
        for _, a in collector.events()
    }
    assert labels == {(5.0, "pass"), (1.0, "fail")}


# -- the perimeter --------------------------------------------------------------------------------------


def test_an_external_collector_never_gets_restricted_text_and_gets_internal_text_redacted(
    tmp_path, keys, collector
):
    settings = {"otlp_endpoint": collector.url, "external": True, "capture_text": True}
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, settings)
        assert _run("--run-id", "r1").exit_code == 0
        assert SECRET in json.dumps(judge.requests)  # the in-house judge got the restricted text

    received = collector.received()
    assert SECRET not in received
    assert all(SECRET.encode() not in body for body in collector.bodies)
    assert EMAIL not in received and "mara.quill" not in received
    assert all(b"mara.quill" not in body for body in collector.bodies)
    events = {a["evals.item.id"]: a for _, a in collector.events()}
    # scores and ids always go; the restricted item's explanation never, and the reason is said
    vault = events["vault-1"]
    assert vault["gen_ai.evaluation.score.value"] == 5.0
    assert "gen_ai.evaluation.explanation" not in vault
    assert vault["evals.explanation.withheld"] == "restricted"
    # internal text is redacted: the address is a placeholder, the rest of the explanation is there
    assert re.search(
        r"the answer says: the desk handles it \(Who refunds <EMAIL[A-Z_]*_1>\?\)",
        events["billing-1"]["gen_ai.evaluation.explanation"],
    )
    # public text goes as written
    assert events["faq-1"]["gen_ai.evaluation.explanation"] == "the answer says: no idea"
    # the calls' messages follow the same rules
    calls = {
        (s.attributes["evals.item.id"], s.attributes["evals.role"]): s.attributes
        for s in collector.spans
        if s.name.startswith("chat")
    }
    assert calls[("vault-1", "model")]["evals.text.withheld"] == "restricted"
    assert "gen_ai.input.messages" not in calls[("vault-1", "judge")]
    assert "<EMAIL" in calls[("billing-1", "model")]["gen_ai.input.messages"]
    assert "<EMAIL" in calls[("billing-1", "model")]["gen_ai.output.messages"]
    faq = json.loads(calls[("faq-1", "model")]["gen_ai.input.messages"])
    assert faq == [{"role": "user", "parts": [{"type": "text", "content": "What are the opening hours?"}]}]


def test_an_external_collector_gets_no_internal_text_when_redaction_is_off(tmp_path, keys, collector):
    settings = {"otlp_endpoint": collector.url, "external": True}
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, settings, redaction={"enabled": False})
        assert _run().exit_code == 0
    events = {a["evals.item.id"]: a for _, a in collector.events()}
    assert "gen_ai.evaluation.explanation" not in events["billing-1"]
    assert events["billing-1"]["evals.explanation.withheld"] == "not redacted"
    assert EMAIL not in collector.received()


def test_a_collector_listed_in_internal_hosts_is_inside_the_perimeter(tmp_path, keys, collector):
    url = collector.url.replace("127.0.0.1", "localhost")
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, {"otlp_endpoint": url})
        assert _run().exit_code == 0
    assert EMAIL in collector.received()


# -- nothing without it; settings ------------------------------------------------------------------------


def test_nothing_is_exported_without_telemetry(tmp_path, keys, collector, monkeypatch):
    # Even with the SDK's own variables pointing at a collector, no telemetry: means no export.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url + "/v1/traces")
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, None)
        assert _run().exit_code == 0
        assert judge.count() == 4
    assert collector.bodies == []


def test_the_cli_never_imports_opentelemetry_without_telemetry(tmp_path):
    code = (
        "import sys; from click.testing import CliRunner; from evals.cli import main; "
        "from evals.outbound import gateway, telemetry; from evals import runner; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0; "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_headers_come_from_the_named_variable_and_are_never_shown(tmp_path, keys, collector, monkeypatch):
    monkeypatch.setenv("EVALS_OTLP_HEADERS", "Authorization=Bearer%20otlp-token-123,x-team=desk")
    # the SDK's own variables may hold another collector's token: it never goes to this one
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-vendor-key=vendor-secret-1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-vendor-key=vendor-secret-2")
    settings = {"otlp_endpoint": collector.url, "headers_env": "EVALS_OTLP_HEADERS"}
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, settings)
        result = _run()
        assert result.exit_code == 0, result.output
    assert collector.headers and all(h["authorization"] == "Bearer otlp-token-123" for h in collector.headers)
    assert all(h["x-team"] == "desk" for h in collector.headers)
    assert all("x-vendor-key" not in h for h in collector.headers)
    assert os.environ["OTEL_EXPORTER_OTLP_HEADERS"] == "x-vendor-key=vendor-secret-1"  # left as it was
    assert "otlp-token-123" not in result.output


def test_an_unset_headers_variable_stops_the_run_before_it_exists(tmp_path, keys, collector):
    settings = {"otlp_endpoint": collector.url, "headers_env": "EVALS_OTLP_HEADERS"}
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, settings)
        result = _run()
        assert model.count() == judge.count() == 0
    assert result.exit_code == 2
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "telemetry.headers_env: EVALS_OTLP_HEADERS is not set" in line
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert collector.bodies == []


def test_a_malformed_headers_variable_is_one_line_that_hides_the_value(
    tmp_path, keys, collector, monkeypatch
):
    monkeypatch.setenv("EVALS_OTLP_HEADERS", "Bearer sekrit-value-77")
    settings = {"otlp_endpoint": collector.url, "headers_env": "EVALS_OTLP_HEADERS"}
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, settings)
        result = _run()
    assert result.exit_code == 2
    assert "sekrit" not in result.output
    assert "pair 1 is not key=value" in result.output


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"otlp_endpoint": "collector:4318"}, "otlp_endpoint"),
        ({"otlp_endpoint": "http://user:pw-999@collector:4318"}, "holds credentials"),
        ({"otlp_endpoint": "http://c:4318", "headers_env": "Bearer abc"}, "NAME of an environment variable"),
        ({"otlp_endpoint": "http://c:4318", "sample": 1}, "telemetry.sample"),
    ],
)
def test_a_bad_telemetry_section_is_a_file_line_error(tmp_path, settings, expected):
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"telemetry": settings}))
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False))
    result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml"])
    assert result.exit_code == 2
    assert re.search(r"evals.yaml:[23]: telemetry", result.output) and expected in result.output
    assert "pw-999" not in result.output and "abc" not in result.output


def test_a_collector_that_is_down_costs_a_warning_not_the_run(tmp_path, keys, monkeypatch):
    monkeypatch.setattr(telemetry, "EXPORT_TIMEOUT_S", 0.5)
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        dead = model.url.rsplit(":", 1)[0] + ":9"  # the discard port: nothing listens there
        _project(tmp_path, model, judge, {"otlp_endpoint": dead})
        result = _run()
    assert result.exit_code == 0, result.output
    assert "telemetry: the collector at" in result.output and "did not take" in result.output


def test_the_bare_address_gets_the_traces_path_and_a_full_url_is_kept():
    from evals.config import TelemetrySettings

    assert TelemetrySettings(otlp_endpoint="http://c:4318").traces_url() == "http://c:4318/v1/traces"
    assert TelemetrySettings(otlp_endpoint="http://c:4318/").traces_url() == "http://c:4318/v1/traces"
    assert (
        TelemetrySettings(otlp_endpoint="https://c/otlp/v1/traces").traces_url() == "https://c/otlp/v1/traces"
    )


# -- other commands' calls ------------------------------------------------------------------------------


def test_calls_outside_a_run_are_traced_under_their_command(tmp_path, keys, collector):
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, {"otlp_endpoint": collector.url})
        result = CliRunner().invoke(main, ["judge", "probe", "--judge", "claude", "--format", "json"])
        assert result.exit_code in (0, 2), result.output
        calls = judge.count()
    (probe,) = collector.named("evals probe")
    chats = collector.named("chat claude-test")
    assert calls > 0 and len(chats) == calls
    assert {s.parent for s in chats} == {probe.span_id}
    assert collector.events() == []  # verdicts outside a run are not evaluation results of a model


def test_a_rerun_exports_its_fresh_verdicts_under_its_own_run(tmp_path, keys, collector):
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, None)
        assert _run("--run-id", "r1").exit_code == 0
        _project(tmp_path, model, judge, {"otlp_endpoint": collector.url})
        result = CliRunner().invoke(main, ["judge", "rerun", "r1", "--repeats", "2", "--run-id", "r1-again"])
        assert result.exit_code == 0, result.output
    assert [s.attributes["evals.run.id"] for s in collector.named("evals run")] == ["r1-again"]
    events = [a for _, a in collector.events()]
    assert len(events) == 8 and {a["evals.run.id"] for a in events} == {"r1-again"}
    assert collector.named("chat qwen-local") == []  # a rerun's answers are frozen: nothing asks the model
    assert len(collector.named("chat claude-test")) == 8


def test_a_big_run_loses_no_item_span_at_the_end(collector, monkeypatch):
    from evals.config import Config
    from evals.records import Item, Judgment

    monkeypatch.setattr(telemetry, "QUEUE", 64)  # a small queue and a busy collector stand for a big run
    collector.delay = 0.03
    config = Config.model_validate({"telemetry": {"otlp_endpoint": collector.url}})
    count = 1000  # many more item spans than the queue holds, all ended when the command ends
    item = Item(id="x", area="a", question="q?", sensitivity="public")
    with telemetry.tracing(config):
        for n in range(count):
            judgment = Judgment("big", f"i{n}", 0, 5, None, None, "claude (m)", "k")
            telemetry.evaluated(item, judgment, "correctness")
    assert len(collector.named("evals item")) == count
    assert len(collector.events()) == count
    assert len(collector.named("evals run")) == 1


def test_without_the_extra_a_configured_telemetry_stops_before_anything_is_done(
    tmp_path, keys, collector, monkeypatch
):
    for name in list(sys.modules):
        if name.startswith("opentelemetry.sdk"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # as if the otel extra were not installed
    with FakeOpenAI(text_reply(_model)) as model, FakeAnthropic(_quoting_judge) as judge:
        _project(tmp_path, model, judge, {"otlp_endpoint": collector.url})
        result = _run()
        assert model.count() == judge.count() == 0
    assert result.exit_code == 2
    assert "telemetry: needs the otel extra: pip install 'lookingglass[otel]'" in result.output
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
