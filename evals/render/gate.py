"""The gate's verdict rendered: Markdown for terminals, PR comments and ``$GITHUB_STEP_SUMMARY``, and JUnit
XML for CI test reports. The verdict itself is ``evals.scorecard.decision``'s."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from evals.render.markdown import md_text
from evals.scorecard.decision import Verdict
from evals.scorecard.models import Check


def markdown(verdict: Verdict) -> str:
    """The verdict as Markdown, for terminals, PR comments and ``$GITHUB_STEP_SUMMARY``.

    Every name and message is data (run ids, model ids, suite, area and judge names): each goes through
    ``md_text``, so none can break the table, add a link, an image, HTML or a heading, or mention anyone.
    """
    c, b = verdict.candidate, verdict.baseline
    icon = {"pass": "✅ PASS", "fail": "❌ FAIL", "cannot decide": "⚠️ CANNOT DECIDE"}[verdict.outcome]
    md = md_text
    lines = [
        f"### lookingglass gate: {icon}",
        "",
        f"candidate **{md(c.run_id)}** ({md(c.model_id or c.model)}) vs baseline **{md(b.run_id) if b else '–'}** "
        f"({md(b.model_id or b.model) if b else '–'}) · suite {md(c.suite_name)} · judge {md(c.judge_model)}",
        "",
        f"**{md(verdict.decision.headline)}**",
        "",
    ]
    if verdict.reasons:
        lines += ["**Why:**", *[f"- {md(r)}" for r in verdict.reasons], ""]
    if verdict.decision.warnings:
        lines += ["**Warnings:**", *[f"- {md(w)}" for w in verdict.decision.warnings], ""]
    if verdict.decision.notes:
        lines += ["**How it was decided:**", *[f"- {md(c)}" for c in verdict.decision.notes], ""]
    if verdict.checks:
        lines += ["| check | result | detail |", "| --- | --- | --- |"]
        lines += [
            f"| {md(ch.name)} | {'pass' if ch.passed else '**FAIL**'} | {md(ch.message)} |"
            for ch in verdict.checks
        ]
        lines.append("")
    lines.append(f"Decided with: {md(verdict.decision.settings)}.")
    return "\n".join(lines) + "\n"


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all, not even escaped (most C0 controls, lone surrogates, U+FFFE/F)."""


def _xml_text(value: str) -> str:
    # Shown as a visible escape, so a JUnit viewer says which character the area name held.
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", value
    )


def junit(verdict: Verdict) -> bytes:
    """JUnit XML: one test case per area, one for the whole suite, one for errors; parseable whatever the names."""
    suite_name = _xml_text(f"lookingglass.{verdict.candidate.suite_name}")
    suite = ET.Element("testsuite", name=suite_name)
    cases = verdict.checks or [Check(name="gate", passed=False, message="; ".join(verdict.reasons))]
    for check in cases:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=_xml_text(check.name))
        if not check.passed:
            tag = "failure" if verdict.outcome != "cannot decide" else "error"
            message = _xml_text(check.message)
            ET.SubElement(case, tag, message=message).text = message
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if not c.passed and verdict.outcome != "cannot decide")))
    suite.set("errors", str(sum(1 for c in cases if not c.passed and verdict.outcome == "cannot decide")))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
