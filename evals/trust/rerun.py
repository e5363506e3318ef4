"""Re-judging a run's stored answers (``evals judge rerun``): a new run sharing the frozen answers.

The new run copies the source run's items and answers unchanged (an answer error stays an error; nothing
is asked of the model) and is judged K times per answer, every verdict fresh (``judging: {repeats: K,
fresh: true}``), by the same judge or another one, with the judge's default rubric or another one. Its
manifest says where the answers came from (``rerun_of``) and which rubric replaced the default
(``judging.rubric``), and the scorecard shows both.

Two uses. Judge noise: K fresh verdicts on frozen answers measure the judge alone (``evals.trust.noise``).
Comparability: a candidate judged by a new judge and a baseline judged by the old one differ by the judge
too; rerun the baseline with the new judge and compare the candidate with that rerun.

A rerun resumes like any run (``evals run --resume NEW``): it needs no suite (its items are in the store),
copies whatever answers it still lacks from the source, and asks only the missing verdicts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals import __version__
from evals.config import Endpoint, JudgeEndpoint, RedactionSettings
from evals.errors import StoreError
from evals.judge.judging import Judge, LLMJudge, build_judge
from evals.judge.provenance import rubrics_hash
from evals.judge.rubrics import RubricSearch
from evals.outbound.gateway import FAIL_AFTER, Gateway
from evals.outbound.sensitivity import Destination, Marking, check_restricted
from evals.plan import MAX_SAMPLES, check_free, new_run_id, now, record_mode, stored_patterns, structured_mode
from evals.records import Completion, CompletionRequest, Item, RunConfig, RunManifest, Sensitivity
from evals.runner import Reporter, RunOutcome, carry, execute
from evals.store import Store
from evals.store.retention import check_text, is_purged

DEFAULT_REPEATS = 3
"""Verdicts per answer when ``--repeats`` is not given: the fewest that show a judge disagreeing with
itself more than once."""


def source_of(manifest: RunManifest) -> str | None:
    """The run whose answers a rerun re-judged; None for a run that asked its model."""
    return manifest.config.rerun_of


def rubric_override(manifest: RunManifest) -> str | None:
    """The rubric a rerun graded with in place of the judge's default (``--rubric``); None if none."""
    return manifest.config.judging.rubric


class FrozenAnswers:
    """The "model" of a rerun: its answers are copied, never asked (the runner finds none to ask)."""

    name = "frozen answers"
    max_concurrency = 1
    endpoint = Endpoint(provider="offline")  # never asked: nothing to cap

    async def complete(self, request: CompletionRequest) -> Completion:
        raise RuntimeError("a rerun's answers are frozen: the model is never asked")

    async def aclose(self) -> None:
        pass


def check_source(store: Store, run_id: str) -> RunManifest:
    """The run to re-judge; StoreError when it is unknown, has no answers, or its text was purged (or is
    encrypted and ``EVALS_STORE_KEY`` is not set: the judge would be sent ``(encrypted)``)."""
    manifest = store.run(run_id)  # StoreError naming the store for an unknown id
    answers = store.answers(run_id).values()
    if is_purged(store, run_id) or any(a.text is None and a.error is None for a in answers):
        raise StoreError(
            f"run {run_id} was purged: its answers' text is gone, so they cannot be re-judged; "
            "rerun a run that still holds its answers"
        )
    check_text(store, run_id, "re-judge its answers", "re-judged")  # encrypted, and no key to read it
    if not any(a.text is not None for a in answers):
        raise StoreError(f"run {run_id} has no answers to re-judge (none were stored, or every one failed)")
    return manifest


def endpoint_for(endpoint: JudgeEndpoint, rubric: str | None) -> JudgeEndpoint:
    """The judge's endpoint with ``rubric`` as its default rubric (items naming their own keep theirs)."""
    return endpoint if rubric is None else endpoint.model_copy(update={"rubric": rubric})


def plan_rerun(
    source: RunManifest,
    items: Sequence[Item],
    judge: Judge,
    endpoint: JudgeEndpoint,
    repeats: int,
    rubric: str | None,
    run_id: str,
    tags: tuple[str, ...],
) -> RunManifest:
    """The manifest of a rerun: the source's suite, model, samples, selection and redaction patterns; the new
    judge, rubrics and judging."""
    used = {judge.rubric_for(item).label: judge.rubric_for(item).name for item in items}
    labels = sorted(used)
    judging: dict[str, Any] = {"repeats": repeats, "fresh": True}
    if rubric is not None:
        judging["rubric"] = rubric
    config: dict[str, Any] = {
        "model": source.config.model,
        "judge": endpoint.snapshot(),
        "judging": judging,
        "rerun_of": source.run_id,
    }
    if isinstance(judge, LLMJudge):
        config["structured"] = judge.mode
    if source.config.recorded("selection"):
        config["selection"] = source.config.selection
    if source.config.recorded("patterns"):  # runs from before patterns were kept have none recorded
        config["patterns"] = source.config.patterns
    return RunManifest(
        run_id=run_id,
        suite_name=source.suite_name,
        suite_path=source.suite_path,
        suite_hash=source.suite_hash,
        model_name=source.model_name,
        model=source.model,
        judge_name=judge.name,
        judge_model=judge.model,
        rubric_name="+".join(sorted(set(used.values()))),
        rubric_hash=rubrics_hash(labels),
        samples=source.samples,
        started_at=now(),
        config=RunConfig.model_validate(config),
        tags=tuple(tags),
        model_id=source.model_id,
        lookingglass_version=__version__,
        rubrics=tuple(labels),
    )


def copy_answers(store: Store, source_id: str, run_id: str) -> int:
    """Copy the source's answers the rerun does not hold yet (all of them at first); how many were copied."""
    held = store.answers(run_id)
    copied = 0
    for key, answer in store.answers(source_id).items():
        if key not in held:
            store.save_answer(dataclasses.replace(answer, run_id=run_id))
            copied += 1
    return copied


@dataclass(frozen=True)
class Perimeter:
    """What a rerun may send where: the config's redaction and default level, and the suite's marking today
    (None when its file is gone: the levels stored with the run stand)."""

    redaction: RedactionSettings | None = None
    default_sensitivity: Sensitivity = "internal"
    marking: Marking | None = None
    fail_after: int = FAIL_AFTER

    def gateway(self, source: RunManifest) -> Gateway:
        """The rerun's gateway: the source run's own suite patterns (kept with it), the config's."""
        return Gateway(
            self.redaction, stored_patterns(source), None, self.default_sensitivity, self.fail_after
        )

    def items(self, items: Sequence[Item]) -> list[Item]:
        """``items`` at the stricter of their stored level and the suite's marking today."""
        return [self.marking.apply(i) for i in items] if self.marking is not None else list(items)

    def check(self, judge_name: str, endpoint: JudgeEndpoint, items: Sequence[Item]) -> None:
        """Restricted items are refused for an external judge, before any call (the frozen answers call no
        model). A rerun has no ``--area`` and grades with one judge (a ``restricted_judge`` is
        ``evals run``'s): the way out is a judge inside the perimeter, named with ``--judge``."""
        remedy = (
            "re-judge with a judge inside the perimeter: --judge NAME of an entry with external: false, or "
            "--judge local (a rerun grades every answer with one judge; restricted_judge is evals run's)"
        )
        check_restricted(
            items, [Destination("judge", judge_name, endpoint.is_external())], flag=None, remedy=remedy
        )


def rerun(
    store: Store,
    source_id: str,
    judge_name: str,
    judge_endpoint: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    repeats: int = DEFAULT_REPEATS,
    rubric: str | None = None,
    run_id: str | None = None,
    tags: tuple[str, ...] = (),
    reporter: Reporter | None = None,
    perimeter: Perimeter | None = None,
) -> RunOutcome:
    """Re-judge the stored answers of ``source_id`` ``repeats`` times each, fresh, as a new run.

    The perimeter holds as in any run: restricted items (as stored, or as the suite marks them today) are
    refused for an external judge, and what it reads is redacted with the source run's patterns too."""
    if not 1 <= repeats <= MAX_SAMPLES:
        raise StoreError(f"repeats must be from 1 to {MAX_SAMPLES}, not {repeats}")
    perimeter = perimeter or Perimeter()
    source = check_source(store, source_id)
    run_id = run_id or new_run_id(source.model_name)
    check_free(store, run_id)
    endpoint = endpoint_for(judge_endpoint, rubric)
    items = perimeter.items(store.items(source_id))
    perimeter.check(judge_name, endpoint, items)
    gateway = perimeter.gateway(source)
    with ExitStack() as held:
        try:
            judge = build_judge(judge_name, endpoint, rubrics_dir, gateway)
            for item in items:
                judge.rubric_for(item)  # a missing or broken rubric fails here, before the run exists
            manifest = plan_rerun(source, items, judge, endpoint, repeats, rubric, run_id, tags)
            redaction = gateway.snapshot([(judge_name, endpoint)])
            redaction.update(model_external=False, judge_external=endpoint.is_external())
            manifest = dataclasses.replace(manifest, config=manifest.config.updated(redaction=redaction))
            held.enter_context(store.lock_run(run_id))
            check_free(store, run_id)  # again: another process may have taken it meanwhile
            store.create_run(manifest, items)
        except BaseException:
            asyncio.run(gateway.aclose())
            raise
        copy_answers(store, source_id, run_id)
        return _carry(store, manifest, judge, gateway, reporter, perimeter.marking)


def resume(
    store: Store,
    run_id: str,
    judge_name: str,
    judge_endpoint: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    reporter: Reporter | None = None,
    perimeter: Perimeter | None = None,
) -> RunOutcome:
    """Continue an interrupted rerun: copy the answers it still lacks, ask only the missing verdicts."""
    perimeter = perimeter or Perimeter()
    manifest = store.run(run_id)
    source = source_of(manifest)
    if source is None:
        raise StoreError(f"run {run_id} is not a rerun; resume it with evals run --resume {run_id}")
    if judge_name != manifest.judge_name:
        raise StoreError(
            f"rerun {run_id} is judged by {manifest.judge_name!r}; resume it with that judge (or leave --judge out)"
        )
    with ExitStack() as held:
        held.enter_context(store.lock_run(run_id))
        if len(store.answers(run_id)) < len(store.answers(source)):
            check_source(store, source)
            copy_answers(store, source, run_id)
        endpoint = endpoint_for(judge_endpoint, rubric_override(manifest))
        perimeter.check(judge_name, endpoint, perimeter.items(store.items(run_id)))
        gateway = perimeter.gateway(store.run(source) if store.has_run(source) else manifest)
        try:
            judge = build_judge(judge_name, endpoint, rubrics_dir, gateway, mode=structured_mode(manifest))
        except BaseException:
            asyncio.run(gateway.aclose())
            raise
        if isinstance(judge, LLMJudge) and judge.mode != structured_mode(manifest):
            record_mode(store, run_id, judge.mode)
        return _carry(store, manifest, judge, gateway, reporter, perimeter.marking)


def _carry(
    store: Store,
    manifest: RunManifest,
    judge: Judge,
    gateway: Gateway,
    reporter: Reporter | None,
    marking: Marking | None,
) -> RunOutcome:
    """Judge every missing verdict of a stored rerun, then export it (also when interrupted)."""
    if isinstance(judge, LLMJudge):
        judge.on_fallback = lambda mode: record_mode(store, manifest.run_id, mode)

    async def go() -> RunOutcome:
        try:
            return await execute(store, manifest, FrozenAnswers(), [judge], reporter, marking=marking)
        finally:
            await gateway.aclose()

    return carry(store, manifest.run_id, go)
