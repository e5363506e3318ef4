"""People in the loop: pick the answers of a run that people should score, and take their scores back.

``select_rows`` asks each selector of ``SELECTORS`` which answers of a run need a person's eye, and why
(first the answers whose conformal interval straddles the pass score, then judge errors, judges of a panel
two points or more apart, repeated verdicts that disagree, verdicts at the pass boundary); ``write_review`` writes the answers in the labels-file format (``evals.trust.labels``) with a
blank ``human_score`` and a ``reason``, as CSV and JSONL. Answers picked so are not a random sample: a
uniform one is ``evals.trust.draw``'s. ``evals.trust.human`` takes the filled files back (into a labels file
for the next ``evals judge calibrate``, and into the store with the run's answers).

A selector is a small typed object with a ``name`` and a ``select`` method: another kind of candidate
(flagged answers, canary movers) is one more class appended to ``SELECTORS``.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from evals.errors import StoreError
from evals.files import write_atomic
from evals.records import Answer, Item, Judgment, RunManifest, Sensitivity
from evals.store import Store, canary
from evals.store.retention import check_text
from evals.store.rows import member_scores
from evals.trust.agreement import DISAGREE_AT
from evals.trust.calibration import latest_calibration, residuals_of
from evals.trust.conformal import answer_interval, conformal_width, straddles
from evals.trust.labels import COLUMNS

Key = tuple[str, int]
"""(item id, sample): one answer of a run."""


@dataclass(frozen=True)
class ReviewRun:
    """What selectors read: one run's items, answers and every verdict (all repeats, all judges)."""

    manifest: RunManifest
    items: dict[str, Item]
    answers: dict[Key, Answer]
    verdicts: dict[Key, list[Judgment]] = field(default_factory=dict)
    pass_score: int = 4
    width: float | None = None
    """The split-conformal half-width from the latest calibration of the run's judge; None: not calibrated."""


class Selector(Protocol):
    """Finds answers people should look at, with the reason for each."""

    @property
    def name(self) -> str:
        """A short name (``judge-error``)."""
        ...

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]: ...


def _score(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class JudgeErrors:
    """Answers with no verdict: the judge failed on them (or never judged them)."""

    name: str = "judge-error"

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]:
        for key, answer in run.answers.items():
            if answer.text is None:
                continue
            verdicts = run.verdicts.get(key, [])
            if not any(v.score is not None for v in verdicts):
                error = next((v.error for v in verdicts if v.error), None) or "never judged"
                yield key, f"judge error: {error[:120]}"


def _scores_by_judge(verdicts: list[Judgment]) -> dict[str, list[float]]:
    by_judge: dict[str, list[float]] = defaultdict(list)
    for v in verdicts:
        if v.score is not None:
            by_judge[v.judge].append(v.score)
    return by_judge


@dataclass(frozen=True)
class PanelDisagreement:
    """Answers two judges scored ``points`` or more apart."""

    name: str = "panel-disagreement"
    points: float = DISAGREE_AT

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]:
        for key, verdicts in run.verdicts.items():
            means = member_scores(verdicts)  # each judge's repeats averaged, as the row's score takes them
            if len(means) < 2:
                continue
            if max(means.values()) - min(means.values()) >= self.points:
                said = ", ".join(f"{judge} {_score(m)}" for judge, m in sorted(means.items()))
                yield key, f"judges disagree by {self.points:g}+ points ({said})"


@dataclass(frozen=True)
class SplitRepeats:
    """Answers one judge, asked several times, scored differently."""

    name: str = "split-repeats"

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]:
        for key, verdicts in run.verdicts.items():
            by_judge = _scores_by_judge(verdicts)
            for judge, scores in sorted(by_judge.items()):
                if len(scores) >= 2 and max(scores) != min(scores):
                    yield key, f"{judge}'s repeated verdicts disagree ({', '.join(map(_score, scores))})"
                    break


@dataclass(frozen=True)
class Uncertain:
    """Answers whose conformal interval (the judge's score ± the calibration's width, on whole scores)
    holds both a passing and a failing score: the judge's verdict does not settle them (``evals.trust.conformal``)."""

    name: str = "uncertain"

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]:
        if run.width is None:
            return
        for key, verdicts in run.verdicts.items():
            scores = [v.score for v in verdicts if v.score is not None]
            if not scores:
                continue
            interval = answer_interval(sum(scores) / len(scores), run.width)
            if straddles(interval, run.pass_score):
                yield (
                    key,
                    (
                        f"uncertain: a person could score it {interval.low}–{interval.high} "
                        f"(judge {_score(interval.judge_score)} ± {run.width:g}, pass from {run.pass_score})"
                    ),
                )


@dataclass(frozen=True)
class PassBoundary:
    """Answers scored one point either side of the pass line: a one-point slip changes pass to fail."""

    name: str = "pass-boundary"

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]:
        for key, verdicts in run.verdicts.items():
            scores = [v.score for v in verdicts if v.score is not None]
            if not scores:
                continue
            mean = sum(scores) / len(scores)
            if run.pass_score - 1 <= mean <= run.pass_score:
                yield key, f"at the pass boundary (score {_score(mean)}, pass from {run.pass_score})"


@dataclass(frozen=True)
class FlaggedAnswers:
    """Answers that address the grader (``evals.judge.grader_attacks``): did their words move the verdict?"""

    name: str = "flagged"

    def select(self, run: ReviewRun) -> Iterator[tuple[Key, str]]:
        for key, answer in run.answers.items():
            if answer.flags:
                kinds = ", ".join(sorted({f.kind for f in answer.flags}))
                yield key, f"the answer addresses the grader ({kinds})"


SELECTORS: tuple[Selector, ...] = (
    Uncertain(), JudgeErrors(), FlaggedAnswers(), PanelDisagreement(), SplitRepeats(), PassBoundary(),
)  # fmt: skip
"""Asked in this order; an answer's earliest reason ranks it (``--limit`` keeps the first)."""


@dataclass(frozen=True)
class ReviewRow:
    """One answer to review, in the labels-file format, its score left blank."""

    id: str
    area: str
    question: str
    reference: str | None
    answer: str
    reason: str
    human_score: int | None = None
    rater: str | None = None
    sensitivity: Sensitivity | None = None
    """The item's level: it follows the text into a labels file and ``judge calibrate`` (the gateway)."""
    run_id: str | None = None
    """The run the answer came from: its suite's redaction patterns follow the row."""
    draw: str | None = None
    """The random draw that picked the answer (``evals.trust.draw``); None when a selector picked it."""
    scored_at: str | None = None
    """Left blank: when the person scored it, if they say (else the import's time)."""

    def as_dict(self) -> dict[str, object]:
        return {c: getattr(self, c) for c in COLUMNS}


def review_run(store: Store, run_id: str, pass_score: int = 4) -> ReviewRun:
    """Read what the selectors need; StoreError for a run whose answer text was purged (or is encrypted and
    read without ``EVALS_STORE_KEY``: people would be given ``(encrypted)`` to score)."""
    manifest = store.run(run_id)
    check_text(store, run_id, "export its answers for review", "reviewed")
    answers = store.answers(run_id)
    if answers and not any(a.text is not None for a in answers.values() if a.error is None):
        raise StoreError(f"run {run_id}'s answer text was purged from the store; it cannot be reviewed")
    verdicts: dict[Key, list[Judgment]] = defaultdict(list)
    for j in store.verdicts(run_id):
        verdicts[(j.item_id, j.sample)].append(j)
    items = {item.id: item for item in store.items(run_id)}
    found = latest_calibration(store, store.judging_provenance(run_id).fingerprints, manifest.rubric_hash)
    width = conformal_width(residuals_of(found)).width if found is not None else None
    return ReviewRun(manifest, items, answers, dict(verdicts), pass_score, width)


def select_rows(
    run: ReviewRun, selectors: tuple[Selector, ...] = SELECTORS, limit: int | None = None
) -> list[ReviewRow]:
    """The answers to review, each with every reason found, ranked by its first selector, then suite order."""
    reasons: dict[Key, list[str]] = defaultdict(list)
    rank: dict[Key, int] = {}
    for position, selector in enumerate(selectors):
        for key, reason in selector.select(run):
            reasons[key].append(reason)
            rank.setdefault(key, position)
    order = {item_id: i for i, item_id in enumerate(run.items)}
    keys = sorted(reasons, key=lambda k: (rank[k], order.get(k[0], len(order)), k[1]))
    rows = []
    for item_id, sample in keys:
        item, answer = run.items.get(item_id), run.answers.get((item_id, sample))
        if item is None or answer is None or answer.text is None:
            continue
        rows.append(
            ReviewRow(
                id=f"{run.manifest.run_id}/{item_id}/{sample}", area=item.area, question=item.prompt_text(),
                reference=item.reference, answer=answer.text, reason="; ".join(reasons[(item_id, sample)]),
                sensitivity=item.sensitivity, run_id=run.manifest.run_id,
            )
        )  # fmt: skip
    return rows[:limit] if limit is not None else rows


def write_review(rows: list[ReviewRow], folder: Path) -> dict[str, Path]:
    """``review.csv`` and ``review.jsonl`` in ``folder``, blank ``human_score`` and ``rater`` to fill in."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "review.csv", "jsonl": folder / "review.jsonl"}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.as_dict().items()} for r in rows)
    write_atomic(paths["csv"], buffer.getvalue())
    write_atomic(paths["jsonl"], "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in rows))
    return paths


def canary_movers(store: Store, run_id: str) -> list[ReviewRow]:
    """The judge's canary anchors whose score changed on ``run_id``'s observation since the previous one:
    the same frozen answer graded differently, for a person to say which verdict was right."""
    rows = []
    for observation in canary.observations(store, run_id=run_id):
        history = [o.run_id for o in canary.observations(store, set_id=observation.set_id)]
        at = history.index(run_id)
        if at == 0:
            continue
        now = {s.item_id: s.score for s in canary.scores(store, observation.set_id, run_id)}
        before = {s.item_id: s.score for s in canary.scores(store, observation.set_id, history[at - 1])}
        for anchor in canary.anchors(store, observation.set_id):
            old, new = before.get(anchor.item.id), now.get(anchor.item.id)
            if old is not None and new is not None and old != new:
                rows.append(
                    ReviewRow(
                        id=f"canary/{observation.set_id}/{anchor.item.id}", area=anchor.item.area,
                        question=anchor.item.prompt_text(), reference=anchor.item.reference, answer=anchor.answer,
                        reason=f"canary anchor graded {_score(old)} on run {history[at - 1]}, {_score(new)} now",
                        sensitivity=anchor.item.sensitivity, run_id=history[at - 1],
                    )
                )  # fmt: skip
    return rows
