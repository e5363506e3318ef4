"""The five doors of issue 18 through which text left the perimeter, each a regression test run through the
CLI against external fakes (``perimeter_kit``), asserting on what the fakes received over HTTP:

1. the judge canary re-sent anchors drawn while their area was ``internal`` after the suite marked it
   ``restricted``, even on a run that asked only public areas;
2. redaction missed a card number split over a line break and emails disguised with ``&#64;``, ``%40`` or a
   zero-width character; identifiers in a rubric were never redacted; documents had no team patterns;
3. ``review export`` dropped the items' sensitivity (and their run), so ``judge calibrate`` with an external
   judge sent restricted questions out;
4. ``judge rerun`` (and the canary's catch-up on a resumed run) dropped the suite's ``redact:`` patterns and
   used the level stored with the old run rather than the suite's current marking;
5. ``suite references`` and ``suite generate`` called out with no audit record.

Each failed before ``evals.outbound.gateway`` closed its door; each must keep passing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing

import click
import pytest
import yaml
from perimeter_kit import (
    BILLING,
    DOCUMENT,
    QUESTION,
    REFERENCE,
    RESTRICTED,
    RESTRICTED_QUESTION,
    RESTRICTED_REFERENCE,
    RUBRIC,
    VAULT,
    Planted,
    Project,
    perimeter_project,
    suite_doc,
)

from evals.cli import main
from evals.fakes import Fault
from evals.store import Store
from evals.store import canary as canary_rows

HR = [
    {"id": f"hr-{n}", "area": "hr", "question": f"How many heliotrope badges does shift {n} hold?",
     "reference": f"{n + 4} heliotrope badges."}
    for n in (1, 2)
]  # fmt: skip
GENERAL = [
    {"id": "general-1", "area": "general", "question": "What colour is the lobby?", "reference": "Teal."}
]
HR_TEXT = [Planted("restricted item", "text", "heliotrope (area hr, restricted since)", ("heliotrope",))]
EMPLOYEE_IDS = [p for ids in (QUESTION, REFERENCE) for p in ids.planted(config=False) if "EMPLOYEE" in p.kind]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """External model ``ext`` and judge ``claude`` (default rubric), no config patterns."""
    with perimeter_project(tmp_path, monkeypatch, config_patterns=False, rubric="correctness") as made:
        yield made


def fail_on(problems: list[str]) -> None:
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def called(project: Project, command: str, result, since: dict[str, int]) -> None:
    """The command did its work and sent something (a door test that sends nothing proves nothing)."""
    sent = project.external_requests(since)
    if result.exit_code != 0 or sent == 0:
        pytest.fail(
            f"{command}: exit {result.exit_code}, {sent} external requests:\n{result.output}", pytrace=False
        )


# -- 1. the canary -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "areas", [("billing", "general"), ("general",)], ids=["every-area-still-allowed", "only-a-public-area"]
)
def test_the_canary_sends_no_anchor_of_an_area_restricted_after_it_was_drawn(project, areas):
    project.write("suite.yaml", suite_doc([*BILLING[:2], *HR, *GENERAL], areas={"general": "public"}))
    project.ok("run", "--suite", "suite.yaml", "--run-id", "r1")
    with Store(project.root / "reports") as store:
        (anchor_set,) = canary_rows.sets(store)
        drawn = {a.item.area for a in canary_rows.anchors(store, anchor_set.set_id)}
    assert "hr" in drawn, f"the first run's anchors should include area hr (drawn from {sorted(drawn)})"
    project.write(
        "suite.yaml",
        suite_doc([*BILLING[:2], *HR, *GENERAL], areas={"general": "public", "hr": "restricted"}),
    )
    since = project.mark()
    selection = [arg for area in areas for arg in ("--area", area)]
    result = project.invoke("run", "--suite", "suite.yaml", *selection, "--run-id", "r2")
    called(project, "evals run", result, since)
    fail_on(project.leaks(f"evals run {' '.join(selection)} (its canary)", HR_TEXT, since))


# -- 2. redaction ------------------------------------------------------------------------------------------

DISGUISES = {
    "card-split-by-a-line-break": (
        "Card 4539 2175\n3377 2747 was charged twice; who refunds it?",
        Planted("question", "card number split by a line break", "4539 2175\\n3377 2747",
                ("4539", "2175", "3377", "2747"), ("4539217533772747",)),
    ),
    "email-html-entity": (
        "Who answers jane.quill&#64;example.com about refunds?",
        Planted("question", "email written with &#64;", "jane.quill&#64;example.com", ("jane.quill",)),
    ),
    "email-percent-escape": (
        "Who answers jane.quill%40example.com about refunds?",
        Planted("question", "email written with %40", "jane.quill%40example.com", ("jane.quill",)),
    ),
    "email-zero-width": (
        "Who answers jane.quill\u200b@example.com about refunds?",
        Planted("question", "email with a zero-width space", "jane.quill\\u200b@example.com", ("jane.quill",)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("disguise", list(DISGUISES))
def test_redaction_sees_through_identifiers_written_to_dodge_it(project, disguise):
    question, planted = DISGUISES[disguise]
    project.write("suite.yaml", suite_doc([{"id": "billing-1", "area": "billing", "question": question,
                                            "reference": "The refunds desk."}]))  # fmt: skip
    since = project.mark()
    result = project.invoke("run", "--suite", "suite.yaml")
    called(project, "evals run", result, since)
    fail_on(project.leaks("evals run", [planted], since))


def test_identifiers_written_in_a_rubric_are_redacted(tmp_path, monkeypatch):
    with perimeter_project(tmp_path, monkeypatch, config_patterns=False, rubric="leaky") as project:
        project.write("suite.yaml", suite_doc(BILLING[:1]))
        result = project.invoke("run", "--suite", "suite.yaml")
        called(project, "evals run", result, {})
        fail_on(project.leaks("evals run", RUBRIC.planted(config=False)))


def test_the_configs_patterns_redact_the_documents_given_to_suite_generate(tmp_path, monkeypatch):
    with perimeter_project(tmp_path, monkeypatch, config_patterns=True, rubric="correctness") as project:
        project.write(
            "docs/handbook.md", f"Refunds are settled by the refunds desk, {DOCUMENT.sentence()}.\n"
        )
        args = ("suite", "generate", "--from", "docs/handbook.md", "--generator", "writer", "--area", "billing",
                "--n", "1", "--out", "draft.jsonl")  # fmt: skip
        result = project.invoke(*args)
        called(project, "evals suite generate", result, {})
        fail_on(project.leaks("evals suite generate", DOCUMENT.planted(suite=False)))


# -- 3. review export → judge calibrate --------------------------------------------------------------------


def reviewed_labels(project: Project, keep_restricted: bool) -> None:
    """An in-house run of the whole suite (restricted area included), its review file filled by a person
    and imported as labels.jsonl, as the docs tell a team to do."""
    project.write("suite.yaml", suite_doc([*BILLING, *VAULT]))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r0")
    project.ok("review", "export", "r0")
    rows = [
        json.loads(line)
        for line in (project.root / "reports/review/r0/review.jsonl").read_text().splitlines()
    ]
    assert any(row["area"] == "vault" for row in rows), "the restricted item's answer should be up for review"
    filled = [
        {**row, "human_score": 4, "rater": "pat"} for row in rows if keep_restricted or row["area"] != "vault"
    ]
    project.write("filled.jsonl", filled)
    project.ok("review", "import", "filled.jsonl", "--into", "labels.jsonl")


CALIBRATE = ("judge", "calibrate", "--labels", "labels.jsonl", "--judge", "claude", "--resamples", "100")


def test_calibrating_an_external_judge_on_exported_reviews_sends_no_restricted_question(project):
    reviewed_labels(project, keep_restricted=True)
    since = project.mark()
    result = project.invoke(*CALIBRATE)
    refused = result.exit_code == 2 and "restricted" in result.output
    if not refused and project.external_requests(since) == 0:
        pytest.fail(f"evals judge calibrate neither judged nor refused:\n{result.output}", pytrace=False)
    fail_on(project.leaks("evals judge calibrate", RESTRICTED, since))


def test_calibrating_on_exported_reviews_redacts_with_their_runs_patterns(project):
    reviewed_labels(project, keep_restricted=False)
    since = project.mark()
    result = project.invoke(*CALIBRATE)
    if result.exit_code not in (0, 1, 2) or project.external_requests(since) == 0:
        pytest.fail(f"evals judge calibrate judged nothing:\n{result.output}", pytrace=False)
    fail_on(project.leaks("evals judge calibrate", EMPLOYEE_IDS, since))


# -- 4. judge rerun and the canary's catch-up ----------------------------------------------------------------


def test_judge_rerun_redacts_with_the_suites_patterns(project):
    project.write("suite.yaml", suite_doc([*BILLING, *VAULT]))
    project.ok("run", "--suite", "suite.yaml", "--area", "billing", "--run-id", "r1")
    assert not project.leaks("evals run", EMPLOYEE_IDS), "the run itself redacts the suite's patterns"
    since = project.mark()
    result = project.invoke("judge", "rerun", "r1", "--run-id", "r1-again")
    called(project, "evals judge rerun", result, since)
    fail_on(project.leaks("evals judge rerun", EMPLOYEE_IDS, since))


def test_judge_rerun_follows_the_suites_current_marking(project):
    project.write("suite.yaml", suite_doc([*BILLING[:1], *HR]))
    project.ok("run", "--suite", "suite.yaml", "--run-id", "r1")  # hr is internal: the judge may read it
    project.write("suite.yaml", suite_doc([*BILLING[:1], *HR], areas={"hr": "restricted"}))
    since = project.mark()
    result = project.invoke("judge", "rerun", "r1", "--run-id", "r1-again")
    if result.exit_code not in (0, 2):
        pytest.fail(f"evals judge rerun: exit {result.exit_code}:\n{result.output}", pytrace=False)
    fail_on(project.leaks("evals judge rerun", HR_TEXT, since))


def test_judge_rerun_refusal_suggests_no_flag_it_lacks(project):
    project.write("suite.yaml", suite_doc([*BILLING[:1], *VAULT]))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r0")
    result = project.invoke("judge", "rerun", "r0", "--judge", "claude", "--run-id", "r0-again")
    assert result.exit_code == 2 and "restricted" in result.output, result.output
    assert project.external_requests() == 0
    assert "--area" not in result.output, f"judge rerun has no --area, yet its refusal says:\n{result.output}"
    assert_flags_are_the_commands(result.output, ("judge", "rerun"))


def test_the_canary_catch_up_of_a_resumed_run_redacts_with_the_suites_patterns(project):
    project.write("suite.yaml", suite_doc([*BILLING, *VAULT]))
    project.ok("run", "--suite", "suite.yaml", "--area", "billing", "--run-id", "r1")  # draws the anchors
    project.ok("run", "--suite", "suite.yaml", "--area", "billing", "--run-id", "r2")
    # As if the process had ended between r2's last verdict and its canary: the resume only catches up.
    with closing(sqlite3.connect(project.root / "reports" / "evals.db")) as db, db:
        db.execute("DELETE FROM canary_scores WHERE run_id = 'r2'")
        db.execute("DELETE FROM canary_observations WHERE run_id = 'r2'")
    since = project.mark()
    result = project.invoke("run", "--resume", "r2")
    called(project, "evals run --resume (the canary's catch-up)", result, since)
    fail_on(project.leaks("evals run --resume (the canary's catch-up)", EMPLOYEE_IDS, since))


# -- 5. the audit trail ------------------------------------------------------------------------------------


def references(project: Project) -> tuple[str, ...]:
    items = [{k: v for k, v in item.items() if k != "reference"} for item in BILLING[:2]]
    project.write("questions.yaml", suite_doc(items))
    return ("suite", "references", "questions.yaml", "--model", "ext", "--out", "filled.jsonl")


def generate(project: Project) -> tuple[str, ...]:
    project.write("docs/handbook.md", "Refunds are settled by the refunds desk within ten days.\n")
    return ("suite", "generate", "--from", "docs/handbook.md", "--generator", "writer", "--area", "billing",
            "--n", "1", "--out", "draft.jsonl")  # fmt: skip


@pytest.mark.parametrize("prepare", [references, generate], ids=["suite-references", "suite-generate"])
def test_authoring_commands_record_every_request_on_the_audit_trail(project, prepare):
    args = prepare(project)
    command = "evals " + " ".join(args[:2])
    result = project.invoke(*args)
    called(project, command, result, {})
    fail_on(project.audit_gaps(command))


# -- variants (verification of issue 18): labels rows without a level, default_sensitivity, retries ----------


def hand_written_labels(project: Project, rows: list[dict], drop: tuple[str, ...]) -> None:
    """The filled review file with the columns ``drop`` taken out (a labels file written by hand, or by a
    spreadsheet that lost them), imported as labels.jsonl."""
    project.write("filled.jsonl", [{k: v for k, v in row.items() if k not in drop} for row in rows])
    project.ok("review", "import", "filled.jsonl", "--into", "labels.jsonl")


def exported(project: Project, run_id: str) -> list[dict]:
    project.ok("review", "export", run_id)
    path = project.root / f"reports/review/{run_id}/review.jsonl"
    return [{**json.loads(line), "human_score": 4, "rater": "pat"} for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "drop", [("sensitivity",), ("sensitivity", "run_id")], ids=["no-level", "no-level-no-run"]
)
def test_a_labels_row_without_a_level_takes_its_stored_questions_level(project, drop):
    project.write("suite.yaml", suite_doc([*BILLING, *VAULT]))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r0")
    hand_written_labels(project, exported(project, "r0"), drop)
    since = project.mark()
    result = project.invoke(*CALIBRATE)
    assert result.exit_code == 2 and "restricted" in result.output, result.output
    assert project.external_requests(since) == 0
    fail_on(project.leaks("evals judge calibrate", RESTRICTED, since))


def test_a_labels_row_takes_the_stricter_of_its_level_and_a_newer_runs(project):
    # Exported while the area was internal; the suite has marked it restricted since, and a later run
    # stored its items so: the row's "internal" (and its run's) no longer lets the question out.
    project.write("suite.yaml", suite_doc([*BILLING[:1], *HR]))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r0")
    rows = exported(project, "r0")
    assert {row["sensitivity"] for row in rows} == {"internal"}
    project.write("suite.yaml", suite_doc([*BILLING[:1], *HR], areas={"hr": "restricted"}))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r1")
    for drop in [(), ("sensitivity",)]:
        hand_written_labels(project, rows, drop)
        since = project.mark()
        result = project.invoke(*CALIBRATE)
        assert result.exit_code == 2 and "restricted" in result.output, (drop, result.output)
        fail_on(project.leaks("evals judge calibrate", HR_TEXT, since))


def test_a_labels_row_matches_its_stored_question_written_with_other_spacing(project):
    project.write("suite.yaml", suite_doc([*BILLING[:1], *VAULT]))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r0")
    rows = exported(project, "r0")
    # a spreadsheet's round trip: line endings, a trailing space, a no-break space
    respaced = [{**row, "question": row["question"].replace(" ", "\u00a0", 1) + " "} for row in rows]
    hand_written_labels(project, respaced, ("sensitivity", "run_id"))
    since = project.mark()
    result = project.invoke(*CALIBRATE)
    assert result.exit_code == 2 and "restricted" in result.output, result.output
    assert project.external_requests(since) == 0


def test_default_sensitivity_restricted_keeps_a_row_of_unknown_text_home(project):
    config = yaml.safe_load((project.root / "evals.yaml").read_text())
    project.write("evals.yaml", {**config, "default_sensitivity": "restricted"})
    project.write("labels.jsonl", [
        {"id": "u1", "area": "misc", "question": "Which quartzite shelf?", "reference": "The marigold annex.",
         "answer": "The marigold annex.", "human_score": 5},
    ])  # fmt: skip
    result = project.invoke(*CALIBRATE)
    assert result.exit_code == 2 and "restricted" in result.output, result.output
    assert project.external_requests() == 0
    # the message says why a row of area "misc" is restricted, and which row to leave out
    assert "(u1)" in result.output and "default_sensitivity: restricted in evals.yaml" in result.output
    assert_flags_are_the_commands(result.output, ("judge", "calibrate"))


def assert_flags_are_the_commands(message: str, command: tuple[str, ...]) -> None:
    """Every ``--flag`` a refusal suggests is one of the command's own options."""
    group = main
    for name in command:
        group = group.get_command(click.Context(group), name)
    own = {opt for param in group.params for opt in getattr(param, "opts", [])}
    suggested = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", message))
    assert suggested, f"the refusal suggests no option of evals {' '.join(command)}: {message}"
    assert suggested <= own, f"evals {' '.join(command)} has no {sorted(suggested - own)}: {message}"


def test_judge_rerun_refusal_after_the_suite_restricted_an_area_names_its_own_flags(project):
    # claude names an in-house judge for restricted items: evals run's way; a rerun grades with one judge
    config = yaml.safe_load((project.root / "evals.yaml").read_text())
    config["judges"]["claude"]["restricted_judge"] = "inhouse"
    project.write("evals.yaml", config)
    project.write("suite.yaml", suite_doc([*BILLING[:1], *HR]))
    project.ok("run", "--suite", "suite.yaml", "--model", "inhouse", "--judge", "inhouse", "--run-id", "r0")
    project.write("suite.yaml", suite_doc([*BILLING[:1], *HR], areas={"hr": "restricted"}))
    since = project.mark()
    result = project.invoke("judge", "rerun", "r0", "--judge", "claude", "--run-id", "r0-again")
    assert result.exit_code == 2 and "restricted" in result.output, result.output
    assert project.external_requests(since) == 0
    assert_flags_are_the_commands(result.output, ("judge", "rerun"))
    # the way out it names works: the in-house judge re-judges the run
    project.ok("judge", "rerun", "r0", "--judge", "inhouse", "--run-id", "r0-inhouse")


@pytest.mark.parametrize(("prepare", "fake"), [(references, "ext"), (generate, "writer")],
                         ids=["suite-references", "suite-generate"])  # fmt: skip
def test_authoring_commands_record_each_attempt_of_a_retried_request(project, prepare, fake):
    # Two failures then an answer: three requests reached the fake, so three audit records (one per
    # request sent, retries included), each matching the body the fake received.
    config = yaml.safe_load((project.root / "evals.yaml").read_text())
    config["models"][fake].update(max_retries=2)
    project.write("evals.yaml", config)
    project.fakes[fake].server.inject(Fault("server_error", status=503), Fault("server_error", status=503))
    args = prepare(project)
    command = "evals " + " ".join(args[:2])
    result = project.invoke(*args)
    called(project, command, result, {})
    assert len(project.sent(fake)) >= 3, f"{command}: the fake saw {len(project.sent(fake))} requests"
    fail_on(project.audit_gaps(command))


def _restrict_hr(how: str) -> dict:
    items = [*BILLING[:2], *HR, *GENERAL]
    if how == "item":
        return suite_doc([{**i, "sensitivity": "restricted"} if i["area"] == "hr" else i for i in items],
                         areas={"general": "public"})  # fmt: skip
    if how == "suite":  # the whole suite restricted; only general stays public
        return {**suite_doc(items, areas={"general": "public"}), "sensitivity": "restricted"}
    if how == "gone":  # the hr items moved out of the suite (to a restricted one kept elsewhere)
        return suite_doc([i for i in items if i["area"] != "hr"], areas={"general": "public"})
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["item", "suite", "gone"])
def test_the_canary_sends_no_anchor_restricted_since_by_item_or_suite_or_moved_out(project, how):
    project.write("suite.yaml", suite_doc([*BILLING[:2], *HR, *GENERAL], areas={"general": "public"}))
    project.ok("run", "--suite", "suite.yaml", "--run-id", "r1")
    project.write("suite.yaml", _restrict_hr(how))
    since = project.mark()
    result = project.invoke("run", "--suite", "suite.yaml", "--area", "general", "--run-id", "r2")
    called(project, "evals run", result, since)
    fail_on(project.leaks(f"evals run --area general (its canary; hr restricted by {how})", HR_TEXT, since))


DISGUISED = {
    "card-crlf-dashes": ("4539-2175-\r\n3377-2747", ("4539", "2175", "3377", "2747"), ("4539217533772747",)),
    "card-tab-break": ("4539 2175\t\n\t3377 2747", ("4539", "2175", "3377", "2747"), ("4539217533772747",)),
    "card-en-dashes": ("4539\u20132175\u20133377\u20132747", ("4539", "2175", "3377", "2747"), ()),
    "email-hex-entity": ("dana.vale&#x40;example.com", ("dana.vale",), ()),
    "email-bracket-at": ("dana.vale [at] example [dot] com", ("dana.vale",), ()),
    "email-zero-width-domain": ("dana.vale@exa\u200dmple.com", ("dana.vale",), ()),
    "email-split-at-the-at": ("dana.vale@\nexample.com", ("dana.vale",), ()),
    "ticket-fullwidth": ("ＴＣＫ－５５１２３", ("55123",), ()),  # the config's pattern, written fullwidth
}  # fmt: skip


@pytest.mark.parametrize("disguise", list(DISGUISED))
def test_a_disguised_identifier_in_a_rubric_or_a_document_is_redacted(tmp_path, monkeypatch, disguise):
    written, tells, squeezed = DISGUISED[disguise]
    planted = [Planted("rubric/document", disguise, written, tells, squeezed)]
    with perimeter_project(tmp_path, monkeypatch, config_patterns=True, rubric="leaky") as project:
        rubric = yaml.safe_load((project.root / "judges/leaky.yaml").read_text())
        rubric["criteria"].append(f"Escalate to {written} when unsure.")
        project.write("judges/leaky.yaml", rubric)
        project.write("suite.yaml", suite_doc(BILLING[:1]))
        result = project.invoke("run", "--suite", "suite.yaml")
        called(project, "evals run", result, {})
        fail_on(project.leaks("evals run (the rubric)", planted))
        project.write("docs/handbook.md", f"Refunds go to the desk,\nwhich answers {written} within a day.\n")
        since = project.mark()
        args = ("suite", "generate", "--from", "docs/handbook.md", "--generator", "writer", "--area", "billing",
                "--n", "1", "--out", "draft.jsonl")  # fmt: skip
        result = project.invoke(*args)
        called(project, "evals suite generate", result, since)
        fail_on(project.leaks("evals suite generate (the document)", planted, since))


@pytest.mark.parametrize("command", ["run", "suite-references", "suite-generate", "redact"])
def test_default_sensitivity_restricted_keeps_text_nothing_marks_home(project, command):
    """Items no suite, area or item marks, and documents, take default_sensitivity: restricted stays home."""
    config = yaml.safe_load((project.root / "evals.yaml").read_text())
    project.write("evals.yaml", {**config, "default_sensitivity": "restricted"})
    unmarked = [{**item, "area": "misc"} for item in VAULT]
    if command == "run":
        project.write("suite.yaml", suite_doc(unmarked, areas={}))
        args: tuple[str, ...] = ("run", "--suite", "suite.yaml")
    elif command == "suite-references":
        project.write("questions.yaml", suite_doc([{k: v for k, v in i.items() if k != "reference"}
                                                   for i in unmarked], areas={}))  # fmt: skip
        args = ("suite", "references", "questions.yaml", "--model", "ext", "--out", "filled.jsonl")
    elif command == "suite-generate":
        project.write("docs/vault.md", f"{RESTRICTED_QUESTION} {RESTRICTED_REFERENCE}\n")
        args = ("suite", "generate", "--from", "docs/vault.md", "--generator", "writer", "--area", "misc",
                "--n", "1", "--out", "draft.jsonl")  # fmt: skip
    else:  # the preview says what a run would do: refuse
        project.write("suite.yaml", suite_doc(unmarked, areas={}))
        args = ("redact", "suite.yaml", "--judge", "claude")
    result = project.invoke(*args)
    assert project.external_requests() == 0, result.output
    fail_on(project.leaks(f"evals {command}", RESTRICTED))
    if command == "redact":
        assert result.exit_code == 0 and "vault-1 (misc): not sent (restricted)" in result.output, (
            result.output
        )
    elif command == "suite-references":
        assert result.exit_code == 0 and "1 restricted left out" in result.output, result.output
    elif command != "redact":
        assert result.exit_code == 2 and "restricted" in result.output, result.output
        assert "restricted_judge" not in result.output or command == "run", result.output
