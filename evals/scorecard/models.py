"""The scorecard as typed records: what ``scorecard.json`` holds and every rendering reads.

HTML, Markdown, the terminal summary, the index and the gate read these fields, never string keys of a
dict; ``Scorecard.model_dump_json`` is ``scorecard.json`` and ``Scorecard.model_validate_json`` reads it
back equal. Scores are floats: an item's score may be a panel's mean. The optional sections (routing,
audit, redaction, panel, canary, calibration) live in ``evals.scorecard.sections``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evals.config import GateSettings, ScorecardSettings
from evals.records import RunConfig, RunManifest
from evals.scorecard.sections import (
    AuditHead,
    CalibrationNote,
    CanaryReport,
    InHouse,
    PanelSection,
    RedactionInfo,
    RouteDecision,
)
from evals.trust.noise import JudgeNoise
from evals.trust.ppi import CorrectedMean

SCORECARD_SCHEMA_VERSION = 3
"""Version of ``scorecard.json``. 2: drift nested under each area, baseline choice, run health. 3: the one
decision (``decision``, ``gate``), statuses of ``evals.scorecard.decision``, simultaneous intervals."""

OFFLINE_JUDGE_MODEL = "offline-reference"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


AreaStatus = Literal["regressed", "not shown non-inferior", "unchanged", "improved", "cannot decide", "new"]
"""An area's (or the run's) status against its baseline, as ``evals.scorecard.decision`` decides it."""
Outcome = Literal["pass", "fail", "cannot decide"]
"""The run's verdict: may the candidate replace its baseline?"""


class Drift(_Record):
    """The paired change of one area (or the whole run) against the baseline, and its status.

    Only items scored on both sides are paired: an item with errors on one side counts in neither ``n_pairs``
    nor Δ. Every field is ``evals.scorecard.decision``'s.
    """

    n_pairs: int = 0
    """Items with at least one score in both runs and the same content."""
    delta: float | None = None
    """Mean over paired items of (candidate item mean − baseline item mean)."""
    delta_ci_low: float | None = None
    """The interval beside the status (see ``interval``); within [−4, 4]."""
    delta_ci_high: float | None = None
    """None for the whole run: its bound is one-sided."""
    interval: str = ""
    """What the interval is: ``simultaneous 95% (Bonferroni, 4 areas)``, ``one-sided 95% lower bound``."""
    p_value: float | None = None
    """Two-sided paired t-test, uncorrected."""
    p_adjusted: float | None = None
    """After the correction across areas (the overall figure is not corrected)."""
    status: AreaStatus = "new"
    note: str | None = None
    """Why the status is what it is when the figures alone do not say (judge noise, too few pairs)."""
    needed: int | None = None
    """About how many more paired items would let this area decide (observed spread, margin)."""
    judge_se: float | None = None
    """The standard error judge noise alone gives Δ (``evals.trust.noise.combined_se``); None when neither run
    was judged with repeats. A drop of at most 2 × this is not blamed on the model."""

    def interval_text(self) -> str:
        """The interval as every page prints it: ``[−0.40, +0.10] simultaneous 95% (...)`` or
        ``≥ −0.39 (one-sided 95% lower bound)``; the reason when there is none."""
        lo, hi = self.delta_ci_low, self.delta_ci_high
        if lo is None:
            return "(too few pairs for an interval)"
        if hi is None:
            return f"≥ {lo:+.2f} ({self.interval})"
        return f"[{lo:+.2f}, {hi:+.2f}] ({self.interval})"


class Check(_Record):
    """One test case of the decision (the whole run, an area, errors): a JUnit test case."""

    name: str
    passed: bool
    message: str


class Decision(_Record):
    """The one verdict on a run against its baseline: every page shows it and nothing that contradicts it."""

    outcome: Outcome
    baseline_id: str
    headline: str
    """``safe to ship: yes / no / cannot decide, because ...``: the first line of every page."""
    reasons: list[str] = []
    """Why it failed or could not decide."""
    checks: list[Check] = []
    warnings: list[str] = []
    """Areas not shown non-inferior (without ``strict_areas``) and areas too thin to decide."""
    notes: list[str] = []
    """How it was decided beyond its settings: which areas corrected means decided (``gate: {means}``), what
    confirming before failing found (``gate: {confirm_repeats}``)."""
    settings: str
    """The ``gate:`` settings it used, in words."""


class LengthBias(_Record):
    """Rank correlation between answer length (characters) and score over an area's scored answers.

    A strong positive ``rho`` says longer answers got higher scores: the judge may reward length (padding)
    rather than content, or the longer answers really are better; read the items before concluding.
    """

    n: int = 0
    """Scored answers with a known length (each item × sample)."""
    rho: float | None = None
    """Spearman's rho (scipy); None below 5 pairs, or when every length or every score is the same."""
    p_value: float | None = None
    """Two-sided p-value of rho against no correlation."""


class AnswerSignals(_Record):
    """How an area's answers treat the judge: answers addressing the grader, and length bias."""

    flagged: int = 0
    """Answers with at least one flag of ``evals.judge.grader_attacks`` (each item × sample)."""
    kinds: dict[str, int] = Field(default_factory=dict)
    """Answers flagged with each kind (an answer may count under several)."""
    length_bias: LengthBias = LengthBias()


class AreaStats(_Record):
    """The figures of one area (or, as ``Scorecard.overall``, of the whole run)."""

    area: str
    """The area's name; ``(overall)`` for the whole run."""
    n: int
    """Items with at least one scored sample: the independent observations."""
    n_scores: int
    """Scored samples over all items."""
    mean: float | None
    """Mean of the item means (each item's scored samples averaged first)."""
    ci_low: float | None
    """95 % t interval over item means (clustered by item)."""
    ci_high: float | None
    pass_rate: float | None
    """Mean over items of the share of samples scoring at least ``pass_score``."""
    pass_ci_low: float | None
    pass_ci_high: float | None
    answer_errors: int
    """Samples without an answer."""
    judge_errors: int
    """Answered samples without a verdict."""
    truncated: int
    """Answers cut off at ``max_tokens``."""
    rows: int
    """Item × sample rows in the area."""
    weak: bool = False
    drift: Drift = Drift()
    judge_noise: JudgeNoise | None = None
    """The judge's noise in the area (None in scorecards written before it was measured)."""
    signals: AnswerSignals | None = None
    """Answers that address the grader and the length–score correlation (None in older scorecards)."""
    corrected: CorrectedMean | None = None
    """The people's mean corrected from the judge's (PPI++) where the run has random human scores; its note
    says why there is no estimate when they are too few. None: no human score of a random draw."""
    distribution: list[int] = []
    """Scored answers (item × sample) at each score level 1–5; a panel's mean score counts at its nearest
    level, halves up (empty in older scorecards)."""
    baseline_mean: float | None = None
    """The baseline run's mean of the area over all its scored items (not only the paired ones); None
    without a baseline or a score there."""


def corrected_text(a: AreaStats) -> str | None:
    """An area's corrected mean as one phrase every rendering prints (None without human scores)."""
    c = a.corrected
    if c is None:
        return None
    if c.estimate is None or c.ci_low is None or c.ci_high is None:
        return f"{a.area}: {c.note}"
    gain = f", each worth {c.gain:.1f} human scores" if c.gain is not None else ""
    return (
        f"{a.area}: {c.estimate:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}] from {c.n_human} random human scores "
        f"(judge's mean {a.mean:.2f}{gain})"
        if a.mean is not None
        else f"{a.area}: {c.estimate:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}] from {c.n_human} random human scores"
    )


class ItemChanges(_Record):
    """How the items of the run line up with the baseline's."""

    paired: list[str]
    """Ids both runs asked with the same content (compared when scored on both sides)."""
    changed: list[str]
    """Ids both asked, with different content: not compared."""
    added: list[str]
    removed: list[str]


class RunHealth(_Record):
    """How complete a run is: the basis of baseline choice and of the gate's "cannot decide"."""

    rows: int
    """Item × sample rows the run asks."""
    scored: int
    answer_errors: int
    """Rows with no answer (failed or never asked)."""
    judge_errors: int
    """Answered rows with no verdict (failed or never judged)."""

    @property
    def error_rate(self) -> float:
        """The larger of the answer and judge error shares: what the gate's ``max_error_rate`` caps."""
        return max(self.answer_errors, self.judge_errors) / self.rows if self.rows else 1.0


class RunInfo(_Record):
    """A run's manifest as the scorecard shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    run_id: str
    suite_name: str
    suite_path: str
    suite_hash: str
    model_name: str
    model: str | None
    judge_name: str
    judge_model: str
    rubric_name: str
    rubric_hash: str
    rubrics: list[str] = Field(default_factory=list)
    """Every rubric the run's items were graded with, as ``name@hash``."""
    samples: int
    started_at: str
    config: RunConfig
    tags: list[str]
    model_id: str | None
    status: str
    ended_at: str | None
    lookingglass_version: str
    schema_version: int
    offline_judge: bool
    """Scored by the offline reference judge (token overlap), not a frontier judge."""
    judge_output: str | None
    """The verdict protocol the judge ended up using (json_schema, json_object, text)."""
    health: RunHealth | None = None

    @classmethod
    def of(cls, m: RunManifest, health: RunHealth | None = None) -> RunInfo:
        """The scorecard's view of a manifest."""
        data = m.to_dict()
        data["tags"] = list(m.tags)
        data["rubrics"] = list(m.rubrics)
        return cls(
            **data,
            offline_judge=m.judge_model == OFFLINE_JUDGE_MODEL,
            judge_output=m.config.structured,
            health=health,
        )

    @property
    def model_label(self) -> str:
        """``name (served model)``."""
        return f"{self.model_name} ({self.model_id or self.model})"


class SkippedRun(_Record):
    """An earlier run passed over when choosing the baseline, and why."""

    run_id: str
    reason: str


class BaselineChoice(_Record):
    """Which baseline the scorecard compares with, why, and which later runs it skipped."""

    run_id: str | None
    how: Literal["asked", "approved", "tagged", "latest", "none"]
    """``asked`` (--baseline), ``approved`` (evals baseline set), ``tagged`` (tag baseline), ``latest``
    (latest eligible earlier run), ``none``."""
    reason: str
    """One sentence for people."""
    skipped: list[SkippedRun] = []


class SelectionInfo(_Record):
    """The subset of the suite a run asked."""

    areas: list[str]
    item_tags: list[str]
    limit: int | None
    description: str


class RegressedItem(_Record):
    """An item that lost points, the baseline's and the new answer side by side (first sample)."""

    id: str
    area: str
    question: str
    reference: str | None
    baseline_answer: str | None
    answer: str | None
    baseline_score: float
    score: float
    baseline_rationale: str | None
    rationale: str | None
    delta: float


ItemStatus = Literal["regressed", "improved", "unchanged", "new", "error"]


class ItemRow(_Record):
    """One answer of the run in the scorecard's item table."""

    id: str
    sample: int
    area: str
    question: str
    reference: str | None
    answer: str | None
    score: float | None
    rationale: str | None
    error: str | None
    truncated: bool
    reasoning: str | None
    baseline_score: float | None
    """The item's mean in the baseline, when paired."""
    status: ItemStatus
    passed: bool | None
    flags: list[str] = []
    """Kinds of the answer's grader-addressing flags (``evals.judge.grader_attacks``); empty when none."""


class HistoryPoint(_Record):
    """One run of the suite in the history charts."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    run_id: str
    started_at: str
    model: str | None
    judge_model: str
    rubric_hash: str
    changes: list[str]
    """What changed since the previous point: ``model``, ``judge``, ``rubric``."""
    overall: float | None
    """The run's mean of item means: the scorecard's overall mean."""
    areas: dict[str, float]
    """Each area's mean of item means."""


class SideCost(_Record):
    """Tokens, latency and cost of one side (the model or the judge)."""

    tokens_in: int
    tokens_out: int
    calls: int
    latency_ms: dict[str, float | None]
    """``p50``, ``p95``, ``p99``."""
    tokens_per_s: float | None
    cost: float | None
    """Money, when the endpoint is priced."""


class Cost(_Record):
    """What the run cost on each side."""

    model: SideCost
    judge: SideCost


class Scorecard(_Record):
    """The whole scorecard of a run: ``scorecard.json``, and the source of every rendering."""

    schema_version: int = SCORECARD_SCHEMA_VERSION
    run: RunInfo
    selection: SelectionInfo | None
    baseline: RunInfo | None
    baseline_choice: BaselineChoice
    same_family: list[str] = []
    """The judge shares a family with the answering model or the references' writer (``evals.scorecard.bias``)."""
    judged_differently: list[str] = []
    """How the baseline was judged differently (``evals.judge.provenance``): its score changes may be the judge's."""
    settings: ScorecardSettings
    gate: GateSettings = GateSettings()
    """The decision's settings (``gate:`` of evals.yaml, or ``--policy``)."""
    decision: Decision | None = None
    """The verdict against the baseline; None without one."""
    overall: AreaStats
    areas: list[AreaStats]
    weak_areas: list[str]
    strong_areas: list[str]
    item_changes: ItemChanges | None
    regressed_items: list[RegressedItem]
    items: list[ItemRow]
    history: list[HistoryPoint]
    cost: Cost
    routing: list[RouteDecision] = []
    """What goes where: the latest ``evals route`` table of this run against a frontier run (empty: none)."""
    audit: AuditHead | None = None
    """None for a run with no recorded outbound call (or a scorecard written before the audit trail)."""
    calibration: CalibrationNote | None = None
    """The latest calibration of the run's judge fingerprint and rubric hash; None: "judge not calibrated"."""
    redaction: RedactionInfo | None = None
    """Redaction before external calls (None for runs stored before it was recorded)."""

    panel: PanelSection | None = None
    """A panel's run: its members, their agreement and disagreements (``evals.scorecard.panel``)."""
    inhouse: InHouse | None = None
    """The restricted items an in-house judge graded (``restricted_judge``); None when none did."""
    canary: CanaryReport | None = None
    """The judge's drift canary on this run (``evals.trust.canary``); None when it has none."""

    def area(self, name: str) -> AreaStats:
        """The figures of one area; KeyError when the run has none of it."""
        for a in self.areas:
            if a.area == name:
                return a
        raise KeyError(name)

    def corrected_lines(self) -> list[str]:
        """Each area's corrected mean (PPI++), where the run has random human scores."""
        return [t for t in (corrected_text(a) for a in self.areas) if t is not None]

    def regressed(self) -> list[str]:
        """Regressed areas, and ``(overall)`` when the whole run failed its bound (the decision's statuses)."""
        names = [a.area for a in self.areas if a.drift.status == "regressed"]
        failed = self.overall.drift.status in ("regressed", "not shown non-inferior")
        return names + (["(overall)"] if failed else [])
