"""Calibration of a judge against people: judge every labelled answer once, then measure the agreement.

``judge_labels`` grades each distinct answer of a labels file once (concurrently, up to the judge's
``max_concurrency``, each call marked ``role="calibrate"``); ``calibrate`` turns the verdicts and the
people's scores into one typed ``Calibration`` (``calibration.json``): every figure of
``evals.trust.agreement`` with its bootstrap 95 % interval, overall and per area, and, where answers have
several raters, the people's own agreement (ordinal alpha) beside the judge's, as the ceiling.
``save_calibration`` keeps it in the store (``evals.store.calibrations`` holds the SQL) and
``latest_calibration`` finds the one a run's scorecard shows.

The judge is compared with the people's consensus on each answer: the **lower median** of their scores
(``statistics.median_low``: the middle score; with an even number of raters split between two scores, the
lower of the two, so the consensus is always a score on the scale). Judge errors are counted and left
out, never scored.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from evals.errors import EvalsError
from evals.judge.judging import Judge
from evals.outbound.callcontext import calling
from evals.outbound.gateway import each
from evals.outbound.normalise import normalise
from evals.outbound.redaction import CustomPattern
from evals.outbound.sensitivity import Destination, check_restricted, stricter
from evals.plan import stored_patterns
from evals.records import Item, Sensitivity, Verdict, content_hash
from evals.store import Store
from evals.store import calibrations as stored
from evals.trust import agreement
from evals.trust.agreement import Estimate
from evals.trust.labels import LabelRow, Labels

CALIBRATION_SCHEMA_VERSION = 1
DEFAULT_MIN_KAPPA = 0.6
"""Lowest acceptable lower bound of kappa's 95 % interval: 0.6 is "substantial" agreement (Landis & Koch)."""
CONSENSUS = "lower median of the raters' scores"
"""What the judge is compared with on an answer several people scored."""
OVERALL = "(overall)"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibratedAnswer(_Record):
    """One labelled answer: the people's scores, their consensus, and the judge's verdict."""

    id: str
    area: str
    question: str
    reference: str | None
    answer: str
    human_scores: list[int]
    """Every rater's score, in file order."""
    consensus: int
    """The lower median of ``human_scores``: what the judge is compared with."""
    judge_score: int | None
    """The judge's score; None when it failed (``judge_error``)."""
    judge_error: str | None = None
    rationale: str | None = None


class Agreement(_Record):
    """Agreement of the judge with people on one area (or all answers), each figure with its interval."""

    area: str
    n: int
    """Answers both labelled and scored by the judge."""
    judge_errors: int
    exact: Estimate
    """Share of answers where the judge's score equals the consensus."""
    within_one: Estimate
    """Share where they differ by at most one point."""
    kappa: Estimate
    """Quadratic-weighted Cohen's kappa, judge vs consensus: chance-corrected, ordinal."""
    spearman: Estimate
    """Spearman's rank correlation, judge vs consensus."""
    bias: Estimate
    """Mean of (judge − consensus): positive when the judge is more lenient than people."""
    confusion: list[list[int]]
    """``confusion[h-1][j-1]``: answers people scored ``h`` and the judge ``j``."""
    judge_alpha: Estimate
    """Ordinal Krippendorff's alpha of the judge and the consensus."""
    human_alpha: Estimate
    """Ordinal alpha among the people, on answers with several raters: the ceiling a judge can reach."""
    n_multi: int
    """Answers scored by two or more people."""


class Calibration(_Record):
    """A judge's calibration against a labels file: ``calibration.json`` and the stored record."""

    schema_version: int = CALIBRATION_SCHEMA_VERSION
    created_at: str
    labels: str
    """The labels file, as given."""
    labels_hash: str
    """Content hash of the labelled rows: two calibrations on the same labels have the same hash."""
    judge_name: str
    judge_model: str
    judge_fingerprint: str
    """``evals.plan.judge_fingerprint``: scorecards of runs graded by the same judge find this record."""
    rubric_name: str
    rubric_hash: str
    consensus: str = CONSENSUS
    rows: int
    """Labelled rows (one per answer and rater)."""
    min_kappa: float
    passed: bool | None
    """Kappa's lower bound ≥ ``min_kappa``; None when kappa has no interval (cannot tell)."""
    overall: Agreement
    areas: list[Agreement]
    answers: list[CalibratedAnswer]
    resamples: int = agreement.RESAMPLES
    residuals: list[float] = []
    """|consensus − judge| of every labelled answer the judge scored: kept in the store without the answers'
    text, for the per-answer conformal intervals of later runs (``evals.trust.conformal``)."""


class Reporter(Protocol):
    """Progress of the judging (``evals.cli.progress.RichReporter`` fits)."""

    def start(self, total: int, answered: int, judged: int) -> None: ...
    def judged(self, ok: bool) -> None: ...
    def stop(self) -> None: ...


def with_levels(labels: Labels, store: Store, default: Sensitivity) -> Labels:
    """``labels`` with every row's level known: the stricter of its own (``sensitivity``) and that of every
    stored item with the same question, in any run of the store (a row exported while its area was
    ``internal`` is ``restricted`` once a later run stored it so); a row with neither takes ``default`` (the
    config's ``default_sensitivity``). Questions are compared as redaction reads text (``question_key``:
    a spreadsheet's spaces and line endings do not hide a stored question). Text of unknown level never
    travels further than the team allows."""
    wanted = {question_key(row.question) for row in labels.rows}
    found: dict[str, Sensitivity] = {}
    for run_id in [m.run_id for m in reversed(store.runs())]:
        if all(found.get(key) == "restricted" for key in wanted):
            break  # nothing stored can make a row stricter
        for item in store.items(run_id):
            key = question_key(item.question or "")
            if key in wanted and item.sensitivity is not None:
                found[key] = stricter(found.get(key), item.sensitivity)
    rows = []
    for row in labels.rows:
        stored = found.get(question_key(row.question))
        level = default if row.sensitivity is None and stored is None else stricter(row.sensitivity, stored)
        rows.append(row if level == row.sensitivity else row.model_copy(update={"sensitivity": level}))
    return labels.model_copy(update={"rows": rows, "defaulted": unknown_rows(labels, found)})


@lru_cache(maxsize=65_536)
def question_key(question: str) -> str:
    """A question as compared with the store's: normalised as redaction reads it, whitespace collapsed
    (kept per text: a nightly suite stores the same questions in every run, each read for every row)."""
    return " ".join(normalise(question).text.split()).casefold()


def unknown_rows(labels: Labels, found: dict[str, Sensitivity]) -> tuple[str, ...]:
    """Ids of the rows with no level of their own and no stored question: they took default_sensitivity."""
    return tuple(
        row.id for row in labels.rows if row.sensitivity is None and question_key(row.question) not in found
    )


def row_patterns(labels: Labels, store: Store) -> list[CustomPattern]:
    """The suite redaction patterns of the runs the rows came from (``review export`` names them)."""
    patterns: dict[str, CustomPattern] = {}
    for run_id in dict.fromkeys(row.run_id for row in labels.rows if row.run_id):
        if run_id and store.has_run(run_id):
            for pattern in stored_patterns(store.run(run_id)):
                patterns.setdefault(pattern.name, pattern)
    return list(patterns.values())


def check_rows(labels: Labels, judge_name: str, external: bool, default: Sensitivity = "internal") -> None:
    """Refuse, before any call, when rows of restricted text would go to an external judge; the message
    names the rows, says which took ``default_sensitivity``, and the ways out this command has."""
    items = [
        Item(id=row.id, area=row.area, question=row.question, sensitivity=row.sensitivity)
        for row in labels.rows
    ]
    restricted = list(dict.fromkeys(row.id for row in labels.rows if row.sensitivity == "restricted"))
    shown = ", ".join(restricted[:5]) + (f" and {len(restricted) - 5} more" if len(restricted) > 5 else "")
    defaulted = [i for i in restricted if i in labels.defaulted]
    why = (
        f" ({len(defaulted)} of them restricted by default_sensitivity: {default} in evals.yaml, as no stored "
        "item has their question)"
        if defaulted
        else ""
    )
    remedy = (
        f"leave their rows ({shown}) out of the labels file{why}, or calibrate a judge inside the perimeter "
        "(--judge NAME of an entry with external: false, or --judge local)"
    )
    check_restricted(items, [Destination("judge", judge_name, external)], flag=None, remedy=remedy)


def distinct_answers(labels: Labels) -> dict[str, list[LabelRow]]:
    """The labelled rows grouped by answer id, in file order."""
    groups: dict[str, list[LabelRow]] = {}
    for row in labels.rows:
        groups.setdefault(row.id, []).append(row)
    return groups


async def judge_labels(
    judge: Judge, groups: dict[str, list[LabelRow]], reporter: Reporter | None = None
) -> dict[str, Verdict]:
    """Each distinct answer judged once through the gateway, at most ``judge.max_concurrency`` at a time;
    each is sent at its row's level (``LabelRow.sensitivity``)."""
    if reporter is not None:
        reporter.start(len(groups), len(groups), 0)

    async def grade(group: tuple[str, list[LabelRow]]) -> tuple[str, Verdict]:
        answer_id, rows = group
        row = rows[0]
        item = Item(
            id=answer_id, area=row.area, question=row.question, reference=row.reference or None,
            sensitivity=row.sensitivity,
        )  # fmt: skip
        with calling(item_id=answer_id, role="calibrate"):
            verdict = await judge.grade(item, row.answer)
        if reporter is not None:
            reporter.judged(verdict.score is not None)
        return answer_id, verdict

    try:
        done = await each(groups.items(), grade, judge.max_concurrency)
    finally:
        if reporter is not None:
            reporter.stop()
        await judge.aclose()
    return dict(done)


def calibrated_answers(
    groups: dict[str, list[LabelRow]], verdicts: dict[str, Verdict]
) -> list[CalibratedAnswer]:
    """Each answer with its people's scores, their consensus and the judge's verdict."""
    out = []
    for answer_id, rows in groups.items():
        first, verdict = rows[0], verdicts[answer_id]
        scores = [r.human_score for r in rows]
        out.append(
            CalibratedAnswer(
                id=answer_id, area=first.area, question=first.question, reference=first.reference,
                answer=first.answer, human_scores=scores, consensus=statistics.median_low(scores),
                judge_score=verdict.score, judge_error=verdict.error, rationale=verdict.rationale,
            )
        )  # fmt: skip
    return out


def _human_matrix(answers: Sequence[CalibratedAnswer]) -> np.ndarray:
    """Raters x answers (NaN where an answer has fewer raters), answers with several raters only.

    Alpha pairs ratings within an answer, so which person gave which rating does not matter here: row k
    holds each answer's k-th rating."""
    multi = [a.human_scores for a in answers if len(a.human_scores) >= 2]
    width = max((len(s) for s in multi), default=2)
    matrix = np.full((width, len(multi)), np.nan)
    for column, scores in enumerate(multi):
        matrix[: len(scores), column] = scores
    return matrix


def agreement_of(
    area: str, answers: Sequence[CalibratedAnswer], resamples: int = agreement.RESAMPLES
) -> Agreement:
    """Every agreement figure of ``answers`` (one area, or all), each with its interval."""
    scored = [a for a in answers if a.judge_score is not None]
    judge = np.array([a.judge_score for a in scored], dtype=float)
    people = np.array([a.consensus for a in scored], dtype=float)
    human = _human_matrix(answers)
    return Agreement(
        area=area,
        n=len(scored),
        judge_errors=len(answers) - len(scored),
        exact=agreement.estimate(agreement.exact_agreement, judge, people, resamples),
        within_one=agreement.estimate(agreement.within_one, judge, people, resamples),
        kappa=agreement.estimate(agreement.quadratic_kappa, judge, people, resamples),
        spearman=agreement.estimate(agreement.spearman, judge, people, resamples),
        bias=agreement.estimate(agreement.mean_bias, judge, people, resamples),
        confusion=agreement.confusion(judge, people),
        judge_alpha=agreement.alpha_estimate(np.vstack([judge, people]), resamples),
        human_alpha=agreement.alpha_estimate(human, resamples),
        n_multi=human.shape[1],
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def calibrate(
    labels: Labels,
    verdicts: dict[str, Verdict],
    *,
    judge_name: str,
    judge_model: str,
    judge_fingerprint: str,
    rubric_name: str,
    rubric_hash: str,
    min_kappa: float = DEFAULT_MIN_KAPPA,
    resamples: int = agreement.RESAMPLES,
) -> Calibration:
    """The calibration record of ``verdicts`` (one per answer id) against ``labels``.

    ``EvalsError`` when the judge failed on every answer: there is nothing to measure.
    """
    groups = distinct_answers(labels)
    answers = calibrated_answers(groups, verdicts)
    failed = [a for a in answers if a.judge_score is None]
    if len(failed) == len(answers):
        first = failed[0].judge_error if failed else "no answers"
        raise EvalsError(f"the judge failed on all {len(answers)} labelled answers; the first error: {first}")
    overall = agreement_of(OVERALL, answers, resamples)
    areas = sorted({a.area for a in answers})
    kappa = overall.kappa
    return Calibration(
        created_at=now(),
        labels=labels.path,
        labels_hash=content_hash([r.model_dump(mode="json") for r in labels.rows]),
        judge_name=judge_name,
        judge_model=judge_model,
        judge_fingerprint=judge_fingerprint,
        rubric_name=rubric_name,
        rubric_hash=rubric_hash,
        rows=len(labels.rows),
        min_kappa=min_kappa,
        passed=None if kappa.low is None else kappa.low >= min_kappa,
        overall=overall,
        areas=[agreement_of(area, [a for a in answers if a.area == area], resamples) for area in areas],
        answers=answers,
        resamples=resamples,
    )


def residuals_of(calibration: Calibration) -> list[float]:
    """|consensus − judge| per labelled answer the judge scored (the stored ones when the answers are gone)."""
    if not calibration.answers:
        return list(calibration.residuals)
    return [float(abs(a.consensus - a.judge_score)) for a in calibration.answers if a.judge_score is not None]


def save_calibration(store: Store, calibration: Calibration) -> str:
    """Store a calibration (without the answers' text); its id."""
    kappa = calibration.overall.kappa
    row = stored.CalibrationRow(
        judge_fingerprint=calibration.judge_fingerprint, rubric_hash=calibration.rubric_hash,
        judge_name=calibration.judge_name, judge_model=calibration.judge_model,
        rubric_name=calibration.rubric_name, created_at=calibration.created_at, labels=calibration.labels,
        labels_hash=calibration.labels_hash, n=calibration.overall.n, kappa=kappa.value, kappa_low=kappa.low,
        kappa_high=kappa.high, min_kappa=calibration.min_kappa, passed=calibration.passed,
        record_json=calibration.model_copy(update={"answers": [], "residuals": residuals_of(calibration)}).model_dump_json(),
    )  # fmt: skip
    return stored.insert_calibration(store, row)


def latest_calibration(store: Store, fingerprints: frozenset[str], rubric_hash: str) -> Calibration | None:
    """The most recent calibration of any of these judge fingerprints with this rubric hash, or None."""
    found = stored.latest_calibration_json(store, fingerprints, rubric_hash)
    return None if found is None else Calibration.model_validate_json(found)


def calibrations(store: Store) -> list[Calibration]:
    """Every stored calibration, oldest first."""
    return [Calibration.model_validate_json(r) for r in stored.calibration_jsons(store)]
