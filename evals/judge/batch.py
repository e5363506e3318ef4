"""Batch judging (``judging: batch``): the verdicts a run owes one judge, asked through its vendor's batch API.

The runner hands over every verdict one judge still owes once the run's answers are in (``Ask``), with a
``deliver`` callback that stores each verdict as an online one is stored (the judgment cache, the call
context, the redaction counts). What the judgment cache already holds is settled before a batch is built.
Then, in order:

1. the run's open batches for this judge (submitted before a restart, a kill or ``--detach``) are taken up
   again, never submitted twice (``evals.store.batches``);
2. the rest is prepared through the gateway's batch side (``evals.outbound.batch``: refusal, redaction,
   budget at ``batch_discount``, an audit record per request) and uploaded in chunks within the vendor's
   limits; each batch is stored the moment the vendor accepted it;
3. with ``--detach`` the run stops there, pending, once the batches that already ended are collected;
4. open batches are checked with exponential backoff (``batch_poll_s``, doubling up to ``POLL_MAX_S``),
   a progress line at each check;
5. an ended batch's results are mapped back by custom id and parsed as online replies are (an
   unparseable one is asked once more, online); what the batch did not answer (expired, errored,
   canceled, missing, a failed batch, a batch the vendor no longer knows) goes through the online path;
6. the batch is closed once every verdict it owed is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeGuard, TypeVar

from evals.judge.judging import LLMJudge
from evals.outbound import batch as batches
from evals.outbound.budget import OverBudget
from evals.outbound.callcontext import calling
from evals.outbound.gateway import CallError, each
from evals.outbound.redaction import record_redactions
from evals.records import Completion, Item, Verdict
from evals.store import Store
from evals.store.batches import (
    StoredBatch,
    StoredRequest,
    batch_requests,
    close_batch,
    open_batches,
    save_batch,
)

log = logging.getLogger("evals.judge.batch")

POLL_MAX_S = 600.0
"""The longest wait between two checks of a batch (a judge's ``batch_poll_s`` when that is longer)."""

Grade = Callable[[], Awaitable[Verdict]]
"""Asks for one verdict (called by ``deliver`` inside the verdict's call context)."""
U = TypeVar("U", bound="Unit")
T = TypeVar("T")


@dataclass(frozen=True)
class Ask:
    """One verdict a run wants of a batch judge."""

    item: Item
    sample: int
    repeat: int
    answer: str
    truncated: bool
    custom_id: str
    """Stable for (run, judge, item, sample, repeat): a batch's request maps back to it (``custom_id``)."""


def custom_id(run_id: str, judge: str, item_id: str, sample: int, repeat: int) -> str:
    """The batch request id of a verdict: the same for the same (run, judge label, item, sample, repeat),
    within both vendors' rules (Anthropic: 1-64 of ``[a-zA-Z0-9_-]``)."""
    key = json.dumps([run_id, judge, item_id, sample, repeat], ensure_ascii=False)
    return "v-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def is_batch_judge(judge: object) -> TypeGuard[LLMJudge]:
    """True for a judge whose verdicts a run asks in batches (an ``LLMJudge`` with ``judging: batch``)."""
    return isinstance(judge, LLMJudge) and judge.endpoint.judging == "batch"


async def drained(queue: asyncio.Queue[T | None]) -> list[T]:
    """Everything put on ``queue`` until its end (``None``): a batch judge waits for the run's answers."""
    work: list[T] = []
    while (entry := await queue.get()) is not None:
        work.append(entry)
    return work


class Unit(Protocol):
    """An answer the runner holds, waiting for its verdicts (``evals.runner``'s)."""

    item: Item
    sample: int
    answer: str | None
    truncated: bool


Deliver = Callable[[U, int, Grade | None], Awaitable[None]]
"""Stores the ``repeat``-th verdict of a unit, asked with ``grade`` (None: as an online judge asks it, the
judgment cache first)."""


class BatchJudging:
    """The batches of one run's one judge: submitted, waited for, collected, what they missed asked online."""

    def __init__(
        self,
        judge: LLMJudge,
        store: Store,
        run_id: str,
        *,
        detach: bool = False,
        say: Callable[[str], None] | None = None,
    ):
        self.judge = judge
        self.door = judge.door
        self.store = store
        self.run_id = run_id
        self.detach = detach
        self.say = say or (lambda text: None)
        self.label = judge.describe()
        self.submitted = 0
        """Batches submitted in this invocation."""

    async def grade_all(
        self, work: Sequence[tuple[U, int]], deliver: Deliver[U], fresh: bool = False
    ) -> bool:
        """Every verdict of ``work`` ((unit, repeat), as the runner's queue holds them) delivered: what the
        judgment cache holds (and a second copy of an answer in this run) once the batches are in, the rest
        through them. True when the run is left pending (``detach``). ``fresh``: no verdict from the cache."""
        asks: dict[str, tuple[U, int]] = {}
        later: list[tuple[U, int]] = []
        seen: set[str] = set()
        for unit, repeat in work:
            answer = unit.answer or ""
            if repeat == 0 and not fresh:  # only a first verdict may come from the cache (as online)
                key = self.judge.cache_key(unit.item, answer, unit.truncated)
                if key in seen or await asyncio.to_thread(self._cached, key):
                    later.append((unit, repeat))
                    continue
                seen.add(key)
            cid = custom_id(self.run_id, self.label, unit.item.id, unit.sample, repeat)
            asks[cid] = (unit, repeat)
        wanted = [
            Ask(unit.item, unit.sample, repeat, unit.answer or "", unit.truncated, cid)
            for cid, (unit, repeat) in asks.items()
        ]

        async def through(ask: Ask, grade: Grade) -> None:
            await deliver(*asks[ask.custom_id], grade)

        pending = await self.run(wanted, through)
        if not pending:  # the cache now holds what the batches answered for the second copies
            await each(later, lambda w: deliver(w[0], w[1], None), self.judge.max_concurrency)
        return pending

    def _cached(self, key: str) -> bool:
        return self.store.cached_judgment(key, self.run_id) is not None

    async def run(self, asks: Sequence[Ask], deliver: Callable[[Ask, Grade], Awaitable[None]]) -> bool:
        """Get every verdict of ``asks`` delivered (see the module's docstring); True when the run is left
        pending (``detach``: some batch has not ended yet)."""
        wanted = {a.custom_id: a for a in asks}
        opened: list[tuple[StoredBatch, list[batches.Prepared]]] = []
        online: list[Ask] = []
        for stored in await asyncio.to_thread(open_batches, self.store, self.run_id, self.label):
            requests = await asyncio.to_thread(batch_requests, self.store, stored.batch_id)
            prepared, changed = self._prepare_again(requests, wanted)
            online += changed
            opened.append((stored, prepared))
        taken = {r.custom_id for _, prepared in opened for r in prepared} | {a.custom_id for a in online}
        fresh = [a for a in asks if a.custom_id not in taken]
        if opened:
            self.say(f"judge {self.judge.name}: {len(opened)} batch(es) submitted earlier; collecting them")
        opened += await self._submit(fresh, online)
        if online:
            await self._deliver_online(online, deliver)
        return await self._wait(opened, wanted, deliver)

    # -- submitting ---------------------------------------------------------------------------------------

    def _prepare_again(
        self, requests: Sequence[StoredRequest], wanted: dict[str, Ask]
    ) -> tuple[list[batches.Prepared], list[Ask]]:
        """A stored batch's requests still owed a verdict, prepared again to read their replies; those whose
        line is no longer the one submitted (the redactor changed) cannot be paired, and go online."""
        prepared, changed = [], []
        for request in requests:
            ask = wanted.get(request.custom_id)
            if ask is None:
                continue  # its verdict is stored already
            one = self._prepare(ask, again=True)
            if one.sha256 == request.sha256:
                prepared.append(one)
            else:
                changed.append(ask)
        return prepared, changed

    def _prepare(self, ask: Ask, again: bool = False) -> batches.Prepared:
        request = self.judge.request(ask.item, ask.answer, truncated=ask.truncated)
        with calling(self.run_id, ask.item.id, ask.sample, "judge"):
            return batches.prepare(self.door, ask.custom_id, request, again=again)

    async def _submit(
        self, fresh: Sequence[Ask], online: list[Ask]
    ) -> list[tuple[StoredBatch, list[batches.Prepared]]]:
        """Prepare and upload ``fresh`` in chunks; each batch stored once accepted. A chunk whose upload
        failed goes to ``online``; asks beyond the budget stay unasked (the run stops, resumable)."""
        prepared: list[batches.Prepared] = []
        for ask in fresh:
            try:
                prepared.append(self._prepare(ask))
            except OverBudget:
                break
        by_id = {a.custom_id: a for a in fresh}
        opened = []
        limits = batches.batching(self.door).batch_limits
        for chunk in batches.chunks(prepared, limits):
            try:
                with calling(self.run_id, role="judge"):  # the upload is on the run's audit chain
                    batch_id = await batches.submit(self.door, chunk)
            except CallError as exc:
                log.warning(
                    "judge %r: a batch of %d could not be submitted (%s); asking them online",
                    self.judge.name, len(chunk), exc.reason,
                )  # fmt: skip
                online += [by_id[p.custom_id] for p in chunk]
                continue
            stored = StoredBatch(
                batch_id, self.run_id, self.label, self.judge.name, batches.batching(self.door).vendor,
                len(chunk), _now(),
            )  # fmt: skip
            requests = [_request(stored, p, by_id[p.custom_id]) for p in chunk]
            await asyncio.to_thread(save_batch, self.store, stored, requests)
            self.submitted += 1
            opened.append((stored, chunk))
            self.say(f"judge {self.judge.name}: batch {batch_id} submitted ({len(chunk)} verdicts)")
        return opened

    # -- waiting and collecting ---------------------------------------------------------------------------

    async def _wait(
        self,
        opened: list[tuple[StoredBatch, list[batches.Prepared]]],
        wanted: dict[str, Ask],
        deliver: Callable[[Ask, Grade], Awaitable[None]],
    ) -> bool:
        pause = self.judge.endpoint.batch_poll_s
        longest = max(POLL_MAX_S, pause)
        while opened:
            still: list[tuple[StoredBatch, list[batches.Prepared]]] = []
            done = total = 0
            for stored, prepared in opened:
                try:
                    state = await batches.state(self.door, stored.batch_id)
                except CallError as exc:
                    if exc.transient:  # the vendor could not be asked now: ask again later
                        log.warning("judge %r: batch %s: %s", self.judge.name, stored.batch_id, exc.reason)
                        still.append((stored, prepared))
                        continue
                    await self._lost(stored, prepared, wanted, deliver, exc.reason)
                    continue
                if state.ended:
                    await self._collect(stored, prepared, wanted, deliver, state.failed)
                else:
                    still.append((stored, prepared))
                    done, total = done + state.done, total + (state.total or stored.requests)
            opened = still
            if not opened:
                break
            if self.detach:
                return True
            self.say(
                f"judge {self.judge.name}: {len(opened)} batch(es) in progress ({done}/{total} verdicts done "
                f"as the vendor counts); next check in {pause:.0f} s"
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
        return False

    async def _collect(
        self,
        stored: StoredBatch,
        prepared: list[batches.Prepared],
        wanted: dict[str, Ask],
        deliver: Callable[[Ask, Grade], Awaitable[None]],
        failed: str | None,
    ) -> None:
        """Deliver an ended batch's verdicts (what it did not answer, online), then close it."""
        try:
            found = await batches.collect(self.door, stored.batch_id, prepared)
        except CallError as exc:  # the results cannot be read: every verdict is asked online
            found = {p.custom_id: f"results not readable ({exc.reason})" for p in prepared}
        counts = Counter("answered" if isinstance(v, Completion) else _kind(v) for v in found.values())
        outcome = ", ".join(f"{n} {what}" for what, n in counts.most_common()) or "nothing owed"
        if failed is not None:
            outcome = f"{failed}; {outcome}"
        missed = len(found) - counts["answered"]
        if missed:
            log.warning(
                "judge %r: batch %s ended: %s; asking the %d unanswered online",
                self.judge.name, stored.batch_id, outcome, missed,
            )  # fmt: skip
        else:
            self.say(f"judge {self.judge.name}: batch {stored.batch_id} ended: {outcome}")
        jobs = [(wanted[p.custom_id], p, found[p.custom_id]) for p in prepared]

        async def one(job: tuple[Ask, batches.Prepared, Completion | str]) -> None:
            ask, p, reply = job
            await deliver(ask, self._grader(ask, p, reply, stored.batch_id))

        await each(jobs, one, self.judge.max_concurrency)
        await asyncio.to_thread(close_batch, self.store, stored.batch_id, _now(), outcome)

    async def _lost(
        self,
        stored: StoredBatch,
        prepared: list[batches.Prepared],
        wanted: dict[str, Ask],
        deliver: Callable[[Ask, Grade], Awaitable[None]],
        reason: str,
    ) -> None:
        """A batch the vendor refuses to describe (404: another account or endpoint): asked online."""
        log.warning(
            "judge %r: batch %s cannot be read (%s); asking its %d verdicts online",
            self.judge.name, stored.batch_id, reason, len(prepared),
        )  # fmt: skip
        await self._deliver_online([wanted[p.custom_id] for p in prepared], deliver)
        await asyncio.to_thread(close_batch, self.store, stored.batch_id, _now(), f"lost ({reason})")

    def _grader(self, ask: Ask, prepared: batches.Prepared, reply: Completion | str, batch_id: str) -> Grade:
        judge = self.judge

        async def grade() -> Verdict:
            if prepared.redacted is not None:  # what the request's redaction replaced, kept with the verdict
                record_redactions(prepared.redacted.counts)
            if isinstance(reply, str):
                return await judge.grade(ask.item, ask.answer, truncated=ask.truncated)
            return await judge.grade_reply(ask.item, ask.answer, reply, batch_id, truncated=ask.truncated)

        return grade

    async def _deliver_online(
        self, asks: Sequence[Ask], deliver: Callable[[Ask, Grade], Awaitable[None]]
    ) -> None:
        judge = self.judge

        async def one(ask: Ask) -> None:
            async def grade() -> Verdict:
                return await judge.grade(ask.item, ask.answer, truncated=ask.truncated)

            await deliver(ask, grade)

        await each(asks, one, judge.max_concurrency)


def _kind(problem: str) -> str:
    """A problem's first word, to count alike ones (``expired``, ``errored``, ``batch_expired``...)."""
    return problem.split(" ", 1)[0] or "failed"


def _request(stored: StoredBatch, prepared: batches.Prepared, ask: Ask) -> StoredRequest:
    return StoredRequest(
        stored.batch_id,
        prepared.custom_id,
        stored.run_id,
        ask.item.id,
        ask.sample,
        ask.repeat,
        prepared.sha256,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
