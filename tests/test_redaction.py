"""Redaction before external calls: nothing identifying reaches an external judge or model, placeholders
stay consistent within an item, the cache key follows the redaction, and the counts are stored."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.config import JudgeEndpoint, RedactionSettings
from evals.defaults import SHIPPED_JUDGES
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, last_user_text, text_reply
from evals.judge.judging import build_judge
from evals.outbound.gateway import Gateway
from evals.outbound.redaction import CustomPattern, Redactor
from evals.records import Item
from evals.render.pages import render_html
from evals.scorecard import build_scorecard
from evals.store import Store
from evals.store.redactions import redaction_counts, save_redactions

# One identifier of every supported kind, with the placeholder kind it must become.
IDENTIFIERS = {
    "EMAIL": "jane.doe@example.com",
    "PHONE": "(212) 555-0147",
    "SSN": "536-22-1234",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN": "GB82 WEST 1234 5698 7654 32",
    "IP": "192.168.4.21",
    "URL": "https://portal.example.org/records",
    "DATE": "03/14/1962",
    "DRIVER_LICENSE": "D1234567",
    "PASSPORT": "912803456",
    "MEDICAL_RECORD": "00482913",
    "ACCOUNT": "440291837512",
    "EMPLOYEE_ID": "EMP-12345",
}
SENTENCES = {
    "EMAIL": "Her email is {} today.",
    "PHONE": "Call her on {} please.",
    "SSN": "His SSN is {} on file.",
    "CREDIT_CARD": "The card {} was charged.",
    "IBAN": "Pay to IBAN {} now.",
    "IP": "The login came from {} at night.",
    "URL": "The chart is at {} for staff.",
    "DATE": "She was born on {} in town.",
    "DRIVER_LICENSE": "Driver license {} was shown.",
    "PASSPORT": "US passport number {} expired.",
    "MEDICAL_RECORD": "Patient MRN {} was admitted.",
    "ACCOUNT": "The account number {} is overdrawn.",
    "EMPLOYEE_ID": "Employee {} signed it.",
}
PATTERNS = [CustomPattern(name="EMPLOYEE_ID", regex=r"\bEMP-\d{5}\b", context=("employee",))]
SECRET = "sk-ant-test-SECRET-7"


def _sentence(kind: str) -> str:
    return SENTENCES[kind].format(IDENTIFIERS[kind])


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(PATTERNS)


@pytest.mark.parametrize("kind", list(IDENTIFIERS))
def test_each_supported_kind_is_replaced_by_its_typed_placeholder(redactor, kind):
    redacted = redactor.redact([_sentence(kind)])
    [text] = redacted.texts
    assert IDENTIFIERS[kind] not in text
    assert f"<{kind}_1>" in text
    assert redacted.counts == {kind: 1}
    assert redacted.mapping == {f"<{kind}_1>": IDENTIFIERS[kind]}


def test_ordinary_numbers_and_words_are_left_alone(redactor):
    text = "The answer is 42, the year 1999 had 365 days and 6 x 7 = 42."
    assert redactor.redact([text]).texts == (text,)


def test_context_numbers_need_their_context_word(redactor):
    # A bare 12-digit number is no account number; with "account" near it, it is.
    assert redactor.redact(["The total was 440291837512 grains."]).counts == {}
    assert redactor.redact(["Account 440291837512 is closed."]).counts == {"ACCOUNT": 1}


def test_one_mapping_per_item_across_question_reference_and_answer(redactor):
    item = Item(
        id="i",
        area="a",
        question="Mail jane.doe@example.com or bob@example.org?",
        reference="jane.doe@example.com",
    )
    sent = redactor.redact_item(item, "Write to jane.doe@example.com, not bob@example.org.")
    assert sent.item.question == "Mail <EMAIL_1> or <EMAIL_2>?"
    assert sent.item.reference == "<EMAIL_1>"
    assert sent.answer == "Write to <EMAIL_1>, not <EMAIL_2>."
    assert sent.counts == {"EMAIL": 5}
    assert sent.redacted.restore("The answer names <EMAIL_1>; <EMAIL_9> is unknown.") == (
        "The answer names jane.doe@example.com; <EMAIL_9> is unknown."
    )


def test_conversations_are_redacted_turn_by_turn(redactor):
    item = Item.model_validate(
        {"id": "c", "area": "a", "messages": [
            {"role": "system", "content": "Patient MRN 00482913 is on the ward."},
            {"role": "user", "content": "Is MRN 00482913 due a scan?"},
        ]}
    )  # fmt: skip
    sent = redactor.redact_item(item)
    assert [m.content for m in sent.item.messages or ()] == [
        "Patient MRN <MEDICAL_RECORD_1> is on the ward.",
        "Is MRN <MEDICAL_RECORD_1> due a scan?",
    ]


def test_overlaps_go_to_the_longest_detection(redactor):
    # The URL recognizer also sees "example.com" inside the address: the whole address wins.
    assert redactor.redact(["Write to jane.doe@example.com."]).texts == ("Write to <EMAIL_1>.",)


def test_the_version_names_presidio_and_changes_with_the_patterns(redactor):
    assert re.fullmatch(r"presidio-\d+\.\d+\.\d+\+[0-9a-f]{16}", redactor.version)
    assert Redactor().version != redactor.version
    assert Redactor(PATTERNS).version == redactor.version


def test_without_an_ner_model_it_says_names_are_not_detected():
    assert Redactor().note == "names and places are not detected: no NER model installed"
    missing = Redactor(ner_model="en_core_web_sm")
    assert not missing.ner_active
    assert "not installed" in (missing.note or "")


def test_the_cache_key_follows_redaction_on_off_and_version(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    endpoint = JudgeEndpoint(
        provider="anthropic", base_url=fake_anthropic.url, model="claude-test", external=True
    )
    item = Item(id="i", area="a", question="Mail jane.doe@example.com?", reference="yes")
    # Redaction off, on with the built-in recognizers, on with a suite's own patterns: what the judge read.
    gateways = (Gateway(RedactionSettings(enabled=False)), Gateway(), Gateway(patterns=PATTERNS))
    keys = {build_judge("claude", endpoint, SHIPPED_JUDGES, g).cache_key(item, "yes") for g in gateways}
    assert len(keys) == 3
    again = build_judge("claude", endpoint, SHIPPED_JUDGES, Gateway(patterns=PATTERNS)).cache_key(item, "yes")
    assert again in keys


def test_counts_are_stored_per_call_and_summed_per_area(open_store):
    with open_store() as store:
        make_run(store, "r01", {"billing-1": [5], "billing-2": [4], "geo-1": [3]})
        save_redactions(store, "r01", "billing-1", 0, "judge", {"EMAIL": 2, "PHONE": 1})
        save_redactions(store, "r01", "billing-1", 0, "model", {"EMAIL": 1})
        save_redactions(store, "r01", "billing-2", 0, "judge", {"EMAIL": 1})
        save_redactions(store, "r01", "geo-1", 0, "judge", {"EMAIL": 9})
        save_redactions(store, "r01", "geo-1", 0, "judge", {"IP": 1})  # a judgment made again replaces it
        assert redaction_counts(store, "r01") == {"billing": {"EMAIL": 4, "PHONE": 1}, "geo": {"IP": 1}}


# -- end to end: a run against fake external endpoints -------------------------------------------------


def _suite_yaml() -> dict:
    kinds = list(IDENTIFIERS)
    items = []
    for index, kind in enumerate(kinds):
        area = "billing" if index % 2 else "clinic"
        items.append(
            {
                "id": f"{area}-{index}",
                "area": area,
                "question": _sentence(kind),
                "reference": IDENTIFIERS[kind],
            }
        )
    return {
        "suite": "pii",
        "redact": [{"name": "EMPLOYEE_ID", "regex": r"\bEMP-\d{5}\b", "context": ["employee"]}],
        "items": items,
    }


def _echo(question: str) -> str:
    """The fake model answers with the identifier it was asked about (whatever it received)."""
    return f"It is {question}"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite_yaml(), sort_keys=False))
    return tmp_path


def _config(path: Path, model_server: FakeOpenAI, judge_server: FakeAnthropic, **changes) -> None:
    config = {
        "models": {"local": {"base_url": model_server.url, "model": "qwen", "max_retries": 0, **changes.pop("model", {})}},
        "judges": {"claude": {"provider": "anthropic", "base_url": judge_server.url, "model": "claude-test",
                              "max_retries": 0, **changes.pop("judge", {})}},
        **changes,
    }  # fmt: skip
    (path / "evals.yaml").write_text(yaml.safe_dump(config))


def _sent(server: FakeOpenAI | FakeAnthropic) -> str:
    return json.dumps(server.requests, ensure_ascii=False)


def _leaked(server: FakeOpenAI | FakeAnthropic) -> list[str]:
    return [value for value in IDENTIFIERS.values() if value in _sent(server)]


def test_no_identifier_reaches_an_external_judge(project):
    with FakeOpenAI(text_reply(_echo)) as model, FakeAnthropic(grade_by_reference) as judge:
        _config(project, model, judge, judge={"external": True})
        result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"])
        assert result.exit_code == 0, result.output
        assert judge.count() == len(IDENTIFIERS)
        assert _leaked(judge) == []
        # The local model is inside the perimeter: it got the text as written.
        assert _leaked(model) == list(IDENTIFIERS.values())
        for body in judge.requests:
            text = last_user_text(body)
            reference = re.search(r"<reference>\s*(.*?)\s*</reference>", text, re.S)
            assert reference is not None
            # The same placeholder in reference and answer: the judge can still compare them (and does).
            assert reference.group(1) in re.search(r"<answer>(.*?)</answer>", text, re.S).group(1)  # type: ignore[union-attr]
            assert re.fullmatch(r"<[A-Z_]+_1>", reference.group(1))
    db = sqlite3.connect(project / "reports" / "evals.db")
    assert {row[0] for row in db.execute("SELECT score FROM judgments")} == {5}
    config = json.loads(db.execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["redaction"]["status"] == "redacted"
    assert config["redaction"]["judge_external"] is True
    assert config["redaction"]["version"].startswith("presidio-")
    counts = [
        json.loads(row[0]) for row in db.execute("SELECT counts_json FROM redactions WHERE role = 'judge'")
    ]
    # Each identifier is in question, reference and answer.
    assert sorted(counts, key=str) == sorted(({kind: 3} for kind in IDENTIFIERS), key=str)


def test_the_rationale_is_restored_for_local_storage(project):
    def judge_quotes(body: dict) -> dict:
        reference = re.search(r"<reference>\s*(.*?)\s*</reference>", last_user_text(body), re.S)
        return {"rationale": f"the answer gives {reference.group(1)}", "score": 5}  # type: ignore[union-attr]

    with FakeOpenAI(text_reply(_echo)) as model, FakeAnthropic(judge_quotes) as judge:
        _config(project, model, judge, judge={"external": True})
        assert CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"]).exit_code == 0
        assert _leaked(judge) == []  # so the judge quoted a placeholder, which the store holds restored
    db = sqlite3.connect(project / "reports" / "evals.db")
    rationales = {row[0] for row in db.execute("SELECT rationale FROM judgments")}
    assert f"the answer gives {IDENTIFIERS['EMAIL']}" in rationales


def test_an_external_model_gets_redacted_questions_and_the_answer_is_stored_restored(project):
    with FakeOpenAI(text_reply(_echo)) as model, FakeAnthropic(grade_by_reference) as judge:
        _config(project, model, judge, model={"external": True}, judge={"external": False})
        result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"])
        assert result.exit_code == 0, result.output
        assert _leaked(model) == []
        # The judge is local (external: false): it gets the text as written, answers restored.
        assert _leaked(judge) == list(IDENTIFIERS.values())
    db = sqlite3.connect(project / "reports" / "evals.db")
    answers = {row[0] for row in db.execute("SELECT text FROM answers")}
    assert f"It is {_sentence('SSN')}" in answers
    counts = [
        json.loads(row[0]) for row in db.execute("SELECT counts_json FROM redactions WHERE role = 'model'")
    ]
    assert sorted(counts, key=str) == sorted(({kind: 1} for kind in IDENTIFIERS), key=str)


def test_disabled_redaction_sends_text_as_written_and_the_snapshot_says_so(project):
    with FakeOpenAI(text_reply(_echo)) as model, FakeAnthropic(grade_by_reference) as judge:
        _config(project, model, judge, judge={"external": True}, redaction={"enabled": False})
        assert CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"]).exit_code == 0
        assert _leaked(judge) == list(IDENTIFIERS.values())
    db = sqlite3.connect(project / "reports" / "evals.db")
    config = json.loads(db.execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["redaction"]["status"] == "not redacted"
    with Store(project / "reports") as store:
        card = build_scorecard(store, store.runs()[0].run_id)
    assert "Not redacted" in render_html(card)


def test_a_bad_custom_regex_is_a_file_line_error(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "suite: s\nredact:\n  - name: EMPLOYEE_ID\n    regex: 'EMP-(\\d{5}'\nitems:\n  - {id: a, area: b, question: q}\n"
    )
    result = CliRunner().invoke(main, ["suite", "validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 1
    assert f"{tmp_path / 's.yaml'}:4: redact[0].regex: not a valid regular expression" in result.output


def test_a_value_found_once_is_replaced_everywhere_in_the_item(redactor):
    # Alone, "00482913" is no medical record number; the question's "MRN" makes it one for the whole item.
    item = Item(id="i", area="a", question="Is MRN 00482913 due a scan?", reference="00482913 is due")
    sent = redactor.redact_item(item, "Yes, 00482913.")
    assert (sent.item.reference, sent.answer) == ("<MEDICAL_RECORD_1> is due", "Yes, <MEDICAL_RECORD_1>.")


def test_the_dry_run_shows_what_would_be_sent_and_calls_nothing(project):
    with FakeOpenAI(text_reply(_echo)) as model, FakeAnthropic(grade_by_reference) as judge:
        _config(project, model, judge, judge={"external": True})
        data = _suite_yaml()
        data["areas"] = {"clinic": {"sensitivity": "restricted"}}
        (project / "suite.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        result = CliRunner().invoke(main, ["redact", "suite.yaml", "--judge", "claude", "--show", "all"])
        assert result.exit_code == 0, result.output
        assert (model.count(), judge.count()) == (0, 0)
    output = result.output
    assert "clinic-0 (clinic): not sent (restricted)" in output
    assert "billing-1 (billing): 2 PHONE" in output
    assert "  question: Call her on <PHONE_1> please." in output
    assert "names and places are not detected" in output
    assert not [value for value in IDENTIFIERS.values() if value in output]


def test_a_panels_external_member_gets_redacted_text_and_its_internal_member_the_text_as_written(project):
    with (
        FakeOpenAI(text_reply(_echo)) as model,
        FakeAnthropic(grade_by_reference) as outside,
        FakeOpenAI(grade_by_reference) as inside,
    ):
        _config(project, model, outside, judge={"external": True})
        config = yaml.safe_load((project / "evals.yaml").read_text())
        config["judges"]["vllm"] = {"base_url": inside.url, "model": "qwen-judge", "max_retries": 0}
        config["judges"]["both"] = {"panel": ["claude", "vllm"]}
        (project / "evals.yaml").write_text(yaml.safe_dump(config))
        result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "both"])
        assert result.exit_code == 0, result.output
        assert outside.count() == inside.count() == len(IDENTIFIERS)
        assert _leaked(outside) == []
        assert _leaked(inside) == list(IDENTIFIERS.values())  # inside the perimeter: as written
