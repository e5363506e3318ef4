"""The scorecard as typed records: what ``scorecard.json`` holds and every rendering reads.

HTML, Markdown, the terminal summary, the index and the gate read these fields, never string keys of a
dict; ``Scorecard.model_dump_json`` is ``scorecard.json`` and ``Scorecard.model_validate_json`` reads it
back equal. Scores are floats: an item's score may be a panel's mean.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evals.config import ScorecardSettings
from evals.records import RunManifest
from evals.stats import Status
from evals.trust.noise import JudgeNoise

SCORECARD_SCHEMA_VERSION = 2
"""Version of ``scorecard.json``. 2: drift nested under each area, baseline choice, run health."""

OFFLINE_JUDGE_MODEL = "offline-reference"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Drift(_Record):
    """The paired change of one area (or the whole run) against the baseline.

    Only items scored on both sides are paired: an item with errors on one side counts in neither ``n_pairs``
    nor Δ.
    """

    n_pairs: int = 0
    """Items with at least one score in both runs and the same content."""
    delta: float | None = None
    """Mean over paired items of (candidate item mean − baseline item mean)."""
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    p_value: float | None = None
    """Two-sided paired t-test, uncorrected."""
    p_adjusted: float | None = None
    """After the correction across areas (the overall figure is not corrected)."""
    status: Status = "new"
    """``new`` without a baseline (or pairs), else ``improved``/``unchanged``/``regressed``."""
    ni_low: float | None = None
    """Overall only: the one-sided 95 % lower bound of Δ, for the gate's non-inferiority test."""
    judge_se: float | None = None
    """The standard error judge noise alone gives Δ (``evals.trust.noise.combined_se``); None when neither run
    was judged with repeats. A drop of at most 2 × this is ``within-judge-noise``, not ``regressed``."""


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
        """The larger of the answer and judge error shares: what the gate policy's ``max_error_rate`` caps."""
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
    config: dict[str, Any]
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
        structured = m.config.get("structured")
        return cls(
            **data,
            offline_judge=m.judge_model == OFFLINE_JUDGE_MODEL,
            judge_output=structured if isinstance(structured, str) else None,
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


class RouteDecision(_Record):
    """One area's recommendation in the latest routing table this run was the local side of (``evals route``)."""

    area: str
    recommendation: str
    """``local``, ``frontier`` or ``not yet``."""
    reason: str
    frontier_run: str
    decided_at: str


class AuditHead(_Record):
    """The run's audit chain when the scorecard was built (``evals.outbound.audit``): its last hash and its record
    count. Kept outside the store, it is an anchor: ``evals audit verify --anchor RUN=HASH``."""

    hash: str
    records: int


class AreaRedactions(_Record):
    """Identifiers replaced by placeholders in what one area's calls sent to external endpoints."""

    area: str
    counts: dict[str, int]
    """By placeholder kind (``EMAIL``, ``PHONE``...): every occurrence replaced, over the model's and the
    judge's calls (a question redacted for both counts twice)."""
    total: int


class RedactionInfo(_Record):
    """What left the perimeter and how it was redacted (read from the run's snapshot and the store)."""

    status: Literal["redacted", "not redacted", "not needed"]
    """``redacted``: external calls were redacted; ``not redacted``: an endpoint was external and redaction
    was disabled; ``not needed``: no endpoint of the run was external."""
    external: list[str] = []
    """The run's external endpoints: ``model``, ``judge``."""
    version: str | None = None
    """The redactor's version (``presidio-<version>+<hash>``), part of the judgment cache key."""
    note: str | None = None
    """What was not detected (no NER model: names and places)."""
    areas: list[AreaRedactions] = []
    total: dict[str, int] = {}
    """All areas together, by kind."""


class PanelMember(_Record):
    """One judge of a panel, and how much of the run it graded."""

    name: str
    """Its name in evals.yaml."""
    label: str
    """``name (model), rubric name@hash``: what its verdicts are stored under."""
    scored: int
    """Answers it gave a score."""
    errors: int
    """Answers it was asked about and could not score (outage, unparseable verdict)."""


class PairAgreement(_Record):
    """How two members of a panel agree: quadratic-weighted Cohen's kappa over the answers both scored."""

    a: str
    b: str
    n: int
    """Answers both scored (their first verdicts, repeat 0)."""
    kappa: float | None
    """Quadratic-weighted kappa: 1 perfect, 0 what chance gives, below 0 worse; None when undefined
    (one score only) or ``n`` is under the minimum."""
    kappa_ci_low: float | None = None
    """95 % bootstrap percentile interval, resampling items (an item's samples together)."""
    kappa_ci_high: float | None = None


class PanelAgreement(_Record):
    """Inter-judge agreement of a panel over the whole run or one area."""

    area: str
    """The area, or ``(overall)``."""
    n: int
    """Answers scored by at least two members."""
    alpha: float | None
    """Krippendorff's alpha (ordinal) over all members: 1 perfect, 0 chance; None when undefined or too few."""
    pairs: list[PairAgreement]
    """Every pair of members, in panel order."""


class PanelDisagreement(_Record):
    """An answer the members scored two points or more apart: for a person to look at."""

    id: str
    sample: int
    area: str
    question: str
    """The question, cut to an excerpt."""
    spread: float
    """Highest minus lowest member score."""
    scores: dict[str, float]
    """Each member's score of the answer (the mean of its repeats), by name; members that failed are absent."""
    rationales: dict[str, str]
    """An excerpt of each member's reasons, by name."""


class PanelSection(_Record):
    """What a panel of judges adds to a scorecard: its members, their agreement, and where they differ."""

    aggregate: str
    """How the members' scores make an answer's score: ``mean`` or ``median``."""
    members: list[PanelMember]
    overall: PanelAgreement
    areas: list[PanelAgreement]
    """Per area, for the areas with enough answers (``min_area_n``)."""
    min_area_n: int
    """Answers an area needs for its own agreement figures."""
    partial: int
    """Answers scored by some members but not all: their score aggregates fewer judges."""
    disagreements: list[PanelDisagreement]
    """Answers whose member scores are ``disagree_at`` or more apart, widest first."""
    disagree_at: float


class CanaryReset(_Record):
    """A deliberate re-anchoring of a judge's canary (``evals judge canary reset``)."""

    at: str
    """When it was recorded (ISO 8601)."""
    who: str
    """The user who reset it."""
    reason: str | None
    """Why, as they said."""


class CanaryReport(_Record):
    """The judge's drift canary on one run (``evals.trust.canary``): its frozen anchor answers re-judged by this
    run's judge, and how far their scores moved since the previous observation."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    run_id: str
    set_id: str
    """The anchor set: one per (judge fingerprint, suite) until a reset."""
    judge_name: str
    suite_name: str
    anchors: int
    """Anchors in the set."""
    source_run: str
    """The run the anchors were drawn from."""
    created_at: str
    observed_at: str
    scored: int
    """Anchors the judge scored in this observation."""
    mean: float | None
    """Mean anchor score in this observation."""
    previous_run: str | None = None
    """The run of the observation compared with (None on the set's first)."""
    n_pairs: int = 0
    shift: float | None = None
    """Mean over anchors scored both times of (this score − previous score): paired t, ``evals.stats``."""
    ci_low: float | None = None
    ci_high: float | None = None
    min_shift: float = 0.25
    moved: bool = False
    """The interval excludes 0 and ``|shift| >= min_shift``: the judge, not the model, changed."""
    model_ids: list[str] = []
    """The judge model ids its API reported while judging the anchors."""
    error: str | None = None
    """Why the canary could not be observed (the run itself is unaffected)."""
    rubric_changed: bool = False
    """This run's rubric (set) hash is not the one the anchors were scored with: a shift may be the rubric's."""
    resets: list[CanaryReset] = []
    """Re-anchorings of this judge and suite recorded up to this observation."""
    calls: int = 0
    """Judge gradings the canary made on this run (0 when the set was drawn from it)."""
    tokens_in: int = 0
    """Judge tokens the canary spent on this run (not in the run's cost table)."""
    tokens_out: int = 0

    def _interval(self) -> str:
        def signed(v: float | None) -> str:
            return "–" if v is None else f"{v:+.2f}"

        return f"{signed(self.shift)} [{signed(self.ci_low)}, {signed(self.ci_high)}]"

    def moved_message(self, consequence: str = "drift below may be the judge's, not the model's") -> str:
        """The one sentence every view prints when the canary moved."""
        return f"the judge moved: its canary shifted by {self._interval()} since run {self.previous_run}; {consequence}"

    def summary(self) -> str:
        """One line on the canary for every view (the moved sentence is said apart, louder)."""
        head = f"judge canary ({self.anchors} anchors from run {self.source_run})"
        if self.error is not None:
            return f"{head}: not observed on this run ({self.error})"
        if self.previous_run is None:
            return f"{head}: first observation (mean {_num(self.mean)}); the next run is compared with it"
        state = "MOVED" if self.moved else "steady"
        if self.rubric_changed:
            state += ", graded with another rubric than the anchors were"
        ids = ", ".join(self.model_ids) or "none reported"
        return (
            f"{head}: shift {self._interval()} over {self.n_pairs} anchors since run {self.previous_run}, "
            f"{state} (moved: the 95% interval excludes 0 and |shift| >= {self.min_shift:g}); "
            f"judge model ids: {ids}; cost {self.calls} gradings, {self.tokens_in} + {self.tokens_out} tokens"
        )

    def lines(self) -> list[str]:
        """What the terminal prints: the moved sentence first when it moved, the summary, the resets."""
        return [self.moved_message()] * self.moved + [self.summary(), *self.reset_lines()]

    def reset_lines(self) -> list[str]:
        """``canary re-anchored on DATE: REASON`` for each reset up to this run."""
        return [
            f"canary re-anchored on {r.at} by {r.who}: {r.reason or 'no reason given'}" for r in self.resets
        ]


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


class Scorecard(_Record):
    """The whole scorecard of a run: ``scorecard.json``, and the source of every rendering."""

    schema_version: int = SCORECARD_SCHEMA_VERSION
    run: RunInfo
    selection: SelectionInfo | None
    baseline: RunInfo | None
    baseline_choice: BaselineChoice
    judged_differently: list[str] = []
    """How the baseline was judged differently (``evals.judge.provenance``): its score changes may be the judge's."""
    settings: ScorecardSettings
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
    canary: CanaryReport | None = None
    """The judge's drift canary on this run (``evals.trust.canary``); None when it has none."""

    def area(self, name: str) -> AreaStats:
        """The figures of one area; KeyError when the run has none of it."""
        for a in self.areas:
            if a.area == name:
                return a
        raise KeyError(name)

    def regressed(self) -> list[str]:
        """Regressed areas, and ``(overall)`` when the whole run regressed."""
        names = [a.area for a in self.areas if a.drift.status == "regressed"]
        return names + (["(overall)"] if self.overall.drift.status == "regressed" else [])


class CalibrationNote(_Record):
    """The latest calibration against people of the judge and rubric that graded the run (the header line)."""

    kappa: float | None
    """Quadratic-weighted kappa of the judge against people's labels."""
    kappa_low: float | None
    """Its 95 % bootstrap interval."""
    kappa_high: float | None
    n: int
    """Labelled answers the judge scored."""
    created_at: str
    labels: str
    """The labels file it was calibrated on."""
    min_kappa: float
    passed: bool | None
    """Kappa's lower bound ≥ ``min_kappa``; None: it had no interval."""
