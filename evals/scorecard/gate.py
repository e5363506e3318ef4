"""The gate: may a candidate run replace the baseline? A verdict, its reasons, and an exit code.

The policy (a YAML file, defaults built in) asks for overall non-inferiority, no area with a significant
and material drop, few errors, and optional absolute floors; it refuses to decide (exit 2) on too little
evidence or when the two runs were judged differently, since then a drop may be the judge's, not the model's.
The verdict's Markdown and JUnit renderings are ``evals.render.gate``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals.config import ScorecardSettings
from evals.errors import ConfigError
from evals.judge.provenance import judged_differently
from evals.records import RunManifest
from evals.results import by_area
from evals.scorecard.baselines import DEFAULT_MAX_ERROR_RATE
from evals.scorecard.canary import gate_reason as canary_reason
from evals.scorecard.figures import area_stats, drift, health
from evals.scorecard.models import Drift, RunHealth
from evals.store import Store
from evals.trust.noise import combined_se, run_noise
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
    max_error_rate: float = Field(default=DEFAULT_MAX_ERROR_RATE, ge=0, le=1)
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
    areas: dict[str, Drift] = field(default_factory=dict)
    overall: Drift | None = None

    @property
    def exit_code(self) -> int:
        return {"pass": PASS, "fail": FAIL, "undecided": UNDECIDED}[self.outcome]


def _fmt_delta(d: Drift) -> str:
    if d.delta is None:
        return "Δ –"
    lo, hi = d.delta_ci_low, d.delta_ci_high
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else ""
    p = f", p adj. {d.p_adjusted:.3g}" if d.p_adjusted is not None else ""
    return f"Δ {d.delta:+.2f}{ci}{p}"


def _unready(role: str, m: RunManifest, h: RunHealth) -> str | None:
    """Why a run cannot take part in a decision (unfinished, or too few scores), or None."""
    if m.status != "finished":
        return (
            f"the {role} {m.run_id} is {m.status}, not finished ({h.scored} of {h.rows} answers scored); "
            f"finish it with evals run --resume {m.run_id}, or gate against another run"
        )
    if h.scored == 0:
        return f"the {role} {m.run_id} has no scored answer ({h.rows} of {h.rows} failed); it can be compared with nothing"
    return None


def decide(
    store: Store, candidate_id: str, baseline_id: str, policy: Policy, allow_judge_change: bool = False
) -> Verdict:
    """Compare the candidate run with the baseline run under ``policy``.

    Cannot decide (exit 2), naming why, when: the two are one run, of different suites, judged
    differently (``provenance_differences``: judges, their fingerprints and reported model ids, rubric
    sets), either is unfinished or has no scores, the baseline has
    more errors than the policy allows, or fewer than ``min_pairs`` items are scored on both sides.
    """
    cand, base = store.run(candidate_id), store.run(baseline_id)
    verdict = Verdict("undecided", cand, base)
    if cand.run_id == base.run_id:  # a run always matches itself: that would be a pass that proves nothing
        verdict.reasons.append(
            f"the candidate and the baseline are the same run {cand.run_id!r}; gate a new run against it"
        )
        return verdict
    if cand.suite_name != base.suite_name:
        verdict.reasons.append(f"different suites: {cand.suite_name!r} vs {base.suite_name!r}")
    differences = judged_differently(store, cand, base)
    if differences and not allow_judge_change:
        verdict.reasons.append(
            "judged differently: " + "; ".join(differences)
            + "; re-judge both with one judge, or pass --allow-judge-change"
        )  # fmt: skip
    if (moved := canary_reason(store, cand.run_id, base.run_id)) and not allow_judge_change:
        verdict.reasons.append(moved)  # the judge's anchor scores moved: a drop may be the judge's
    rows, base_rows = list(store.results(candidate_id)), list(store.results(baseline_id))
    cand_health, base_health = health(rows), health(base_rows)
    for role, m, h in (("candidate", cand, cand_health), ("baseline", base, base_health)):
        reason = _unready(role, m, h)
        if reason:
            verdict.reasons.append(reason)
    if base.status == "finished" and base_health.scored and base_health.error_rate > policy.max_error_rate:
        verdict.reasons.append(
            f"the baseline {base.run_id} is too thin: {base_health.answer_errors} answer and "
            f"{base_health.judge_errors} judge errors in {base_health.rows} answers "
            f"(the policy allows {policy.max_error_rate:.0%}); resume it or gate against another baseline"
        )
    noise_se = combined_se(*(run_noise(store, r, policy.pass_score) for r in (candidate_id, baseline_id)))
    result = drift(rows, base_rows, policy.settings(), noise_se)
    verdict.areas, verdict.overall = result.areas, result.overall
    pairs = result.overall.n_pairs
    if pairs < policy.min_pairs:
        verdict.reasons.append(
            f"only {pairs} items are scored in both runs (the policy needs {policy.min_pairs})"
        )
    if verdict.reasons:
        return verdict

    overall = result.overall
    bound = overall.ni_low
    verdict.checks.append(Check(
        "overall", bound is not None and bound > -policy.non_inferiority_margin,
        f"{_fmt_delta(overall)} over {pairs} paired items; one-sided 95% lower bound "
        f"{'–' if bound is None else f'{bound:+.2f}'} must be above -{policy.non_inferiority_margin}",
    ))  # fmt: skip
    areas_rows = by_area(rows)
    for area, d in sorted(result.areas.items()):
        ok = d.status != "regressed"
        msg = _fmt_delta(d) + ("" if ok else f": significant drop of at least {policy.area_min_effect}")
        if d.status == "within-judge-noise" and d.judge_se is not None:
            msg += f": a drop within twice the judge's own noise (2 × SE_judge = {2 * d.judge_se:.2f}), not blamed on the model"
        floor = policy.floors.get(area)
        if floor is not None:
            figures = area_stats(area, areas_rows[area], policy.pass_score)
            mean, rate = figures.mean, figures.pass_rate
            if floor.mean is not None and (mean is None or mean < floor.mean):
                ok, msg = (
                    False,
                    msg + f"; mean {mean if mean is None else round(mean, 2)} below floor {floor.mean}",
                )
            if floor.pass_rate is not None and (rate is None or rate < floor.pass_rate):
                ok, msg = False, msg + f"; pass rate {rate} below floor {floor.pass_rate}"
        verdict.checks.append(Check(f"area {area}", ok, msg))
    h = cand_health
    verdict.checks.append(Check(
        "errors", h.error_rate <= policy.max_error_rate,
        f"{h.answer_errors} answer and {h.judge_errors} judge errors in {h.rows} answers (max {policy.max_error_rate:.0%})",
    ))  # fmt: skip
    failed = [c for c in verdict.checks if not c.passed]
    verdict.outcome = "fail" if failed else "pass"
    verdict.reasons = [f"{c.name}: {c.message}" for c in failed]
    return verdict
