"""Limits on the calls to an endpoint besides its ``max_concurrency`` semaphore: the process's own, or held
by every ``evals worker`` of a run together in the store.

``Limits`` (every gateway's, unless given another): an endpoint's ``requests_per_minute`` and
``tokens_per_minute`` as token buckets in this process. A bucket holds one second's allowance (at least one
call) and refills continuously, so over any minute at most the limit plus one second's worth start; a call
dearer than the bucket (tokens) waits for a full bucket and takes it below zero, so the rate holds on
average too. Tokens are counted before the call as the prompt's estimate (``evals.outbound.budget``) plus
``max_tokens``, then corrected by the usage the server reports.

``FleetLimits`` (``evals worker`` on PostgreSQL): the same buckets kept in the store, and the endpoint's
``max_concurrency`` as slots leased from it (``evals.store.leases``), held by a worker while its calls use
them and renewed by its heartbeat, so a dead worker's slots come back when their lease runs out. A
worker's ending call hands its slot to the worker's next call (one waiting, or one starting within
``LINGER``) without a trip to the store; the slots it lacks are taken for all its waiting calls in one
statement, polling with jitter while every slot is held; a slot idle for ``LINGER`` goes back.
``FleetBudget``: ``--max-cost`` over every worker of the run, each call's bound counted as spent before
it starts and replaced by its cost when it returns (a worker that dies mid-call leaves its bound counted:
the provider may well bill it).

An endpoint is known in the store by its provider, URL (without credentials) and model: runs and configs
that name one server differently still share its limits.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evals.config import Endpoint
from evals.outbound.budget import Budget, BudgetExceeded, estimate_tokens, prompt_text
from evals.records import Completion, CompletionRequest
from evals.secrets import safe_url
from evals.store import leases
from evals.store.leases import Db

T = TypeVar("T")
log = logging.getLogger("evals.outbound.fleet")
BURST_SECONDS = 1.0
"""A bucket holds this many seconds of its allowance."""
POLL = (0.01, 0.25)
"""Shortest and longest wait between two tries for a fleet slot (doubling, with jitter)."""
LINGER = 0.2
"""Seconds a worker keeps a fleet slot none of its calls uses before giving it back: long enough for its
next call to start (its answer stored, the next item taken), short enough for the other workers."""


def endpoint_key(endpoint: Endpoint) -> str:
    """How the store knows an endpoint: provider, URL without credentials, model."""
    return f"{endpoint.provider} {safe_url(endpoint.base_url) or 'default'} {endpoint.model or ''}".strip()


def call_tokens(endpoint: Endpoint, request: CompletionRequest) -> int:
    """A call's tokens before it is made: the prompt's estimate and ``max_tokens``."""
    return estimate_tokens(prompt_text(request.messages)) + endpoint.max_tokens


@dataclass
class Usage:
    """Filled by the caller inside ``Limits.call`` once the reply is in."""

    completion: Completion | None = None

    def tokens(self) -> int | None:
        c = self.completion
        if c is None or (c.tokens_in is None and c.tokens_out is None):
            return None
        return (c.tokens_in or 0) + (c.tokens_out or 0)


@dataclass
class _Bucket:
    rate: float
    """Refill per second."""
    cap: float
    level: float
    at: float = field(default_factory=time.monotonic)

    def take(self, cost: float) -> float:
        """0.0 when ``cost`` was taken; else the seconds to wait before trying again."""
        now = time.monotonic()
        self.level, self.at = min(self.cap, self.level + (now - self.at) * self.rate), now
        need = min(cost, self.cap)
        if self.level >= need:
            self.level -= cost
            return 0.0
        return (need - self.level) / self.rate


def bucket_shape(per_minute: float) -> tuple[float, float]:
    """(refill per second, capacity) of a per-minute limit."""
    rate = per_minute / 60.0
    return rate, max(1.0, rate * BURST_SECONDS)


class Limits:
    """An endpoint's ``requests_per_minute`` and ``tokens_per_minute``, held in this process."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    @asynccontextmanager
    async def call(self, endpoint: Endpoint, request: CompletionRequest) -> AsyncIterator[Usage]:
        """Wait until a call to ``endpoint`` may start; inside the block it is in flight (set the reply on
        the ``Usage`` yielded, so its tokens are counted)."""
        usage = Usage()
        key, estimate = endpoint_key(endpoint), call_tokens(endpoint, request)
        if endpoint.requests_per_minute:
            await self.take(f"{key} rpm", 1, endpoint.requests_per_minute)
        if endpoint.tokens_per_minute:
            await self.take(f"{key} tpm", estimate, endpoint.tokens_per_minute)
        try:
            yield usage
        finally:
            used = usage.tokens()
            if endpoint.tokens_per_minute and used is not None:
                await self.give(f"{key} tpm", estimate - used)

    async def take(self, name: str, cost: float, per_minute: float) -> None:
        """Wait until bucket ``name`` has ``cost`` for a call."""
        rate, cap = bucket_shape(per_minute)
        bucket = self._buckets.setdefault(name, _Bucket(rate, cap, cap))
        while (wait := bucket.take(cost)) > 0:
            await asyncio.sleep(wait)

    async def give(self, name: str, amount: float) -> None:
        """Correct bucket ``name`` by ``amount`` (what was estimated beyond the call's real usage)."""
        bucket = self._buckets.get(name)
        if bucket is not None:
            bucket.level += amount

    async def renew(self) -> None:
        """Keep what this process holds (nothing, here)."""

    def close(self) -> None:
        """Give back what this process holds (nothing, here)."""


@dataclass
class _Pool:
    """The fleet slots of one endpoint (and ``max_concurrency``) as this worker holds them."""

    idle: list[tuple[int, float]] = field(default_factory=list)
    """Held, no call of this worker in flight on them: (slot, since when, ``time.monotonic``)."""
    waiters: deque[asyncio.Future[int]] = field(default_factory=deque)
    """This worker's calls waiting for a slot, first come first served."""
    taker: asyncio.Task[None] | None = None
    """Asks the store for slots while calls wait (one statement for all of them); one at a time."""
    sweep: asyncio.TimerHandle | None = None
    """Gives back slots idle for ``LINGER``."""


class FleetLimits(Limits):
    """Every limit held across all the workers of a PostgreSQL store: slots and buckets in the store.

    ``db``: a connection of its own (``PostgresBackend.twin``), used from one thread; ``holder``: this
    worker's id; ``seconds``: how long a slot stays held without renewal (the worker's lease); ``linger``:
    how long a slot no call of this worker uses stays held (``LINGER``) before it goes back to the store.

    A worker keeps the slots it took from the store while its calls use them: a call ending hands its slot
    to this worker's next call (one waiting, or one starting within ``linger``), so a worker sending calls
    without pause goes to the store only for the slots it lacks, every waiting call's in one statement.
    Every call in flight holds one slot in the store, so the fleet never has more in flight than
    ``max_concurrency``; a slot is held by one worker at a time and renewed by its heartbeat (``renew``).
    """

    def __init__(self, db: Db, holder: str, seconds: float, linger: float = LINGER):
        super().__init__()
        self.db = db
        self.holder = holder
        self.seconds = seconds
        self.linger = linger
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evals-fleet")
        self._pools: dict[tuple[str, int], _Pool] = {}
        self._slotted: set[tuple[str, int]] = set()
        self._giving: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, self.db, *args)

    @asynccontextmanager
    async def call(self, endpoint: Endpoint, request: CompletionRequest) -> AsyncIterator[Usage]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # what an earlier event loop held is not this one's to hand over
            self._forget()
            self._loop = loop
        at = (endpoint_key(endpoint), endpoint.max_concurrency)
        pool = self._pools.setdefault(at, _Pool())
        slot = await self._slot(at, pool)
        try:
            async with super().call(endpoint, request) as usage:
                yield usage
        finally:
            self._put(at, pool, slot)

    async def _slot_rows(self, at: tuple[str, int]) -> None:
        """Make sure the endpoint's slot rows are in the store (once per endpoint and limit)."""
        if at not in self._slotted:
            await self._db(leases.add_slots, *at)
            self._slotted.add(at)

    async def _slot(self, at: tuple[str, int], pool: _Pool) -> int:
        """A slot: one this worker holds idle, else one handed over by its ending call or taken from the store."""
        if pool.idle:
            return pool.idle.pop()[0]  # the latest idle: the oldest ones age out and go back
        handed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pool.waiters.append(handed)
        if pool.taker is None:
            pool.taker = asyncio.create_task(self._take(at, pool))
        try:
            return await handed
        except BaseException:
            if handed.done() and not handed.cancelled() and handed.exception() is None:
                self._put(at, pool, handed.result())  # handed over as the call was cancelled
            elif handed in pool.waiters:
                pool.waiters.remove(handed)
            raise

    async def _take(self, at: tuple[str, int], pool: _Pool) -> None:
        """While calls wait, take slots from the store for all of them in one statement, polling with
        jitter while every slot is held."""
        pause = POLL[0]
        try:
            await self._slot_rows(at)
            while waiting := sum(1 for w in pool.waiters if not w.done()):
                slots = await self._db(leases.take_slots, *at, self.holder, self.seconds, waiting)
                for slot in slots:
                    self._put(at, pool, slot)
                if slots:
                    pause = POLL[0]
                    continue
                await asyncio.sleep(random.uniform(pause / 2, pause))
                pause = min(POLL[1], pause * 2)
        except Exception as exc:  # the waiting calls fail as the store did
            for waiter in pool.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # retrieved: its call raises it
            pool.waiters.clear()
        except BaseException:
            for waiter in pool.waiters:
                waiter.cancel()
            pool.waiters.clear()
            raise
        finally:
            pool.taker = None

    def _put(self, at: tuple[str, int], pool: _Pool, slot: int) -> None:
        """A slot this worker holds and no call uses: to the first waiting call, else idle for ``linger``."""
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        pool.idle.append((slot, time.monotonic()))
        if pool.sweep is None:
            pool.sweep = asyncio.get_running_loop().call_later(self.linger, self._sweep, at, pool)

    def _sweep(self, at: tuple[str, int], pool: _Pool) -> None:
        """Give back, in one statement, the slots idle for ``linger``; look again later for the others."""
        pool.sweep = None
        cutoff = time.monotonic() - self.linger
        stale = [slot for slot, since in pool.idle if since <= cutoff]
        pool.idle = [(slot, since) for slot, since in pool.idle if since > cutoff]
        if stale:
            task = asyncio.create_task(self._db(leases.give_slots, at[0], stale, self.holder))
            self._giving.add(task)
            task.add_done_callback(self._gave)
        if pool.idle:
            wait = pool.idle[0][1] + self.linger - time.monotonic()
            pool.sweep = asyncio.get_running_loop().call_later(max(0.0, wait), self._sweep, at, pool)

    def _gave(self, task: asyncio.Task[None]) -> None:
        self._giving.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the slot's lease runs out instead
            log.warning("fleet: a slot could not be given back: %s", task.exception())

    async def take(self, name: str, cost: float, per_minute: float) -> None:
        rate, cap = bucket_shape(per_minute)
        while (wait := await self._db(leases.take_tokens, name, cost, rate, cap)) > 0:
            await asyncio.sleep(wait * random.uniform(1.0, 1.3))

    async def give(self, name: str, amount: float) -> None:
        await self._db(leases.give_tokens, name, amount)

    async def renew(self) -> None:
        """Extend the slots this worker holds, in flight or idle (its heartbeat)."""
        await self._db(leases.renew_slots, self.holder, self.seconds)

    def _forget(self) -> None:
        """Drop the idle slots and timers of an event loop that is gone (the slots go back to the store)."""
        idle = [(at[0], [slot for slot, _ in pool.idle]) for at, pool in self._pools.items() if pool.idle]
        for pool in self._pools.values():
            if pool.sweep is not None:
                pool.sweep.cancel()
        self._pools.clear()
        self._slotted.clear()
        for key, slots in idle:
            self._pool.submit(leases.give_slots, self.db, key, slots, self.holder).result()

    def close(self) -> None:
        """Give back every slot this worker holds (it stops), and stop the connection's thread."""
        for pool in self._pools.values():
            if pool.sweep is not None:
                pool.sweep.cancel()
        self._pools.clear()
        try:
            self._pool.submit(leases.release_slots, self.db, self.holder).result()
        finally:
            self._pool.shutdown()


class FleetBudget(Budget):
    """``--max-cost`` over every worker of a run, kept in the store (``db``: a connection of its own)."""

    def __init__(self, limit: float, endpoints: Mapping[str, Endpoint], db: Db, run_id: str):
        super().__init__(limit, endpoints)
        self.db = db
        self.run_id = run_id
        leases.set_budget(db, run_id, limit)

    def take(self, bound: float) -> bool:
        return leases.hold_budget(self.db, self.run_id, bound)

    def count(self, held: float, cost: float) -> None:
        leases.settle_budget(self.db, self.run_id, held, cost)

    def exceeded(self, run_id: str) -> BudgetExceeded:
        spent = leases.budget_spent(self.db, run_id)
        return BudgetExceeded(
            f"stopped by --max-cost {self.limit:g}: the run's workers spent (or hold for calls in flight) "
            f"${spent:.4f} and the next call could cost up to ${self.refused or 0:.4f}; the run is kept. "
            f"Continue with: evals worker {run_id} --max-cost USD (a higher limit, for every worker)"
        )
