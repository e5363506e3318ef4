"""The gate: may a candidate run replace the baseline? A verdict, its reasons, and an exit code.

The policy (a YAML file, defaults built in) asks for overall non-inferiority, no area with a significant
and material drop, few errors, and optional absolute floors; it refuses to decide (exit 2) on too little
evidence or when the two runs were judged differently, since then a drop may be the judge's, not the model's.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals import stats
from evals.config import ScorecardSettings
from evals.errors import ConfigError
from evals.records import RunManifest
from evals.render.markdown import md_text
from evals.scorecard import drift, scores_by_item
from evals.store import Store
from evals.userfiles import load_yaml, validation_errors

PASS, FAIL, UNDECIDED = 0, 1, 2
"""Exit codes of ``evals gate``."""


class Floor(BaseModel):
    """Absolute minimums for one area, whatever the baseline did."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    mean: float | None = None
    pass_rate: float | None = None


class Policy(BaseModel):
    """What a candidate must show to pass (``--policy FILE``; every field optional)."""

    # allow_inf_nan: a margin of .inf would pass every candidate; NaN would compare false everywhere.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    non_inferiority_margin: float = Field(default=0.3, ge=0)
    """Overall: the one-sided 95 % lower confidence bound of the paired Δ mean must be above −margin."""
    area_min_effect: float = Field(default=0.5, ge=0)
    """Per area: fail on a drop at least this large that is significant after correction."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["holm", "bh"] = "holm"
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    """Fail when answer errors or judge errors exceed this share of the candidate's answers."""
    min_pairs: int = Field(default=20, ge=2)
    """Refuse to decide when fewer items pair up between the two runs."""
    pass_score: int = Field(default=4, ge=1, le=5)
    floors: dict[str, Floor] = Field(default_factory=dict)
    """Optional absolute floors per area (``geography: {mean: 3.5, pass_rate: 0.6}``)."""

    def settings(self) -> ScorecardSettings:
        return ScorecardSettings(
            alpha=self.alpha,
            correction=self.correction,
            min_effect=self.area_min_effect,
            pass_score=self.pass_score,
        )


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path``, or the defaults."""
    if path is None:
        return Policy()
    data = load_yaml(path, error=ConfigError)
    try:
        return Policy.model_validate({} if data is None else data)
    except ValidationError as exc:
        lines = validation_errors(path, data, exc)
        raise ConfigError("invalid policy:\n  " + "\n  ".join(lines)) from None


@dataclass
class Check:
    """One test case of the verdict (an area, the whole suite, errors)."""

    name: str
    passed: bool
    message: str


@dataclass
class Verdict:
    """The gate's decision."""

    outcome: Literal["pass", "fail", "undecided"]
    candidate: RunManifest
    baseline: RunManifest | None
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    """Why it failed or could not decide."""
    areas: dict[str, Any] = field(default_factory=dict)
    overall: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {"pass": PASS, "fail": FAIL, "undecided": UNDECIDED}[self.outcome]


def _fmt_delta(d: dict[str, Any]) -> str:
    if d["delta"] is None:
        return "Δ –"
    lo, hi = d["delta_ci_low"], d["delta_ci_high"]
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else ""
    p = f", p adj. {d['p_adjusted']:.3g}" if d.get("p_adjusted") is not None else ""
    return f"Δ {d['delta']:+.2f}{ci}{p}"


def decide(
    store: Store, candidate_id: str, baseline_id: str, policy: Policy, allow_judge_change: bool = False
) -> Verdict:
    """Compare the candidate run with the baseline run under ``policy``."""
    cand, base = store.run(candidate_id), store.run(baseline_id)
    verdict = Verdict("undecided", cand, base)
    if cand.run_id == base.run_id:  # a run always matches itself: that would be a pass that proves nothing
        verdict.reasons.append(
            f"the candidate and the baseline are the same run {cand.run_id!r}; gate a new run against it"
        )
        return verdict
    if cand.suite_name != base.suite_name:
        verdict.reasons.append(f"different suites: {cand.suite_name!r} vs {base.suite_name!r}")
    if not allow_judge_change and (cand.judge_model, cand.rubric_hash) != (
        base.judge_model,
        base.rubric_hash,
    ):
        verdict.reasons.append(
            f"judged differently: {cand.judge_model} rubric {cand.rubric_hash} vs {base.judge_model} rubric "
            f"{base.rubric_hash}; re-judge both with one judge, or pass --allow-judge-change"
        )
    rows, base_rows = list(store.results(candidate_id)), list(store.results(baseline_id))
    result = drift(rows, base_rows, policy.settings())
    verdict.areas, verdict.overall = result["areas"], result["overall"]
    pairs = len(result["items"]["paired"])
    if pairs < policy.min_pairs:
        verdict.reasons.append(
            f"only {pairs} items pair up between the runs (the policy needs {policy.min_pairs})"
        )
    if verdict.reasons:
        return verdict

    overall = result["overall"]
    bound = overall["ni_low"]
    verdict.checks.append(Check(
        "overall", bound is not None and bound > -policy.non_inferiority_margin,
        f"{_fmt_delta(overall)} over {pairs} paired items; one-sided 95% lower bound "
        f"{'–' if bound is None else f'{bound:+.2f}'} must be above -{policy.non_inferiority_margin}",
    ))  # fmt: skip
    for area, d in sorted(result["areas"].items()):
        ok = d["status"] != "regressed"
        msg = _fmt_delta(d) + ("" if ok else f": significant drop of at least {policy.area_min_effect}")
        floor = policy.floors.get(area)
        if floor is not None:
            by_item = scores_by_item(r for r in rows if r["area"] == area)
            mean = stats.mean_ci(by_item).mean
            rate = stats.pass_rate(by_item, policy.pass_score).rate
            if floor.mean is not None and (mean is None or mean < floor.mean):
                ok, msg = (
                    False,
                    msg + f"; mean {mean if mean is None else round(mean, 2)} below floor {floor.mean}",
                )
            if floor.pass_rate is not None and (rate is None or rate < floor.pass_rate):
                ok, msg = False, msg + f"; pass rate {rate} below floor {floor.pass_rate}"
        verdict.checks.append(Check(f"area {area}", ok, msg))
    answer_errors = sum(1 for r in rows if r["error_kind"] == "answer")
    judge_errors = sum(1 for r in rows if r["error_kind"] == "judge")
    worst = max(answer_errors, judge_errors) / max(1, len(rows))
    verdict.checks.append(Check(
        "errors", worst <= policy.max_error_rate,
        f"{answer_errors} answer and {judge_errors} judge errors in {len(rows)} answers (max {policy.max_error_rate:.0%})",
    ))  # fmt: skip
    failed = [c for c in verdict.checks if not c.passed]
    verdict.outcome = "fail" if failed else "pass"
    verdict.reasons = [f"{c.name}: {c.message}" for c in failed]
    return verdict


def markdown(verdict: Verdict) -> str:
    """The verdict as Markdown, for terminals, PR comments and ``$GITHUB_STEP_SUMMARY``.

    Every name and message is data (run ids, model ids, suite, area and judge names): each goes through
    ``md_text``, so none can break the table, add a link, an image, HTML or a heading, or mention anyone.
    """
    c, b = verdict.candidate, verdict.baseline
    icon = {"pass": "✅ PASS", "fail": "❌ FAIL", "undecided": "⚠️ CANNOT DECIDE"}[verdict.outcome]
    md = md_text
    lines = [
        f"### lookingglass gate: {icon}",
        "",
        f"candidate **{md(c.run_id)}** ({md(c.model_id or c.model)}) vs baseline **{md(b.run_id) if b else '–'}** "
        f"({md(b.model_id or b.model) if b else '–'}) · suite {md(c.suite_name)} · judge {md(c.judge_model)}",
        "",
    ]
    if verdict.reasons:
        lines += ["**Why:**", *[f"- {md(r)}" for r in verdict.reasons], ""]
    if verdict.checks:
        lines += ["| check | result | detail |", "| --- | --- | --- |"]
        lines += [
            f"| {md(ch.name)} | {'pass' if ch.passed else '**FAIL**'} | {md(ch.message)} |"
            for ch in verdict.checks
        ]
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
    cases = verdict.checks or [Check("gate", False, "; ".join(verdict.reasons))]
    for check in cases:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=_xml_text(check.name))
        if not check.passed:
            tag = "failure" if verdict.outcome != "undecided" else "error"
            message = _xml_text(check.message)
            ET.SubElement(case, tag, message=message).text = message
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if not c.passed and verdict.outcome != "undecided")))
    suite.set("errors", str(sum(1 for c in cases if not c.passed and verdict.outcome == "undecided")))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
