"""The scorecard's optional sections, each filled by its own module: the routing table
(``evals.store.routes``), the audit anchor (``audit``), the redaction summary (``redactions``), a panel's
agreement (``panel``), the judge's drift canary (``canary``) and the calibration note (``calibration``).

``models`` holds the figures every run has and the ``Scorecard`` that carries these sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class InHouse(_Record):
    """The restricted items an in-house judge graded in this run (``restricted_judge``), by area."""

    judge: str
    """The in-house judge's name in evals.yaml."""
    areas: dict[str, int] = {}
    """Area → how many of its items (answers) the in-house judge graded."""
    items: list[str] = []
    """The ids of those items, in suite order."""


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
    doubt: str | None = None
    """How far a person's score may stray from the judge's (split conformal on the calibration's residuals)."""
    uncertain: dict[str, int] = {}
    """Per area, the run's answers whose conformal interval straddles the pass score: people look first."""
