"""The judge's drift canary: a small frozen set of answered items, re-judged at the end of every run.

A provider can update the model behind a judge's name without a word: the same answers then get other
scores, and a scorecard would blame the model. Each (judge fingerprint, suite) keeps an anchor set (by
default 20 answered items, drawn round-robin across areas from the first run of that suite with that
judge, seeded by its run id) with its own copy of the texts. Every later run's judge grades the anchors
again, straight through ``judge.grade`` (the judgment cache would hand back the old verdict), and the
scores are stored as that run's observation; ``evals.scorecard.canary`` turns two observations into the
shift. A canary that cannot be observed is recorded as such and never fails the run.

``reset`` retires a judge's set for a suite after a deliberate change (recorded: who, when, why): the next
run draws a new one, or, with ``from_latest``, the latest finished run does at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals.config import OFFLINE, CanarySettings, Config, JudgeEndpoint
from evals.errors import ConfigError, EvalsError, StoreError
from evals.judge.judging import Judge
from evals.outbound.callcontext import calling
from evals.outbound.gateway import OverBudget, Refused, each
from evals.outbound.sensitivity import Marking
from evals.plan import judge_fingerprint, now
from evals.records import RunManifest, content_hash
from evals.store import Store
from evals.store import canary as rows
from evals.store.crypto import ENCRYPTED
from evals.store.retention import check_text
from evals.suites import Suite
from evals.userfiles import parse_jsonl, read_text

log = logging.getLogger("evals.trust.canary")


class _Label(BaseModel):
    """One row of a canary labels file."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    question: str
    answer: str
    human_score: float = Field(ge=1, le=5)


@dataclass(frozen=True)
class CanaryOptions:
    """The canary settings of a run, with the labels file read (``canary_options``)."""

    enabled: bool = True
    size: int = 20
    min_shift: float = 0.25
    labels: dict[tuple[str, str], float] = field(default_factory=dict)
    """Human score by (question, answer)."""


def load_labels(path: Path) -> dict[tuple[str, str], float]:
    """``{(question, answer): human_score}`` from a JSONL file; ``ConfigError`` naming file:line otherwise."""
    labels: dict[tuple[str, str], float] = {}
    for line in parse_jsonl(read_text(path, error=ConfigError)):
        if line.problem is not None:
            raise ConfigError(f"{path}:{line.line}: {line.problem}")
        try:
            label = _Label.model_validate(line.value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "row"
            raise ConfigError(f"{path}:{line.line}: {where}: {first['msg']}") from None
        labels[(label.question, label.answer)] = label.human_score
    return labels


def canary_options(config: Config) -> CanaryOptions:
    """The config's ``canary:`` settings, the labels file (relative to the config's folder) read now, so a
    bad one fails before the run starts."""
    s: CanarySettings = config.canary
    labels = load_labels(config.path(s.labels)) if s.labels and s.enabled else {}
    return CanaryOptions(s.enabled, s.size, s.min_shift, labels)


def who() -> str:
    """The user recording an event (``$USER``), or ``unknown``."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def draw_anchors(store: Store, run_id: str, fingerprint: str, size: int) -> list[rows.Anchor]:
    """Up to ``size`` scored answers of a run (first sample of each item), round-robin over its areas.

    Each area's candidates are shuffled by a generator seeded with the run id, so the same run always gives
    the same set. Only verdicts of this judge count; restricted items are never drawn (their text would be
    sent to the judge on every run).
    """
    answers = store.answers(run_id)
    judgments = store.judgments(run_id)
    by_area: dict[str, list[rows.Anchor]] = defaultdict(list)
    for item in store.items(run_id):
        answer, verdict = answers.get((item.id, 0)), judgments.get((item.id, 0))
        if answer is None or answer.text is None or verdict is None or verdict.score is None:
            continue
        if verdict.judge_fingerprint != fingerprint or item.sensitivity == "restricted":
            continue
        by_area[item.area].append(rows.Anchor(item, answer.text, answer.truncated, verdict.score))
    rng = random.Random(run_id)
    queues = []
    for area in sorted(by_area):
        candidates = by_area[area]
        rng.shuffle(candidates)
        queues.append(candidates)
    drawn: list[rows.Anchor] = []
    while len(drawn) < size and any(queues):
        for queue in queues:
            if queue and len(drawn) < size:
                drawn.append(queue.pop(0))
    return drawn


def anchor_from_run(
    store: Store, manifest: RunManifest, fingerprint: str, options: CanaryOptions, at: str | None = None
) -> rows.AnchorSet | None:
    """Draw a new anchor set from a finished run and record the run's own verdicts as its first
    observation (no call is made); None when the run has no scored answer of this judge. ``StoreError``
    when the run's text is purged, or encrypted and read without the key: anchors must hold the text."""
    check_text(store, manifest.run_id, "anchor the canary on it", "anchored on")
    drawn = draw_anchors(store, manifest.run_id, fingerprint, options.size)
    if not drawn:
        return None
    at = at or now()
    anchors = [
        rows.Anchor(
            a.item, a.answer, a.truncated, a.score, options.labels.get((a.item.prompt_text(), a.answer))
        )
        for a in drawn
    ]
    anchor_set = rows.AnchorSet(
        set_id=content_hash([fingerprint, manifest.suite_name, manifest.run_id, at]),
        judge_fingerprint=fingerprint,
        judge_name=manifest.judge_name,
        suite_name=manifest.suite_name,
        rubric_hash=manifest.rubric_hash,
        source_run=manifest.run_id,
        created_at=at,
    )
    rows.create_set(store, anchor_set, anchors)
    judgments = store.judgments(manifest.run_id)
    model_ids = sorted({j.model_id for a in anchors if (j := judgments[(a.item.id, 0)]).model_id})
    observation = rows.Observation(
        anchor_set.set_id, manifest.run_id, at, manifest.started_at, options.min_shift, tuple(model_ids),
        manifest.rubric_hash,
    )  # fmt: skip
    scores = [
        rows.AnchorScore(a.item.id, a.score, model_id=judgments[(a.item.id, 0)].model_id) for a in anchors
    ]
    rows.save_observation(store, observation, scores)
    return anchor_set


@dataclass(frozen=True)
class Canary:
    """The canary as a run's observer (``evals.plan.Observer``): the run's judge re-grades the anchors
    through the run's gateway, on the run's audit chain, within its ``--max-cost``.

    ``marking``: the suite's marking today. An anchor is sent at the stricter of the level it was stored
    with and the suite's marking of it now, checked at every observation: an anchor drawn while its area
    was ``internal`` is never sent to an external judge once the suite marks it ``restricted`` (it is
    recorded as not re-judged), whatever areas the run itself asked; nor is one whose item the suite no
    longer holds.
    """

    options: CanaryOptions
    marking: Marking | None = None

    @classmethod
    def of(cls, config: Config, suite: Suite | None) -> Canary:
        """The config's canary for a run of ``suite`` (its whole marking, whatever part the run asks)."""
        return cls(canary_options(config), suite.levels() if suite is not None else None)

    def missed(self, store: Store, manifest: RunManifest, judge: JudgeEndpoint) -> bool:
        """A run resumed with nothing left whose observation never was (the process ended between its last
        verdict and the canary); a panel's canary is observed by its first member during the run only."""
        if not self.options.enabled or judge.provider == OFFLINE or judge.panel is not None:
            return False
        return not rows.observations(store, run_id=manifest.run_id)

    async def observe(self, store: Store, manifest: RunManifest, judge: Judge) -> None:
        """The run's observation: re-judge the active anchor set, or draw one from this run when the judge
        has none for the suite. Disabled, or with the offline judge (a fixed algorithm), it does nothing.
        Never raises but on an interrupt: a failure is recorded with the observation and logged."""
        options = self.options
        if not options.enabled or judge.offline:
            return
        fingerprint = judge_fingerprint(judge)
        anchor_set: rows.AnchorSet | None = None
        try:
            anchor_set = await asyncio.to_thread(rows.active_set, store, fingerprint, manifest.suite_name)
            if anchor_set is None:
                await asyncio.to_thread(anchor_from_run, store, manifest, fingerprint, options)
                return
            anchors = await asyncio.to_thread(rows.anchors, store, anchor_set.set_id)
            if any(a.answer == ENCRYPTED for a in anchors):
                raise EvalsError(
                    "the anchors' text is encrypted and EVALS_STORE_KEY is not set: not re-judged"
                )
            scores = await _rejudge(manifest.run_id, judge, [self._marked(a) for a in anchors])
            model_ids = tuple(sorted({s.model_id for s in scores if s.model_id}))
            observation = rows.Observation(
                anchor_set.set_id, manifest.run_id, now(), manifest.started_at, options.min_shift, model_ids,
                manifest.rubric_hash,
            )  # fmt: skip
            await asyncio.to_thread(rows.save_observation, store, observation, scores)
        except Exception as exc:  # the canary watches the judge; it never decides whether a run worked
            log.warning("the judge's canary could not be observed on run %s: %s", manifest.run_id, exc)
            if anchor_set is not None:
                failed = rows.Observation(
                    anchor_set.set_id, manifest.run_id, now(), manifest.started_at, options.min_shift, (),
                    manifest.rubric_hash, error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
                try:
                    await asyncio.to_thread(rows.save_observation, store, failed, [])
                except Exception as again:
                    log.warning("nor could its failure be recorded: %s", again)

    def _marked(self, anchor: rows.Anchor) -> rows.Anchor:
        """The anchor at the stricter of its stored level and the suite's marking today; an anchor whose item
        the suite no longer holds (taken out, or moved to another suite) stays inside the perimeter: the
        suite no longer vouches for where its text may go, and the canary re-sends it on every run."""
        if self.marking is None:
            return anchor
        if anchor.item.id not in self.marking.items:
            return dataclasses.replace(
                anchor, item=anchor.item.model_copy(update={"sensitivity": "restricted"})
            )
        return dataclasses.replace(anchor, item=self.marking.apply(anchor.item))


OVER_BUDGET = "not graded: it could have crossed --max-cost"
"""The error of an anchor the run's budget had no room for."""
RESTRICTED = "not re-judged: its text is now restricted (or no longer in the suite) and the judge is external"
"""The error of an anchor whose area (or item) the suite marked restricted since it was drawn, or whose item
the suite no longer holds."""


async def _rejudge(run_id: str, judge: Judge, anchors: list[rows.Anchor]) -> list[rows.AnchorScore]:
    """Every anchor graded again by ``judge`` (never from the cache) through the run's gateway: at most the
    judge's concurrency at once, within the run's budget; a restricted anchor is never sent out."""

    async def grade(anchor: rows.Anchor) -> rows.AnchorScore:
        try:
            with calling(run_id, anchor.item.id, role="canary"):
                v = await judge.grade(anchor.item, anchor.answer, truncated=anchor.truncated)
        except Refused:
            return rows.AnchorScore(anchor.item.id, None, RESTRICTED)
        except OverBudget:
            return rows.AnchorScore(anchor.item.id, None, OVER_BUDGET)
        return rows.AnchorScore(anchor.item.id, v.score, v.error, v.model_id, v.tokens_in, v.tokens_out)

    return await each(anchors, grade, judge.max_concurrency)


@dataclass(frozen=True)
class ResetOutcome:
    """What ``reset`` did."""

    retired: int
    """Anchor sets taken out of use."""
    event: rows.CanaryEvent
    anchored: rows.AnchorSet | None = None
    """The set drawn at once from the latest run (``from_latest``)."""


def reset(
    store: Store,
    judge_name: str,
    suite_name: str,
    reason: str | None,
    options: CanaryOptions,
    from_latest: bool = False,
) -> ResetOutcome:
    """Re-anchor a judge's canary for a suite after a deliberate change, recording who, when and why.

    The next run of the suite with that judge draws a new set; with ``from_latest`` the latest finished run
    of both does at once (from its stored verdicts: no call), and the next run is compared with it.
    """
    at = now()
    anchored = None
    if from_latest:
        finished = [
            m for m in store.runs(suite_name) if m.judge_name == judge_name and m.status == "finished"
        ]
        if not finished:
            raise StoreError(
                f"no finished run of suite {suite_name!r} with judge {judge_name!r} to anchor from"
            )
        latest = finished[-1]
        check_text(store, latest.run_id, "anchor the canary on it", "anchored on")  # before a set is retired
        fingerprints = store.judging_provenance(latest.run_id).fingerprints
        if len(fingerprints) != 1:
            raise StoreError(
                f"run {latest.run_id} was graded by {len(fingerprints)} judge configurations; "
                "reset without --from-latest and let the next run anchor"
            )
    retired = rows.retire_sets(store, judge_name, suite_name)
    if from_latest:
        anchored = anchor_from_run(store, latest, next(iter(fingerprints)), options, at)
    event = rows.CanaryEvent(
        judge_name, suite_name, "reset", at, who(), reason, anchored.set_id if anchored else None
    )
    rows.record_event(store, event)
    return ResetOutcome(retired, event, anchored)
