"""Limits on the calls to an endpoint besides its ``max_concurrency`` semaphore: the process's own, or held
by every ``evals worker`` of a run together in the store.

``Limits`` (every gateway's, unless given another): an endpoint's ``requests_per_minute`` and
``tokens_per_minute`` as token buckets in this process. A bucket holds one second's allowance (at least one
call) and refills continuously, so over any minute at most the limit plus one second's worth start; a call
dearer than the bucket (tokens) waits for a full bucket and takes it below zero, so the rate holds on
average too. Tokens are counted before the call as the prompt's estimate (``evals.outbound.budget``) plus
``max_tokens``, then corrected by the usage the server reports.

``FleetLimits`` (``evals worker`` on PostgreSQL): the same buckets kept in the store, and the endpoint's
``max_concurrency`` as slots leased from it (``evals.store.leases``), held by a worker while its call is in
flight and renewed by its heartbeat, so a dead worker's slots come back when their lease runs out. A free
slot is waited for by polling the store, with jitter, and a worker's ending call hands its slot to the
worker's next waiting call directly. ``FleetBudget``: ``--max-cost`` over every worker of the run,
each call's bound counted as spent before it starts and replaced by its cost when it returns (a worker
that dies mid-call leaves its bound counted: the provider may well bill it).

An endpoint is known in the store by its provider, URL (without credentials) and model: runs and configs
that name one server differently still share its limits.
"""

from __future__ import annotations

import asyncio
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
BURST_SECONDS = 1.0
"""A bucket holds this many seconds of its allowance."""
POLL = (0.01, 0.25)
"""Shortest and longest wait between two tries for a fleet slot (doubling, with jitter)."""


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


class FleetLimits(Limits):
    """Every limit held across all the workers of a PostgreSQL store: slots and buckets in the store.

    ``db``: a connection of its own (``PostgresBackend.twin``), used from one thread; ``holder``: this
    worker's id; ``seconds``: how long a slot stays held without renewal (the worker's lease)."""

    def __init__(self, db: Db, holder: str, seconds: float):
        super().__init__()
        self.db = db
        self.holder = holder
        self.seconds = seconds
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evals-fleet")
        self._slotted: set[tuple[str, int]] = set()
        self._waiters: dict[str, deque[asyncio.Future[int]]] = {}
        """This worker's calls waiting for a slot, by endpoint: a slot its ending call holds goes to the
        first of them without a trip to the store (the others' calls get theirs by polling)."""

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, self.db, *args)

    @asynccontextmanager
    async def call(self, endpoint: Endpoint, request: CompletionRequest) -> AsyncIterator[Usage]:
        key, limit = endpoint_key(endpoint), endpoint.max_concurrency
        if (key, limit) not in self._slotted:
            await self._db(leases.add_slots, key, limit)
            self._slotted.add((key, limit))
        slot = await self._slot(key, limit)
        try:
            async with super().call(endpoint, request) as usage:
                yield usage
        finally:
            await asyncio.shield(self._give(key, slot))

    async def _slot(self, key: str, limit: int) -> int:
        """A slot of ``key``: one free in the store, or one this worker's own call hands over as it ends."""
        waiters = self._waiters.setdefault(key, deque())
        pause = POLL[0]
        while True:
            slot = await self._db(leases.take_slot, key, limit, self.holder, self.seconds)
            if slot is not None:
                return slot
            handed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            waiters.append(handed)
            try:
                return await asyncio.wait_for(asyncio.shield(handed), random.uniform(pause / 2, pause))
            except TimeoutError:
                if handed.done() and not handed.cancelled():
                    return handed.result()  # handed over just as the wait ran out
                handed.cancel()
            finally:
                if handed in waiters:
                    waiters.remove(handed)
            pause = min(POLL[1], pause * 2)

    async def _give(self, key: str, slot: int) -> None:
        """Hand the slot to a call of this worker waiting for one, else give it back to the store."""
        waiters = self._waiters.get(key)
        while waiters:
            handed = waiters.popleft()
            if not handed.done():
                handed.set_result(slot)
                return
        await self._db(leases.give_slot, key, slot, self.holder)

    async def take(self, name: str, cost: float, per_minute: float) -> None:
        rate, cap = bucket_shape(per_minute)
        while (wait := await self._db(leases.take_tokens, name, cost, rate, cap)) > 0:
            await asyncio.sleep(wait * random.uniform(1.0, 1.3))

    async def give(self, name: str, amount: float) -> None:
        await self._db(leases.give_tokens, name, amount)

    async def renew(self) -> None:
        """Extend the slots this worker holds (its heartbeat)."""
        await self._db(leases.renew_slots, self.holder, self.seconds)

    def close(self) -> None:
        """Give back every slot this worker holds (it stops), and stop the connection's thread."""
        self._pool.submit(leases.release_slots, self.db, self.holder).result()
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
