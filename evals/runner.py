"""Runs a suite: every item (and sample) answered by the model, then judged, all stored as it happens.

The run's pipeline: answers and judgments flow through two pools of workers sized by each endpoint's
``max_concurrency``, every call through the run's one ``evals.outbound.gateway.Gateway`` (refusal,
redaction, budget, audit, the endpoint's limit); an item is judged as soon as it is answered. Every result is committed when it arrives, so a run killed at any moment resumes with only the
missing work (``--resume``): a stored answer is never asked again, and a judgment whose cache key (the
judge's identity, rubric, question, reference, answer) is already in the store is reused, not paid twice.
What a run is before it runs (its spec, id and manifest, whether it may resume, its cost) lives in
``evals.plan``.

Before a run exists, every endpoint it uses is checked and its client built, so a bad config leaves no
run behind. One process at a time works a run (a lock under ``runs/<run_id>/``), or any number of
``evals worker`` processes, each on leased batches of its units (``evals.workers``, ``execute(only=...)``).
SIGTERM interrupts a run as Ctrl-C does (status ``interrupted``, results exported, ``KeyboardInterrupt``
raised), and an endpoint whose first calls all fail the same way stops it (``EndpointFailing``),
resumable once fixed.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from evals.config import Endpoint
from evals.errors import ConfigError, ProviderError
from evals.judge.batch import BatchJudging, Grade, drained, is_batch_judge
from evals.judge.grader_attacks import detect as grader_flags
from evals.judge.judging import Judge, build_judge
from evals.judge.panel import stored_labels
from evals.judge.reasoning import ReasoningMode, separate
from evals.outbound import audit, telemetry
from evals.outbound.budget import Budget
from evals.outbound.callcontext import calling
from evals.outbound.gateway import EndpointFailing, OverBudget
from evals.outbound.interrupts import run_until_terminated
from evals.outbound.sensitivity import Marking
from evals.plan import (
    MAX_SAMPLES,
    RunSpec,
    judge_fingerprint,
    lock_resumed,
    now,
    open_run,
    run_gateway,
    structured_mode,
)
from evals.records import Answer, Completion, CompletionRequest, Item, Judgment, RunManifest, is_truncated
from evals.results import ResultRow
from evals.store import Store
from evals.store.leases import Batch
from evals.store.redactions import save_redactions

T = TypeVar("T")
R = TypeVar("R")


class Reporter(Protocol):
    """Receives progress events; the CLI shows them as a progress bar."""

    def start(self, total: int, answered: int, judged: int) -> None: ...
    def answered(self, ok: bool) -> None: ...
    def judged(self, ok: bool) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


class Asker(Protocol):
    """What a run asks its questions of: a gateway ``Door`` to the model (a rerun's frozen answers ask none)."""

    name: str
    max_concurrency: int
    endpoint: Endpoint
    """Its ``max_answer_chars`` caps each answer before it is kept or sent on."""

    async def complete(self, request: CompletionRequest) -> Completion: ...


class SilentReporter:
    """A reporter that shows nothing (library use, tests)."""

    def start(self, total: int, answered: int, judged: int) -> None:
        pass

    def answered(self, ok: bool) -> None:
        pass

    def judged(self, ok: bool) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class RunOutcome:
    """What a finished (or interrupted) run did in this invocation."""

    manifest: RunManifest
    asked: int = 0
    """Model calls made now (resumed work excluded)."""
    judged: int = 0
    """Judge calls made now."""
    reused: int = 0
    """Judgments taken from the cache instead of the judge."""
    answer_errors: int = 0
    judge_errors: int = 0
    skipped: int = field(default=0)
    """Units already complete in the store before this invocation."""
    rows: list[ResultRow] = field(default_factory=list)
    """The run's results as exported (``Store.results``), read once at the end."""
    pending: bool = False
    """The run waits for a batch judge's batches (``--detach``): resume it to collect them."""


@dataclass(slots=True)
class _Unit:
    item: Item
    sample: int
    answer: str | None = None
    truncated: bool = False
    todo: list[tuple[int, int]] = field(default_factory=list)
    """The verdicts still wanted: (index of the judge in the run's panel, repeat)."""
    failed: bool = False
    """One of its verdicts ended in an error (the progress bar counts the unit once, when all are in)."""


def judge_repeats(manifest: RunManifest) -> int:
    """How many times each judge grades each answer (``--judge-repeats``; 1 unless set)."""
    return manifest.config.judging.repeats


def judging_fresh(manifest: RunManifest) -> bool:
    """True when no verdict of the run may come from the judgment cache (``evals judge rerun``)."""
    return manifest.config.judging.fresh


def _pending(
    store: Store,
    manifest: RunManifest,
    judges: Sequence[str] | None,
    outcome: RunOutcome,
    marking: Marking | None = None,
    inhouse: bool = False,
    only: Batch | None = None,
) -> tuple[list[_Unit], list[_Unit]]:
    """Split the run's work into what still needs an answer and what only needs verdicts.

    ``judges`` are the run's judges (``Judge.describe()``, in panel order); each answer wants a scored
    verdict from each of them for each repeat. None counts a verdict of any judge (what a dry run of a
    resume can tell without building the judges). ``inhouse``: the last of ``judges`` is the in-house
    judge (``restricted_judge``), the only one to grade restricted items. ``only``: just these units (a
    worker's leased batch, read with their answers and verdicts), not the whole run.
    """
    answers = only.answers if only is not None else store.answers(manifest.run_id)
    scored = {
        (j.item_id, j.sample, j.repeat, j.judge if judges is not None else None)
        for j in (only.verdicts if only is not None else store.verdicts(manifest.run_id))
        if j.error is None and j.score is not None
    }
    names: Sequence[str | None] = judges if judges is not None else [None]
    repeats = range(judge_repeats(manifest))
    slots = [(m, r) for m in range(len(names)) for r in repeats]
    kept = slots  # the slots of restricted items: the in-house judge's alone, when there is one
    if inhouse and judges is not None:
        slots, kept = slots[: -len(repeats)], slots[-len(repeats) :]
    to_answer: list[_Unit] = []
    to_judge: list[_Unit] = []
    frozen = manifest.config.rerun_of is not None  # evals.trust.rerun: the answers are copied, never asked
    for item in only.items if only is not None else store.items(manifest.run_id):
        item = marking.apply(item) if marking is not None else item
        own = kept if item.sensitivity == "restricted" else slots
        for sample in range(manifest.samples):
            if only is not None and (item.id, sample) not in only.keys:
                continue
            answer = answers.get((item.id, sample))
            if answer is None or answer.error is not None or answer.text is None:
                if not frozen:  # a rerun's answers are frozen: a failed one stays an error
                    to_answer.append(_Unit(item, sample, todo=list(own)))
                continue
            todo = [(m, r) for m, r in own if (item.id, sample, r, names[m]) not in scored]
            if not todo:
                outcome.skipped += 1
            else:
                to_judge.append(_Unit(item, sample, answer.text, answer.truncated, todo))
    return to_answer, to_judge


def remaining(store: Store, manifest: RunManifest) -> tuple[list[Item], list[tuple[Item, str, bool]]]:
    """What resuming a run would do: the items (one per sample) to answer, and (item, answer, truncated)
    once per verdict still wanted of the stored answers."""
    to_answer, to_judge = _pending(store, manifest, None, RunOutcome(manifest))
    return [u.item for u in to_answer], [
        (u.item, u.answer or "", u.truncated) for u in to_judge for _ in u.todo
    ]


def remaining_per_judge(
    store: Store, manifest: RunManifest, labels: Sequence[str]
) -> tuple[list[Item], list[list[tuple[Item, str, bool]]]]:
    """``remaining`` for a panel: the items to answer, and for each member (``labels``, in panel order)
    (item, answer, truncated) once per verdict of it still wanted."""
    to_answer, to_judge = _pending(store, manifest, labels, RunOutcome(manifest))
    per_judge: list[list[tuple[Item, str, bool]]] = [[] for _ in labels]
    for unit in to_judge:
        for m, _ in unit.todo:
            per_judge[m].append((unit.item, unit.answer or "", unit.truncated))
    return [u.item for u in to_answer], per_judge


async def execute(
    store: Store,
    manifest: RunManifest,
    model: Asker,
    judges: Judge | Sequence[Judge],
    reporter: Reporter | None = None,
    budget: Budget | None = None,
    marking: Marking | None = None,
    inhouse: Judge | None = None,
    detach: bool = False,
    only: Batch | None = None,
) -> RunOutcome:
    """Do every missing answer and verdict of a stored run, then mark it finished (``pending`` when a
    batch judge's batches are submitted and ``detach`` says not to wait for them: ``evals.judge.batch``).

    ``judges``: the run's judge, or the members of its panel; each grades every answer
    ``judge_repeats(manifest)`` times (restricted ones excepted when there is an ``inhouse`` judge: it
    alone grades them). With a ``budget``, no call starts that could cross its limit: the run then stops,
    interrupted, and ``BudgetExceeded`` says how to resume it. ``only``: just these units (an ``evals
    worker``'s batch), and the run's status is left to the worker.
    """
    panel = [judges] if not isinstance(judges, Sequence) else list(judges)
    panel += [inhouse] if inhouse is not None else []
    reporter = reporter or SilentReporter()
    outcome = RunOutcome(manifest)
    labels = [j.describe() for j in panel]
    to_answer, to_judge = _pending(store, manifest, labels, outcome, marking, inhouse is not None, only)
    total = outcome.skipped + len(to_answer) + len(to_judge)
    reporter.start(total, answered=outcome.skipped + len(to_judge), judged=outcome.skipped)
    if only is None:
        await _stored(store, store.set_status, manifest.run_id, "running")
    # One queue per judge of the panel, each worked by as many workers as that judge's endpoint allows.
    queues: list[asyncio.Queue[tuple[_Unit, int] | None]] = [asyncio.Queue() for _ in panel]

    def enqueue(unit: _Unit) -> None:
        for m, repeat in unit.todo:
            queues[m].put_nowait((unit, repeat))

    for unit in to_judge:
        enqueue(unit)
    inflight: dict[str, asyncio.Future[Judgment]] = {}
    seen_model_id = manifest.model_id is not None
    fresh = judging_fresh(manifest)

    async def answer_worker(units: Iterator[_Unit]) -> None:
        nonlocal seen_model_id
        for unit in units:  # one iterator shared by all workers: each unit is taken once
            with calling(manifest.run_id, unit.item.id, unit.sample, "model") as context:
                try:
                    answer = await _ask(model, manifest.run_id, unit, manifest.config.model.reasoning)
                except OverBudget:
                    return  # over budget: the unit stays unanswered, for a resume
            if context.redactions:
                await _stored(
                    store,
                    save_redactions,
                    store,
                    manifest.run_id,
                    unit.item.id,
                    unit.sample,
                    "model",
                    context.redactions,
                )
            answer = await _stored(store, _audited, store.keep_answer, answer)
            outcome.asked += 1
            if answer.error is None:
                if not seen_model_id and answer.model_id:
                    await _stored(store, store.set_model_id, manifest.run_id, answer.model_id)
                    seen_model_id = True
                unit.answer, unit.truncated = answer.text, answer.truncated
                enqueue(unit)
            else:
                outcome.answer_errors += 1
            reporter.answered(answer.error is None)

    async def judge_worker(judge: Judge, queue: asyncio.Queue[tuple[_Unit, int] | None]) -> None:
        try:
            if not is_batch_judge(judge):
                while (entry := await queue.get()) is not None:
                    await deliver(judge, *entry)
                return
            batches = BatchJudging(judge, store, manifest.run_id, detach=detach, say=reporter.note)
            work = await drained(queue)  # a batch judge's one worker takes its whole queue, then batches it
            outcome.pending |= await batches.grade_all(work, lambda u, r, g: deliver(judge, u, r, g), fresh)
        except OverBudget:
            return

    async def deliver(judge: Judge, unit: _Unit, repeat: int, grade: Grade | None = None) -> None:
        use_cache = repeat == 0 and not fresh  # a repeat is a fresh asking: only a first verdict is reused
        judgment = await _judge_once(
            store, judge, manifest.run_id, unit, inflight, outcome, repeat, use_cache, grade
        )
        telemetry.evaluated(unit.item, judgment, judge.rubric_for(unit.item).name)  # with telemetry: only
        if judgment.error is not None:
            outcome.judge_errors += 1
            unit.failed = True
        unit.todo.remove((panel.index(judge), repeat))
        if not unit.todo:
            reporter.judged(not unit.failed)

    units = iter(to_answer)
    answerers = [
        asyncio.create_task(answer_worker(units)) for _ in range(min(model.max_concurrency, len(to_answer)))
    ]
    # Never more workers than there is work: a max_concurrency of millions must not mean millions of tasks.
    judge_work = max(1, len(to_answer) + len(to_judge)) * judge_repeats(manifest)
    workers = {
        m: [
            asyncio.create_task(judge_worker(j, queues[m]))
            for _ in range(1 if is_batch_judge(j) else min(j.max_concurrency, judge_work))
        ]
        for m, j in enumerate(panel)
    }
    judge_tasks = [task for tasks in workers.values() for task in tasks]

    async def answer_all() -> None:
        await asyncio.gather(*answerers)
        for m, tasks in workers.items():
            for _ in tasks:
                queues[m].put_nowait(None)

    feeder = asyncio.create_task(answer_all())
    try:
        # One gather over both pools: a judge that stops the run stops the answering too.
        await asyncio.gather(feeder, *judge_tasks)
        if budget is not None and budget.stopped:
            raise budget.exceeded(manifest.run_id)
    except BaseException:
        for task in (feeder, *answerers, *judge_tasks):
            task.cancel()
        if only is None:
            store.set_status(manifest.run_id, "interrupted")
        raise
    finally:
        reporter.stop()
    if only is None:
        status, ended = ("pending", None) if outcome.pending else ("finished", now())
        await _stored(store, store.set_status, manifest.run_id, status, ended)
        outcome.manifest = await _stored(store, store.run, manifest.run_id)
    return outcome


async def _stored(store: Store, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, a store call: in place on an inline store, else in a thread (``Store.inline``)."""
    if store.inline:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def _audited(save: Callable[[T], R], result: T) -> R:
    """Store a result once the audit records of the calls made so far are stored (in a thread): a process
    killed at any moment leaves no answer or verdict whose call is not on its chain."""
    audit.flush()
    return save(result)


async def _ask(model: Asker, run_id: str, unit: _Unit, reasoning: ReasoningMode = "separate") -> Answer:
    request = CompletionRequest(
        messages=tuple(m.model_dump() for m in unit.item.prompt()), sensitivity=unit.item.sensitivity
    )
    try:
        completion = await model.complete(request)
    except ProviderError as exc:
        return Answer(run_id, unit.item.id, unit.sample, None, error=str(exc))
    split = separate(completion, reasoning, model.endpoint.answer_cap)  # capped before it is kept or sent on
    return Answer(
        run_id,
        unit.item.id,
        unit.sample,
        split.answer,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        latency_ms=completion.latency_ms,
        finished_at=time.time(),
        model_id=completion.model_id,
        finish_reason=completion.finish_reason,
        truncated=is_truncated(completion.finish_reason) or split.cut,  # the judge is told either way
        reasoning=split.reasoning,
        flags=grader_flags(split.answer),  # where the answer addresses the grader; length comes with text
    )


async def _judge_once(
    store: Store,
    judge: Judge,
    run_id: str,
    unit: _Unit,
    inflight: dict[str, asyncio.Future[Judgment]],
    outcome: RunOutcome,
    repeat: int = 0,
    use_cache: bool = True,
    grade: Grade | None = None,
) -> Judgment:
    """Judge one answer (the ``repeat``-th asking of this judge), reusing a stored or in-flight judgment
    with the same cache key when ``use_cache``; without it the judge is always asked (``grade``: how, when
    not ``judge.grade``: a batch judge's reply)."""
    answer = unit.answer or ""
    key = judge.cache_key(unit.item, answer, unit.truncated)
    # Provenance taken with the key: a judge stepping down its output mode mid-call changes neither.
    rubric_hash, fingerprint = judge.rubric_for(unit.item).hash, judge_fingerprint(judge)
    loop = asyncio.get_running_loop()

    def reuse(earlier: Judgment) -> Judgment:
        return Judgment(
            run_id, unit.item.id, unit.sample, earlier.score, earlier.rationale, earlier.raw, judge.describe(),
            key, cached=True, rubric_hash=rubric_hash, judge_fingerprint=fingerprint, model_id=earlier.model_id,
        )  # fmt: skip

    # The first worker with a key registers it before its first await, so a second one with the same key
    # waits for that verdict instead of racing it to the store and the judge.
    owned: asyncio.Future[Judgment] | None = None
    earlier: Judgment | None = None
    if not use_cache:
        pass
    elif key in inflight:
        earlier = await asyncio.shield(inflight[key])
        earlier = earlier if earlier is not None and earlier.error is None else None
    else:
        owned = inflight[key] = loop.create_future()
    try:
        if owned is not None:
            # Store calls go through a thread: a network store (PostgreSQL) must not stall the event loop.
            earlier = await _stored(store, store.cached_judgment, key, run_id)
        if earlier is not None:
            judgment = reuse(earlier)  # only ever for repeat 0
            await _stored(store, store.save_judgment, judgment)
            outcome.reused += 1
        else:
            with calling(run_id, unit.item.id, unit.sample, "judge") as context:
                verdict = await (grade or partial(judge.grade, unit.item, answer, truncated=unit.truncated))()
            if context.redactions:
                await _stored(
                    store,
                    save_redactions,
                    store,
                    run_id,
                    unit.item.id,
                    unit.sample,
                    "judge",
                    context.redactions,
                )
            judgment = Judgment(
                run_id, unit.item.id, unit.sample, verdict.score, verdict.rationale, verdict.raw,
                judge.describe(), key, cached=False, tokens_in=verdict.tokens_in,
                tokens_out=verdict.tokens_out, latency_ms=verdict.latency_ms, error=verdict.error,
                rubric_hash=rubric_hash, judge_fingerprint=fingerprint, model_id=verdict.model_id, repeat=repeat,
                batch_id=verdict.batch_id,
            )  # fmt: skip
            await _stored(store, _audited, store.save_judgment, judgment)
            outcome.judged += 1
        if owned is not None:
            owned.set_result(judgment)
        return judgment
    except BaseException as exc:
        if owned is not None:
            owned.set_exception(exc)
            owned.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
        raise
    finally:
        if owned is not None:
            inflight.pop(key, None)


def run_suite(store: Store, spec: RunSpec, reporter: Reporter | None = None) -> RunOutcome:
    """Start (or, with ``spec.resume``, continue) a run and carry it to the end; the library's entry point.

    Every call goes out through one ``Gateway`` (refusal, redaction, budget, audit). Restricted items bound
    for an external endpoint are refused before the run exists. Raises ``KeyboardInterrupt`` on Ctrl-C or
    SIGTERM and ``EndpointFailing`` on an endpoint whose first calls all failed alike, in both cases with
    the run marked ``interrupted`` and its results exported. ``spec.plan_only``: the run is created, and
    nothing is asked (its ``evals worker`` processes do the work).
    """
    if not 1 <= spec.samples <= MAX_SAMPLES:
        raise ConfigError(f"samples must be from 1 to {MAX_SAMPLES}, not {spec.samples}")
    if not 1 <= spec.judge_repeats <= MAX_SAMPLES:
        raise ConfigError(f"judge repeats must be from 1 to {MAX_SAMPLES}, not {spec.judge_repeats}")
    budget = Budget.of(spec.max_cost, spec.endpoints()) if spec.max_cost is not None else None
    with ExitStack() as held:  # the run's lock, held until it ends
        manifest = lock_resumed(store, spec, held) if spec.resume is not None else None
        if manifest is not None:
            done = RunOutcome(manifest)
            # A panel's run is done when every member scored every answer; one judge's, when any did.
            labels = stored_labels(spec.judge_name, spec.judge, spec.rubrics) if spec.judge.panel else None
            if _pending(store, manifest, labels, done) == ([], []):
                return _finished(store, spec, manifest, done)
        opened = open_run(store, spec, held, manifest, budget)
        if spec.plan_only:
            asyncio.run(opened.gateway.aclose())
            return RunOutcome(opened.manifest)
        started, judges = opened.manifest, opened.judges

        async def go() -> RunOutcome:
            try:
                outcome = await execute(
                    store,
                    started,
                    opened.model,
                    judges,
                    reporter,
                    budget,
                    opened.marking,
                    opened.inhouse,
                    spec.detach,
                )
                if spec.observer is not None and not outcome.pending:
                    await spec.observer.observe(
                        store, outcome.manifest, judges[0]
                    )  # the judge's drift canary
                return outcome
            finally:
                await opened.gateway.aclose()

        return carry(store, started.run_id, go)


def _finished(store: Store, spec: RunSpec, manifest: RunManifest, done: RunOutcome) -> RunOutcome:
    """A resumed run with nothing left: no client, no SDK import, no event loop (but for an observation
    it still owes); only marked finished and its results exported."""
    if manifest.status != "finished":
        store.set_status(manifest.run_id, "finished", now())
    done.rows = list(store.results(manifest.run_id))
    if not (store.reports_dir / "runs" / manifest.run_id / "results.jsonl").exists():
        store.export_jsonl(manifest.run_id, done.rows)
    observer = spec.observer
    if observer is not None and observer.missed(store, manifest, spec.judge):
        gateway = run_gateway(spec, manifest, None)
        judge = build_judge(
            spec.judge_name, spec.judge, spec.rubrics, gateway, mode=structured_mode(manifest)
        )

        async def go() -> None:
            try:
                await observer.observe(store, manifest, judge)
            finally:
                await gateway.aclose()

        with audit.recording(store, chains=(manifest.run_id,)):  # on the run's chain, as in the run
            asyncio.run(go())
    done.manifest = store.run(manifest.run_id)
    return done


def carry(store: Store, run_id: str, go: Callable[[], Awaitable[RunOutcome]]) -> RunOutcome:
    """Run ``go`` (a stored run's work) until it ends or is stopped, every outbound call on the run's audit
    chain; then export its results and keep its aggregates, also when interrupted, so what was done is
    readable (the rows are read once)."""
    rows: list[ResultRow] = []
    # What lives now (modules, SDK clients, the suite) outlives the calls: frozen while they go, the collector
    # stops walking it again at every full collection (evals docs benchmarks: "A lean process"); thawed after, so
    # that a process running many runs still collects what they leave behind.
    gc.freeze()
    try:
        with audit.recording(store, chains=(run_id,)):  # every call recorded; sealed at the end
            outcome = run_until_terminated(go)
    except EndpointFailing as exc:
        raise EndpointFailing(
            f"{exc} What was done is stored; fix it and continue with: evals run --resume {run_id}"
        ) from None
    finally:
        gc.unfreeze()
        rows = list(store.results(run_id))
        store.export_jsonl(run_id, rows)
        store.save_aggregates(run_id, rows)  # kept once it ended: history and index read them
    outcome.rows = rows
    return outcome
