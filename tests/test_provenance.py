"""Provenance (issue 11.2): a run's rubric hash covers every rubric its items name, and the gate refuses
(exit 2), naming what differs, when the rubric set, the judge's fingerprint or the model id the judge's
API reported differ between candidate and baseline; two runs judged alike pass.

Real runs through the SDKs against the fake servers; the suite's later items name a second rubric.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.judge.provenance import provenance_differences, rubrics_hash
from evals.records import JudgingProvenance
from evals.store import Store

SUITE = [
    *[{"id": f"geo-{i}", "area": "geography", "question": f"Capital number {i}?", "reference": f"city{i}"}
      for i in range(4)],
    *[{"id": f"math-{i}", "area": "math", "question": f"Sum number {i}?", "reference": f"sum{i}",
       "rubric": "strict"} for i in range(4)],
]  # fmt: skip
REFERENCES = {item["question"]: item["reference"] for item in SUITE}
WORDING = ["It is"]
"""How the model words its answers; a new wording is a new answer, judged anew rather than from the cache."""


@pytest.fixture
def judge(tmp_path, monkeypatch):
    """A project with its own rubrics (correctness, and strict for the math items) and a lenient policy;
    the model's and the judge's fake servers stay up across its runs. Yields the judge's server."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    WORDING[0] = "It is"
    judges = tmp_path / "judges"
    judges.mkdir()
    default = Path(__file__).parent.parent / "evals" / "defaults" / "judges" / "correctness.yaml"
    shutil.copy(default, judges / "correctness.yaml")
    (judges / "strict.yaml").write_text(default.read_text().replace("name: correctness", "name: strict"))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    (tmp_path / "policy.yaml").write_text("min_pairs: 4\n")
    monkeypatch.chdir(tmp_path)
    with (
        FakeOpenAI(text_reply(lambda q: f"{WORDING[0]} {REFERENCES[q]}.")) as model,
        FakeAnthropic(grade_by_reference, model_id="claude-test-20261101") as server,
    ):
        config = {
            "models": {"local": {"base_url": model.url, "model": "qwen", "max_retries": 0}},
            "judges": {"claude": {"provider": "anthropic", "base_url": server.url, "model": "claude-test",
                                  "max_retries": 0}},
            "judges_dir": str(judges),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        yield server


def run(run_id: str) -> None:
    result = CliRunner().invoke(
        main, ["run", "--suite", "suite.jsonl", "--run-id", run_id], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


def gate(candidate: str, baseline: str):
    return CliRunner().invoke(
        main,
        ["gate", "--candidate", candidate, "--baseline", baseline, "--policy", "policy.yaml"],
        catch_exceptions=False,
    )


def test_runs_judged_alike_pass(judge):
    run("base")
    run("cand")
    result = gate("cand", "base")
    assert result.exit_code == 0, result.output
    assert "judged differently" not in result.output


def test_editing_the_rubric_of_a_later_item_changes_the_run_hash_and_the_gate_refuses_naming_it(judge):
    run("base")
    strict = Path("judges", "strict.yaml")
    strict.write_text(strict.read_text().replace("Grade only what the answer says.", "Grade what it says."))
    run("cand")
    with Store("reports") as store:
        base, cand = store.run("base"), store.run("cand")
    # the first item's rubric is unchanged: only a hash over every rubric sees the edit
    assert base.rubric_hash != cand.rubric_hash
    assert base.rubric_name == cand.rubric_name == "correctness+strict"
    result = gate("cand", "base")
    assert result.exit_code == 2, result.output
    # the headline and the reasons under it both say it: read the reason's own line
    (reason,) = [line for line in result.output.splitlines() if line.startswith("- judged differently")]
    # Markdown puts a zero-width space after an @ so that it mentions nobody; the terminal shows it escaped
    reason = reason.replace("\\u200b", "").replace("\u200b", "")
    assert re.search(r"rubric strict@[0-9a-f]{16} vs strict@[0-9a-f]{16}", reason)
    assert "correctness@" not in reason  # the rubric that did not change is not blamed


def test_a_judge_whose_api_reports_another_model_id_makes_the_gate_refuse(judge):
    run("base")
    judge.model_id = "claude-test-20270315"  # the same configured judge; the server moved on
    WORDING[0] = "Surely"  # new answers, so the judge is asked again rather than its verdicts reused
    run("cand")
    result = gate("cand", "base")
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "judge model id reported by its API 'claude-test-20270315' vs 'claude-test-20261101'" in output


def test_a_different_judge_fingerprint_in_the_verdicts_is_named(judge):
    run("base")
    run("cand")
    with Store("reports") as store:
        base, cand = store.run("base"), store.run("cand")
        pb = store.judging_provenance("base")
        assert len(pb.fingerprints) == 1 and pb.model_ids == {"claude-test-20261101"}
        assert len(pb.rubric_hashes) == 2  # both rubrics graded scored answers
    other = JudgingProvenance(frozenset({"0123456789abcdef"}), pb.model_ids, pb.rubric_hashes)
    differences = provenance_differences(cand, base, other, pb)
    assert differences == [f"judge fingerprint '0123456789abcdef' vs {next(iter(pb.fingerprints))!r}"]
    # a run stored before verdicts kept their provenance is not blamed for it
    assert provenance_differences(cand, base, JudgingProvenance(), pb) == []


def test_a_run_of_one_rubric_keeps_that_rubrics_hash_so_older_runs_still_compare():
    assert rubrics_hash(["correctness@0123456789abcdef"]) == "0123456789abcdef"
    both = rubrics_hash(["strict@1111111111111111", "correctness@0123456789abcdef"])
    assert both == rubrics_hash(["correctness@0123456789abcdef", "strict@1111111111111111"])
    assert both != rubrics_hash(["correctness@0123456789abcdef", "strict@2222222222222222"])
    assert rubrics_hash([]) == ""
