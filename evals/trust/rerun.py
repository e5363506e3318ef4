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
from pathlib import Path
from typing import Any

from evals import __version__
from evals.config import Endpoint, JudgeEndpoint, RedactionSettings
from evals.errors import StoreError
from evals.judge.judging import Judge, LLMJudge, build_judge
from evals.judge.provenance import rubrics_hash
from evals.judge.rubrics import RubricSearch
from evals.outbound.perimeter import Perimeter, plan_perimeter
from evals.outbound.providers.health import FAIL_AFTER
from evals.plan import MAX_SAMPLES, check_free, new_run_id, now, record_mode, structured_mode
from evals.records import Completion, CompletionRequest, Item, RunConfig, RunManifest
from evals.runner import Reporter, RunOutcome, carry, execute
from evals.store import Store
from evals.store.retention import is_purged

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

    async def complete(self, request: CompletionRequest) -> Completion:
        raise RuntimeError("a rerun's answers are frozen: the model is never asked")

    async def aclose(self) -> None:
        pass


def check_source(store: Store, run_id: str) -> RunManifest:
    """The run to re-judge; StoreError when it is unknown, has no answers, or its text was purged."""
    manifest = store.run(run_id)  # StoreError naming the store for an unknown id
    answers = store.answers(run_id).values()
    if is_purged(store, run_id) or any(a.text is None and a.error is None for a in answers):
        raise StoreError(
            f"run {run_id} was purged: its answers' text is gone, so they cannot be re-judged; "
            "rerun a run that still holds its answers"
        )
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
    fail_after: int = FAIL_AFTER,
    redaction: RedactionSettings | None = None,
) -> RunOutcome:
    """Re-judge the stored answers of ``source_id`` ``repeats`` times each, fresh, as a new run.

    The perimeter holds as in any run: restricted items are refused for an external judge, and what an
    external judge reads is redacted (``redaction``)."""
    if not 1 <= repeats <= MAX_SAMPLES:
        raise StoreError(f"repeats must be from 1 to {MAX_SAMPLES}, not {repeats}")
    source = check_source(store, source_id)
    run_id = run_id or new_run_id(source.model_name)
    check_free(store, run_id)
    endpoint = endpoint_for(judge_endpoint, rubric)
    items = store.items(source_id)
    perimeter = _perimeter(judge_name, endpoint, redaction, items)
    judge = build_judge(
        judge_name, endpoint, rubrics_dir, fail_after=fail_after, redactor=perimeter.judge_redactor()
    )
    with ExitStack() as held:
        try:
            for item in items:
                judge.rubric_for(item)  # a missing or broken rubric fails here, before the run exists
            manifest = plan_rerun(source, items, judge, endpoint, repeats, rubric, run_id, tags)
            manifest = dataclasses.replace(
                manifest, config=manifest.config.updated(redaction=perimeter.snapshot())
            )
            held.enter_context(store.lock_run(run_id))
            check_free(store, run_id)  # again: another process may have taken it meanwhile
            store.create_run(manifest, items)
        except BaseException:
            asyncio.run(judge.aclose())
            raise
        copy_answers(store, source_id, run_id)
        return _carry(store, manifest, judge, reporter)


def resume(
    store: Store,
    run_id: str,
    judge_name: str,
    judge_endpoint: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    reporter: Reporter | None = None,
    fail_after: int = FAIL_AFTER,
    redaction: RedactionSettings | None = None,
) -> RunOutcome:
    """Continue an interrupted rerun: copy the answers it still lacks, ask only the missing verdicts."""
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
        perimeter = _perimeter(judge_name, endpoint, redaction, store.items(run_id))
        judge = build_judge(
            judge_name, endpoint, rubrics_dir, mode=structured_mode(manifest), fail_after=fail_after,
            redactor=perimeter.judge_redactor(),
        )  # fmt: skip
        if isinstance(judge, LLMJudge) and judge.mode != structured_mode(manifest):
            record_mode(store, run_id, judge.mode)
        return _carry(store, manifest, judge, reporter)


def _perimeter(
    judge_name: str, endpoint: JudgeEndpoint, redaction: RedactionSettings | None, items: Sequence[Item]
) -> Perimeter:
    """A rerun's perimeter: the frozen answers call no model; the judge is checked and redacted as in a run."""
    perimeter = plan_perimeter(
        ("frozen answers", Endpoint(provider="offline")), (judge_name, endpoint), redaction
    )
    perimeter.check(items)
    return perimeter


def _carry(store: Store, manifest: RunManifest, judge: Judge, reporter: Reporter | None) -> RunOutcome:
    """Judge every missing verdict of a stored rerun, then export it (also when interrupted)."""
    if isinstance(judge, LLMJudge):
        judge.on_fallback = lambda mode: record_mode(store, manifest.run_id, mode)

    async def go() -> RunOutcome:
        try:
            return await execute(store, manifest, FrozenAnswers(), judge, reporter)
        finally:
            await judge.aclose()

    return carry(store, manifest.run_id, go)
