"""Every record is written as one JSON object and read back equal."""

import json

import pytest

from evals.records import (
    SCHEMA_VERSION,
    Answer,
    Completion,
    CompletionRequest,
    Item,
    Judgment,
    Message,
    RunManifest,
    Selection,
    Verdict,
    is_truncated,
)

RECORDS = [
    CompletionRequest(messages=({"role": "user", "content": "2+2?"},), output_schema={"type": "object"}),
    Completion(text="4", data=None, tokens_in=3, tokens_out=1, latency_ms=12.5, model_id="m"),
    Completion(text="Par", finish_reason="length", reasoning="France → Paris"),
    Answer("r1", "q1", 0, "4", tokens_in=3, tokens_out=1, latency_ms=12.5, model_id="m"),
    Answer("r1", "q2", 1, None, error="model 'local': 500 after 5 attempts"),
    Answer("r1", "q3", 0, "Par", finish_reason="length", truncated=True, reasoning="The capital is…"),
    Verdict(score=5, rationale="correct", raw='{"score":5}', tokens_in=100, tokens_out=20, latency_ms=300.0),
    Judgment("r1", "q1", 0, 4, "mostly", "raw", "claude (m)", "abc", cached=True),
    Judgment("r1", "q1", 1, None, None, "garbage", "claude (m)", "abd", error="unparseable verdict"),
    RunManifest(
        run_id="r1",
        suite_name="demo",
        suite_path="suites/demo",
        suite_hash="h",
        model_name="local",
        model="smollm2",
        judge_name="offline",
        judge_model="offline-reference",
        rubric_name="correctness",
        rubric_hash="rh",
        samples=2,
        started_at="2026-11-22T23:00:00+00:00",
        config={"model": {"x": 1}, "selection": {"areas": ["geo"], "item_tags": [], "limit": 3}},
        tags=("baseline", "nightly"),
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_record_round_trips_through_one_json_line(record):
    line = record.to_json()
    assert "\n" not in line
    assert type(record).from_json(line) == record


def test_persisted_records_carry_schema_version():
    for record in (RECORDS[3], RECORDS[7], RECORDS[9]):
        assert json.loads(record.to_json())["schema_version"] == SCHEMA_VERSION


def test_item_round_trips_and_hash_ignores_tags_and_metadata():
    item = Item(id="q1", area="math", question="2+2?", reference="4", tags=("easy",), metadata={"src": "x"})
    assert Item.model_validate_json(item.model_dump_json()) == item
    retagged = item.model_copy(update={"tags": ("hard",), "metadata": {}})
    assert retagged.content_hash() == item.content_hash()
    assert item.model_copy(update={"reference": "5"}).content_hash() != item.content_hash()


def test_item_needs_question_or_messages_ending_with_user():
    with pytest.raises(ValueError, match="question"):
        Item(id="a", area="x")
    with pytest.raises(ValueError, match="user turn"):
        Item(
            id="a",
            area="x",
            messages=(Message(role="user", content="hi"), Message(role="assistant", content="yo")),
        )
    convo = Item(
        id="a", area="x",
        messages=(Message(role="system", content="Be brief."), Message(role="user", content="Capital of Peru?")),
    )  # fmt: skip
    assert [m.role for m in convo.prompt()] == ["system", "user"]
    assert "Capital of Peru?" in convo.prompt_text()


def test_a_manifest_knows_the_subset_its_run_asked():
    manifest = RECORDS[-1]
    assert isinstance(manifest, RunManifest)
    assert manifest.selection() == Selection(areas=("geo",), limit=3)
    assert manifest.selection().describe() == "areas geo · first 3"
    assert Selection().whole and Selection().describe() == "whole suite"


@pytest.mark.parametrize(
    ("reason", "cut"),
    [("length", True), ("max_tokens", True), ("stop", False), ("end_turn", False), (None, False)],
)
def test_only_the_token_limit_counts_as_truncation(reason, cut):
    assert is_truncated(reason) is cut


def test_a_result_line_holds_every_field_as_json_and_shares_nothing_with_the_row():
    import dataclasses
    import json

    from evals.records import Flag
    from evals.results import ResultRow

    filled = {}
    for f in dataclasses.fields(ResultRow):
        filled[f.name] = {"tags": ("a", "b"), "flags": (Flag("role_tag", (1, 4)),),
                          "member_scores": {"j1": 4.0, "j2": 5.0}, "truncated": True, "cached": False,
                          "sample": 2, "score": 4.5, "schema_version": 3}.get(f.name, f"v-{f.name}")  # fmt: skip
    row = ResultRow(**filled)
    line = row.to_dict()
    expected = dataclasses.asdict(row)
    expected["tags"], expected["flags"] = ["a", "b"], [Flag("role_tag", (1, 4)).to_dict()]
    assert json.loads(json.dumps(line)) == json.loads(json.dumps(expected))
    line["member_scores"]["j1"] = 1.0  # a line changed later leaves the row as it was
    assert row.member_scores == {"j1": 4.0, "j2": 5.0}
    assert ResultRow.from_row(json.loads(json.dumps(row.to_dict()))) == row
