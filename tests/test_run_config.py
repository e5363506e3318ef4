"""A run's config snapshot (``RunConfig``) as every earlier version wrote it: it loads, reads typed, and goes
through a store, an export and an import unchanged.

``data/old_run_configs.json`` holds one snapshot per change to what ``plan_run`` and its callers wrote (from
``git log -p``; each key names the commit), with endpoints as those versions' ``Endpoint.snapshot`` made
them, and one with keys this version does not know.
"""

import json
import sqlite3
from pathlib import Path

import pytest

from evals.judge.panel import member_modes, snapshot_members
from evals.judge.provenance import judge_identity, provenance_differences
from evals.plan import structured_mode
from evals.records import CustomPattern, RunConfig, RunManifest, Selection
from evals.routing.economics import api_price
from evals.routing.route import model_input
from evals.runner import judge_repeats, judging_fresh
from evals.store import Store
from evals.store.rows import panel_aggregation
from evals.store.transfer import import_runs
from evals.trust.rerun import rubric_override, source_of

OLD = json.loads((Path(__file__).parent / "data" / "old_run_configs.json").read_text())
FIRST, SUBSET, REDACTED, PANEL, REPEATS, RERUN, UNKNOWN = OLD
RUN = "20261101T000000Z-local-0a1b2c3d"


def old_manifest(config: dict) -> dict:
    """A manifest as the first release exported it (no ``rubrics`` yet), with the items ``evals import`` needs."""
    return {
        "run_id": RUN, "suite_name": "demo", "suite_path": "suites/demo", "suite_hash": "h",
        "model_name": "local", "model": "smollm2", "judge_name": "claude", "judge_model": "claude-x",
        "rubric_name": "correctness", "rubric_hash": "rh", "samples": 1, "started_at": "2026-11-01T00:00:00+00:00",
        "config": config, "tags": ["nightly"], "model_id": "smollm2-135m", "status": "finished",
        "ended_at": "2026-11-01T00:05:00+00:00", "lookingglass_version": "0.1.0", "schema_version": 1,
        "items": [{"id": "geo-1", "area": "geography", "question": "Capital of Peru?", "reference": "Lima"}],
    }  # fmt: skip


def manifest(name: str) -> RunManifest:
    return RunManifest.from_dict(old_manifest(OLD[name]))


@pytest.mark.parametrize("name", OLD)
def test_a_snapshot_from_an_earlier_version_loads_and_is_written_back_as_it_was(name):
    m = manifest(name)
    assert isinstance(m.config, RunConfig)
    assert m.to_dict()["config"] == OLD[name]  # no defaults added, nothing dropped, unknown keys kept
    assert json.loads(m.config.model_dump_json()) == OLD[name]
    assert RunManifest.from_json(m.to_json()) == m


def test_what_an_earlier_version_did_not_write_reads_as_the_defaults():
    m = manifest(FIRST)
    assert (judge_repeats(m), judging_fresh(m), structured_mode(m)) == (1, False, None)
    assert m.selection().whole and m.config.redaction is None and model_input(m) is None
    assert (source_of(m), rubric_override(m), panel_aggregation(m)) == (None, None, None)
    assert member_modes(m) == {} and snapshot_members(m) == {}
    assert m.config.model.reasoning == "separate"  # the first release kept every answer's reasoning apart
    assert m.config.patterns == () and not m.config.recorded("patterns")
    assert m.config.model.price_per_hour == 1.2 and api_price(m.config) is None
    # a setting the snapshot never recorded is no part of the judge's identity, not even as None
    assert "seed" not in judge_identity(m) and judge_identity(m)["temperature"] == 0.0
    assert "max_concurrency" not in judge_identity(m)


def test_each_earlier_snapshot_reads_typed_as_it_was_written():
    subset = manifest(SUBSET)
    assert subset.selection() == Selection(areas=("geography",), limit=2)
    assert structured_mode(subset) == "json_object"

    redacted = manifest(REDACTED).config.redaction
    assert redacted is not None and (redacted.status, redacted.judge_external) == ("redacted", True)
    assert redacted.version == "presidio-2.2.355+0123456789abcdef" and redacted.ner is None

    panel = manifest(PANEL)
    assert panel_aggregation(panel) == "median"
    assert member_modes(panel) == {"claude": "json_schema", "gpt": "json_object"}
    assert snapshot_members(panel)["gpt"].model == "gpt-y"
    identity = judge_identity(panel)
    assert identity["panel.members"] == ["claude", "gpt"] and identity["panel.aggregate"] == "median"
    assert identity["gpt.model"] == "gpt-y" and identity["claude.external"] is True
    assert not any(
        k.endswith((".max_retries", ".api_key_env", ".rubric", ".structured", ".seed")) for k in identity
    )

    assert judge_repeats(manifest(REPEATS)) == 3
    rerun = manifest(RERUN)
    assert (source_of(rerun), rubric_override(rerun)) == ("20261101T000000Z-smollm2-0a1b2c3d", "strict")
    assert (judge_repeats(rerun), judging_fresh(rerun)) == (3, True)

    unknown = manifest(UNKNOWN).config
    assert unknown.model.model_extra == {"legacy_knob": 7}
    assert unknown.model_extra == {"retired": {"kept": [1, 2], "as": "written"}}


@pytest.mark.parametrize("name", OLD)
def test_an_old_snapshot_is_the_same_judging_as_itself_after_a_round_trip(name):
    m = manifest(name)
    assert provenance_differences(m, RunManifest.from_json(m.to_json())) == []


def stored_config(reports: Path) -> dict:
    db = sqlite3.connect(reports / "evals.db")
    try:
        return json.loads(db.execute("SELECT config_json FROM runs WHERE run_id = ?", (RUN,)).fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("name", OLD)
def test_an_old_export_goes_through_store_export_and_import_unchanged(name, tmp_path, open_store):
    folder = tmp_path / "old" / RUN
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(old_manifest(OLD[name])))
    (folder / "results.jsonl").write_text("")
    with open_store() as store:  # SQLite and PostgreSQL
        import_runs(tmp_path / "old", store)
        loaded = store.run(RUN)
        assert loaded.config.model_dump(mode="json") == OLD[name]
        store.set_status(RUN, "finished", "2026-11-01T00:06:00+00:00")  # any later write keeps it too
        exported = store.export_jsonl(RUN).parent
    assert json.loads((exported / "manifest.json").read_text())["config"] == OLD[name]
    with Store(tmp_path / "again") as again:
        import_runs(exported, again)
        assert again.run(RUN).config == loaded.config
    assert stored_config(tmp_path / "again") == OLD[name]


def test_updated_validates_the_change_and_keeps_everything_else():
    config = manifest(UNKNOWN).config
    changed = config.updated(structured="text", judging={"repeats": 2})
    assert changed.structured == "text" and changed.judging.repeats == 2
    assert changed.model_dump(mode="json") == {
        **OLD[UNKNOWN],
        "structured": "text",
        "judging": {"repeats": 2},
    }
    assert config.structured is None  # the original is unchanged
    with pytest.raises(TypeError, match="no field strucutred"):
        config.updated(strucutred="text")
    with pytest.raises(ValueError, match="repeats"):
        config.updated(judging={"repeats": "many"})


def test_a_new_snapshot_keeps_the_suite_patterns_typed():
    pattern = CustomPattern(name="EMPLOYEE_ID", regex=r"EMP-\d{6}", context=("employee",))
    config = RunConfig.model_validate({"patterns": [pattern.model_dump(mode="json")]})
    assert config.patterns == (pattern,) and config.recorded("patterns")
    assert RunConfig.model_validate_json(config.model_dump_json()) == config
    with pytest.raises(ValueError, match="regular expression"):
        RunConfig.model_validate({"patterns": [{"name": "X", "regex": "(("}]})
