"""The perimeter test (issue 18, item 5): every command that can call a model, judge or generator, run as a
user runs it against fake servers marked ``external: true``, keeps the promise: restricted text goes to no
external endpoint, identifiers are redacted, and every request sent is on the audit trail.

Each case plants identifiers in every field its command sends (question, reference, answer, rubric,
document, labels row: an email and a card number the built-in recognizers know, an EMPLOYEE_ID of the
suite's ``redact:`` and a TICKET of evals.yaml's ``redaction.patterns``) next to a restricted area, runs
the command, and asserts from what the fakes received over HTTP that none of it got out, and from the
store that it holds exactly one audit record per request the fakes received.

Every case runs a second time with telemetry to an external collector capturing the calls' messages: the
collector is a door out too, under the same promise.

A last test walks the CLI: a command this file neither runs nor lists as staying local fails it, so a new
command cannot forget the perimeter (and a meta-test checks that the walk does fail on one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
import pytest
import yaml
from click.testing import Result
from perimeter_kit import (
    ANSWER,
    BILLING,
    DOCUMENT,
    LABELS,
    QUESTION,
    REFERENCE,
    RESTRICTED,
    RESTRICTED_QUESTION,
    RESTRICTED_REFERENCE,
    RUBRIC,
    VAULT,
    Planted,
    Project,
    answer_with_identifiers,
    perimeter_project,
    request_text,
    suite_doc,
)

from evals.cli import main
from evals.fakes import Fault, text_reply
from evals.localmodel import LocalServer, ServerOptions


def planted(suite: bool) -> list[Planted]:
    """Everything that must not reach an external fake, whichever field it was written in. The suite's
    EMPLOYEE_ID pattern counts only for a command that works on the suite: documents, labels files and
    the probe set belong to no suite, so their EMPLOYEE_IDs are not identifiers anyone declared."""
    fields = (QUESTION, REFERENCE, ANSWER, RUBRIC, DOCUMENT, LABELS)
    return [*(p for ids in fields for p in ids.planted(suite=suite)), *RESTRICTED]


@dataclass
class Run:
    """What a case did: the last command's result, and the fakes' request counts before it."""

    result: Result
    before: dict[str, int]


def last(project: Project, *args: str) -> Run:
    """Run the command the case is about (its setup steps ran before, each checked with ``project.ok``)."""
    before = project.mark()
    return Run(project.invoke(*args), before)


def write_suite(project: Project) -> None:
    project.write("suite.yaml", suite_doc([*BILLING, *VAULT]))


RUN = ("run", "--suite", "suite.yaml", "--area", "billing")
"""A run of the public part of a suite that has a restricted area (a run with it would be refused)."""


def run(project: Project) -> Run:
    write_suite(project)
    return last(project, *RUN, "--run-id", "r1")


def run_batch(project: Project) -> Run:
    """A batch judge (``judging: batch``): the verdicts go out as one Message Batch, each request redacted and
    on the audit trail, the upload recorded as a call."""
    write_suite(project)
    config = yaml.safe_load((project.root / "evals.yaml").read_text())
    config["judges"]["claude"].update(judging="batch", batch_poll_s=0.01)
    project.write("evals.yaml", config)
    done = last(project, *RUN, "--run-id", "r1")
    assert project.fakes["claude"].server.batch_book.batches, "the judge's verdicts went out in no batch"
    return done


def run_local_judge(project: Project) -> Run:
    """``--judge local``: the judge entry ``local`` (the bundled model's, here the in-house fake serving it)
    grades; the external model still gets the items redacted, and both sides' calls are audited."""
    write_suite(project)
    config = yaml.safe_load((project.root / "evals.yaml").read_text())
    inhouse = project.fakes["inhouse-judge"].server
    config["judges"]["local"] = {"base_url": inhouse.url, "model": "inhouse-judge", "max_retries": 0}
    project.write("evals.yaml", config)
    before = project.mark()
    done = last(project, *RUN, "--run-id", "r1", "--judge", "local")
    assert len(project.sent("inhouse-judge", before)) > 0, "the local judge graded nothing"
    return done


def resume(project: Project) -> Run:
    write_suite(project)
    # The model's first two calls fail: with --fail-after 2 the run stops, interrupted, resumable.
    project.fakes["ext"].server.inject(Fault("server_error", status=503), Fault("server_error", status=503))
    stopped = project.ok(*RUN, "--run-id", "r1", "--fail-after", "2", codes=(2,))
    assert "evals run --resume r1" in stopped.output, stopped.output
    return last(project, "run", "--resume", "r1")


def worker(project: Project) -> Run:
    """A run planned for workers (nothing sent), then worked by one ``evals worker``."""
    write_suite(project)
    project.ok(*RUN, "--run-id", "r1", "--plan-only")
    return last(project, "worker", "r1")


def canary(project: Project) -> Run:
    """The judge's drift canary: the first run draws anchors, the second re-judges them (never cached)."""
    write_suite(project)
    project.ok(*RUN, "--run-id", "r1")
    return last(project, *RUN, "--run-id", "r2")


def rerun(project: Project) -> Run:
    write_suite(project)
    project.ok(*RUN, "--run-id", "r1")
    return last(project, "judge", "rerun", "r1", "--repeats", "2", "--run-id", "r1-again")


def calibrate(project: Project) -> Run:
    """A labels file with identifiers in every text, and one restricted row (as ``review export`` writes it)."""
    rows: list[dict[str, object]] = [
        {"id": f"l{n}", "area": "billing", "question": f"Which form closes case {n}? {LABELS.sentence()}.",
         "reference": "The blue form.", "answer": f"{'The blue form' if good else 'No idea'}. {LABELS.sentence()}.",
         "human_score": 5 if good else 1}
        for n, good in enumerate((True, False, True, False, True, False))
    ]  # fmt: skip
    rows.append(
        {"id": "l-vault", "area": "vault", "question": RESTRICTED_QUESTION, "reference": RESTRICTED_REFERENCE,
         "answer": RESTRICTED_REFERENCE, "human_score": 5, "sensitivity": "restricted"}
    )  # fmt: skip
    project.write("labels.jsonl", rows)
    return last(
        project, "judge", "calibrate", "--labels", "labels.jsonl", "--judge", "claude", "--resamples", "100"
    )


def probe(project: Project) -> Run:
    """The shipped probe set graded with the team's rubric (its identifiers are what can leak)."""
    return last(project, "judge", "probe", "--judge", "claude")


def references(project: Project) -> Run:
    items = [{k: v for k, v in item.items() if k != "reference"} for item in [*BILLING, *VAULT]]
    project.write("questions.yaml", suite_doc(items))
    return last(project, "suite", "references", "questions.yaml", "--model", "ext", "--out", "filled.jsonl")


def generate(project: Project) -> Run:
    """Items from a document with identifiers; --local grades a trial answer of each with the judge."""
    project.write(
        "docs/handbook.md",
        f"Refunds are settled by the refunds desk, {DOCUMENT.sentence()}.\n\n"
        "Chargebacks go to the disputes team within thirty days.\n",
    )
    return last(
        project, "suite", "generate", "--from", "docs/handbook.md", "--generator", "writer", "--area", "billing",
        "--n", "2", "--out", "draft.jsonl", "--local", "ext", "--judge", "claude",
    )  # fmt: skip


def gate(project: Project) -> Run:
    """``gate: {confirm_repeats}``: a failing area's answers of both runs are graded again before failing."""
    write_suite(project)
    project.fakes["claude"].server.responder = lambda body: {"rationale": "right", "score": 5}
    project.ok(*RUN, "--run-id", "r1")
    # the candidate answers otherwise (no verdict from the cache) and the judge finds it worse
    project.fakes["ext"].server.responder = text_reply(lambda q: answer_with_identifiers(q) + " (v2)")
    project.fakes["claude"].server.responder = lambda body: {"rationale": "worse", "score": 1}
    project.ok(*RUN, "--run-id", "r2")
    project.write("policy.yaml", {"min_pairs": 2, "min_area_pairs": 2, "confirm_repeats": 2})
    # (the canary sees the judge turn harsh: that alone would be "cannot decide")
    return last(
        project,
        "gate",
        "--candidate",
        "r2",
        "--baseline",
        "r1",
        "--policy",
        "policy.yaml",
        "--allow-judge-change",
    )


def demo(project: Project) -> Run:
    """``evals demo`` with the team's external judge; the bundled llama.cpp server is the in-house fake."""
    inhouse = project.fakes["inhouse"].server

    @contextmanager
    def fake_local_server(options: ServerOptions | None = None) -> Iterator[LocalServer]:
        yield LocalServer(
            inhouse.url, "smollm2-135m-instruct", "sha256:" + "0" * 64, options or ServerOptions()
        )

    project.monkeypatch.setattr("evals.cli.local.local_server", fake_local_server)
    return last(project, "demo", "--judge", "claude", "--limit", "3")


@dataclass(frozen=True)
class Case:
    """One command that can call out, as a user runs it."""

    command: str
    """The click command it covers, as typed after ``evals``."""
    steps: Callable[[Project], Run]
    suite: bool
    """Whether the command works on the suite, whose ``redact:`` patterns then apply to all it sends."""
    codes: tuple[int, ...] = (0,)
    """Exit codes of the last command that mean it did its work (calibrate: 1 is "not calibrated")."""
    may_refuse: bool = False
    """The command may also keep the promise by refusing with a message naming restricted text (exit 2)."""


CASES = {
    "run": Case("run", run, suite=True),
    "run-resume": Case("run", resume, suite=True),
    "run-batch-judge": Case("run", run_batch, suite=True),
    "run-local-judge": Case("run", run_local_judge, suite=True),
    "worker": Case("worker", worker, suite=True),
    "canary": Case("run", canary, suite=True),
    "judge-rerun": Case("judge rerun", rerun, suite=True),
    "judge-calibrate": Case(
        "judge calibrate",
        calibrate,
        suite=False,
        codes=(0, 1),
        may_refuse=True,
    ),
    "judge-probe": Case("judge probe", probe, suite=False),
    "suite-references": Case("suite references", references, suite=True),
    "suite-generate": Case("suite generate", generate, suite=False),
    "demo": Case("demo", demo, suite=False),
    "gate-confirm": Case("gate", gate, suite=True, codes=(1,)),
}

CALLS_OUT = {case.command for case in CASES.values()}
STAYS_LOCAL = {
    "audit show": "reads",
    "audit verify": "reads",
    "baseline list": "reads",
    "baseline set": "store",
    "compare": "reads",
    "docs": "prints",  # the reference shipped in the package
    "export history": "files",
    "export weak": "files",
    "import": "store",
    "index": "files",
    "init": "scaffold",
    "judge canary reset": "store",  # --from-latest anchors on stored verdicts, no call
    "judge drift": "reads",
    "model fetch": "installer",  # pip downloads a wheel; no text of ours leaves
    "purge": "store",
    "redact": "preview",  # shows what redaction would send, sends nothing
    "report": "files",
    "review export": "files",
    "review import": "files",
    "rollback": "files",
    "route": "reads",
    "runs exclude": "store",
    "runs list": "reads",
    "serve-local": "server",  # serves the bundled model on loopback; calls nothing
    "store copy": "store",
    "store keygen": "prints",
    "store rekey": "store",
    "suite review": "files",
    "suite validate": "reads",
    "rubric list": "reads",
}
"""Commands that call no model, judge or generator, each with why in one word."""


def _params() -> list[Any]:
    """The cases, one per command that calls out."""
    return [pytest.param(case, id=name) for name, case in CASES.items()]


@pytest.mark.parametrize("case", _params())
def test_a_command_that_calls_out_sends_nothing_restricted_or_identifying_and_audits_every_request(
    case: Case, tmp_path, monkeypatch
):
    with perimeter_project(tmp_path, monkeypatch) as project:
        done = case.steps(project)
        command = f"evals {case.command}"
        result, sent = done.result, project.external_requests(done.before)
        refused = case.may_refuse and result.exit_code == 2 and "restricted" in result.output and sent == 0
        if not refused and not (result.exit_code in case.codes and sent > 0):
            pytest.fail(f"{command} did not do its work (exit {result.exit_code}, {sent} external requests):\n"
                        f"{result.output}", pytrace=False)  # fmt: skip
        problems = project.leaks(command, planted(case.suite)) + project.audit_gaps(command)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


EXPORTS_NO_SPANS = {"worker": "evals worker does not export telemetry (its calls are audited; no spans)"}


@pytest.mark.parametrize("case", _params())
def test_an_external_telemetry_collector_gets_nothing_restricted_or_identifying(
    case: Case, tmp_path, monkeypatch
):
    """The collector is a door out too (``telemetry:`` marked external, messages captured): every command
    that calls out exports its spans there, under the same promise."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otel extra is not installed")
    from otlp_kit import serve_collector

    with (
        serve_collector() as collector,
        perimeter_project(tmp_path, monkeypatch, collector_url=collector.url) as project,
    ):
        done = case.steps(project)
        result = done.result
        refused = case.may_refuse and result.exit_code == 2 and "restricted" in result.output
        assert result.exit_code in case.codes or refused, result.output
        spans = [s for s in collector.spans if s.name.startswith("chat ")]
        if not refused and case.command not in EXPORTS_NO_SPANS:
            assert spans, f"evals {case.command}: no call span reached the collector"
        text = "\n".join(
            request_text(json.dumps([s.name, s.attributes, s.events, s.resource]).encode())
            for s in collector.spans
        )
        leaked = [
            f"evals {case.command}: the external collector received the {p.field}'s {p.kind} {p.value!r}"
            for p in planted(case.suite)
            if p.found_in(text, re.sub(r"[\s-]+", "", text))
        ]
        if leaked:
            pytest.fail("\n".join(leaked), pytrace=False)


def test_what_holds_today_keeps_holding_a_run_redacts_its_items_and_audits_every_request(
    tmp_path, monkeypatch
):
    """The part of the promise today's code keeps (no config patterns, a rubric without identifiers): the
    gateway must not lose it on the way."""
    with perimeter_project(tmp_path, monkeypatch, config_patterns=False, rubric="correctness") as project:
        done = run(project)
        assert done.result.exit_code == 0 and project.external_requests() > 0, done.result.output
        item_text = [p for ids in (QUESTION, REFERENCE, ANSWER) for p in ids.planted(config=False)]
        problems = project.leaks("evals run", [*item_text, *RESTRICTED]) + project.audit_gaps("evals run")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command of the CLI as typed after ``evals`` (``judge canary reset``)."""
    ctx = click.Context(group, info_name=" ".join(("evals", *prefix)))
    for name in group.list_commands(ctx):  # `evals` imports a command's module only when asked for it
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


def test_every_command_is_either_held_to_the_perimeter_or_listed_as_staying_local():
    commands = set(command_paths(main))
    unclassified = sorted(commands - CALLS_OUT - set(STAYS_LOCAL))
    assert not unclassified, (
        f"commands neither run by the perimeter test nor listed as staying local: {', '.join(unclassified)}; "
        "add a case to CASES in tests/test_perimeter.py if it can call a model, judge or generator, else "
        "add it to STAYS_LOCAL with a one-word reason"
    )
    assert not CALLS_OUT & set(STAYS_LOCAL), f"listed both ways: {sorted(CALLS_OUT & set(STAYS_LOCAL))}"
    gone = sorted((CALLS_OUT | set(STAYS_LOCAL)) - commands)
    assert not gone, f"listed here but no longer a command: {', '.join(gone)}"


@pytest.mark.parametrize("where", ["top", "judge", "suite"])
def test_the_walk_fails_on_a_command_it_does_not_classify(monkeypatch, where):
    """A command added without a case or a STAYS_LOCAL line fails the check above, wherever it is added:
    at the top (a new entry in evals.cli.COMMANDS) or as a subcommand of a group."""
    new = click.Command("telemetry-export", callback=lambda: None)
    if where == "top":
        from evals.cli import COMMANDS, Lazy

        monkeypatch.setitem(COMMANDS, "telemetry-export", Lazy("docs", "docs", "a command nobody classified"))
        expected = "telemetry-export"
    else:
        group = main.get_command(click.Context(main), where)
        assert isinstance(group, click.Group)
        monkeypatch.setitem(group.commands, "telemetry-export", new)
        expected = f"{where} telemetry-export"
    with pytest.raises(AssertionError) as caught:
        test_every_command_is_either_held_to_the_perimeter_or_listed_as_staying_local()
    assert f"neither run by the perimeter test nor listed as staying local: {expected}" in str(caught.value)
