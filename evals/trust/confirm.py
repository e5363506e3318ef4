"""Confirm before failing (``gate: {confirm_repeats: K}``): before the decision fails an area, the answers
of both runs in that area are graded again by the same judge until each has K verdicts, and the decision
is made again on their means.

One noisy verdict can fail an area of twenty items; asking the judge again about the very same answers
tells a judge's slip from the model's drop. The extra verdicts are stored with the runs as repeats beyond
the run's own ``--judge-repeats`` (each answer's score is the mean of its verdicts, on every page), so a
second gate reuses them instead of asking again, and ``evals report`` reads them without calling anyone.
Every call goes out through the run's gateway (the run's redaction patterns, the suite's current marking:
a restricted answer is never sent to an external judge and keeps its first verdict) and is on the run's
audit chain. A panel's runs and the offline judge (a fixed algorithm) are not re-graded.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.config import JudgeEndpoint
from evals.errors import StoreError
from evals.judge.judging import Judge, build_judge
from evals.judge.rubrics import RubricSearch
from evals.outbound import audit
from evals.outbound.callcontext import calling
from evals.outbound.gateway import Refused, each
from evals.plan import judge_fingerprint, structured_mode
from evals.records import Item, Judgment, RunManifest
from evals.runner import judge_repeats
from evals.store import Store
from evals.store.retention import check_text
from evals.trust.rerun import Perimeter


@dataclass(frozen=True)
class Confirmation:
    """What confirming did to one run's answers in the failing areas."""

    run_id: str
    areas: tuple[str, ...]
    answers: int
    """Answers with K verdicts now (or that were refused: ``kept``)."""
    asked: int
    """Verdicts asked in this call (0 when an earlier gate asked them all)."""
    kept: int = 0
    """Restricted answers an external judge may not read: they keep their first verdict."""
    skipped: str | None = None
    """Why the run was not re-graded at all (a panel, the offline judge), or None."""


@dataclass(frozen=True)
class Flips:
    """Answers of a run whose confirming verdicts did not all repeat the first one."""

    answers: int
    """Answers graded beyond the run's own repeats."""
    changed: int
    """Of those, answers with a verdict that differs from the first."""
    crossed: int
    """Of those, answers whose verdicts fall on both sides of the pass score."""


def flips(store: Store, manifest: RunManifest, pass_score: int) -> Flips:
    """The flips the stored confirming verdicts of ``manifest`` show (read from the store, no call)."""
    own = judge_repeats(manifest)
    by_answer: dict[tuple[str, int, str], dict[int, float]] = defaultdict(dict)
    for j in store.verdicts(manifest.run_id):
        if j.score is not None and j.error is None:
            by_answer[(j.item_id, j.sample, j.judge)][j.repeat] = j.score
    confirmed = [v for v in by_answer.values() if any(r >= own for r in v) and 0 in v]
    changed = [v for v in confirmed if len(set(v.values())) > 1]
    crossed = [v for v in changed if len({s >= pass_score for s in v.values()}) > 1]
    return Flips(len(confirmed), len(changed), len(crossed))


def _work(store: Store, manifest: RunManifest, items: Sequence[Item], areas: Iterable[str], repeats: int,
          judge: Judge) -> list[tuple[Item, int, str, bool, int]]:  # fmt: skip
    """(item, sample, answer, truncated, repeat) of every verdict still wanted in ``areas``."""
    wanted = set(areas)
    answers = store.answers(manifest.run_id)
    have = {
        (j.item_id, j.sample, j.repeat)
        for j in store.verdicts(manifest.run_id)
        if j.judge == judge.describe() and j.score is not None and j.error is None
    }
    work = []
    for item in items:
        if item.area not in wanted:
            continue
        for sample in range(manifest.samples):
            answer = answers.get((item.id, sample))
            if answer is None or answer.error is not None or answer.text is None:
                continue
            for repeat in range(repeats):
                if (item.id, sample, repeat) not in have:
                    work.append((item, sample, answer.text, answer.truncated, repeat))
    return work


async def _grade(store: Store, manifest: RunManifest, judge: Judge, work: list[tuple[Item, int, str, bool, int]]) -> tuple[int, int]:  # fmt: skip
    """Ask every wanted verdict (fresh, never from the cache) and store it; (asked, refused)."""
    fingerprint = judge_fingerprint(judge)

    async def one(job: tuple[Item, int, str, bool, int]) -> bool:
        item, sample, answer, truncated, repeat = job
        try:
            with calling(manifest.run_id, item.id, sample, "judge"):
                verdict = await judge.grade(item, answer, truncated=truncated)
        except Refused:
            return False
        judgment = Judgment(
            manifest.run_id, item.id, sample, verdict.score, verdict.rationale, verdict.raw, judge.describe(),
            judge.cache_key(item, answer, truncated), cached=False, tokens_in=verdict.tokens_in,
            tokens_out=verdict.tokens_out, latency_ms=verdict.latency_ms, error=verdict.error,
            rubric_hash=judge.rubric_for(item).hash, judge_fingerprint=fingerprint, model_id=verdict.model_id,
            repeat=repeat,
        )  # fmt: skip
        await asyncio.to_thread(_audited, store, judgment)
        return True

    done = await each(work, one, judge.max_concurrency)
    return sum(done), len(done) - sum(done)


def _audited(store: Store, judgment: Judgment) -> None:
    """Store a verdict once the audit records of the calls made so far are stored (``evals.runner``'s rule:
    a process killed at any moment leaves no verdict whose call is not on the run's chain)."""
    audit.flush()
    store.save_judgment(judgment)


def confirm(
    store: Store,
    manifest: RunManifest,
    areas: Sequence[str],
    repeats: int,
    judge_name: str,
    endpoint: JudgeEndpoint,
    rubrics: RubricSearch | Path,
    perimeter: Perimeter,
) -> Confirmation:
    """Grade the answers of ``manifest`` in ``areas`` until each has ``repeats`` verdicts of the run's judge."""
    if endpoint.panel is not None:
        return Confirmation(
            manifest.run_id, tuple(areas), 0, 0, skipped="a panel's verdicts are not re-graded"
        )
    try:  # a purged run, or an encrypted one read without the key, would send (purged) or (encrypted)
        check_text(store, manifest.run_id, "confirm its verdicts", "re-graded")
    except StoreError as exc:
        return Confirmation(manifest.run_id, tuple(areas), 0, 0, skipped=f"not confirmed: {exc}")
    gateway = perimeter.gateway(manifest)
    try:
        judge = build_judge(judge_name, endpoint, rubrics, gateway, mode=structured_mode(manifest))
    except BaseException:
        asyncio.run(gateway.aclose())
        raise
    if judge.offline:
        asyncio.run(gateway.aclose())
        return Confirmation(manifest.run_id, tuple(areas), 0, 0, skipped="the offline judge never varies")
    work = _work(store, manifest, perimeter.items(store.items(manifest.run_id)), areas, repeats, judge)

    async def go() -> tuple[int, int]:
        try:  # one event loop for the calls and the closing of their clients
            return await _grade(store, manifest, judge, work)
        finally:
            await gateway.aclose()

    with audit.recording(store, chains=(manifest.run_id,)):  # on the run's own chain
        asked, kept = asyncio.run(go())
    store.save_aggregates(manifest.run_id)  # history and the index read the confirmed figures
    answers = len({(item.id, sample) for item, sample, *_ in work})
    return Confirmation(manifest.run_id, tuple(areas), answers, asked, kept)
