"""An ``evals worker`` process: lease batches of a run's units, work them as ``evals run`` does, finish the
run once when it is the first to find every unit done.

The loop keeps two batches in hand (each as many units as the worker sends calls to the model at once), so
the end of one batch never leaves the endpoint idle, and works each through ``evals.runner.execute`` on just
those units. A heartbeat renews its leases (units and fleet slots) every third of ``lease_seconds`` and says
where the run stands. When nothing is left to lease and other workers still hold units, it waits: their
leases run out if they died, and it takes their units (it looks again after 0.1 s, then twice as long each
time, up to a second). A stopped worker (Ctrl-C, SIGTERM, an endpoint failing, ``--max-cost``) gives its
units back at once; the last one to stop marks the run interrupted.

Every call a worker makes is on its own audit chain (``<run id>@<worker id>``); the finishing worker seals
them all and names them in a record on the run's chain, whose head then vouches for the whole run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evals.errors import StoreError
from evals.outbound import audit
from evals.outbound.budget import Budget
from evals.outbound.fleet import FleetBudget, FleetLimits, Limits
from evals.outbound.interrupts import run_until_terminated
from evals.plan import OpenRun, RunSpec, lock_resumed, now, open_run
from evals.records import RunManifest
from evals.runner import RunOutcome, SilentReporter, execute, run_suite
from evals.store import Store, leases
from evals.store.leases import FINISH, Db, Progress
from evals.store.postgres import PostgresBackend

T = TypeVar("T")
LEASE_SECONDS = 60.0
"""How long a worker holds a unit (and a fleet slot) without renewing it: a dead worker's units go to the
others this long after it died at most."""
BATCHES = 2
"""Batches a worker keeps in hand: one being worked while the next fills the endpoint's slots."""
POLL = 1.0
"""Seconds a worker with nothing to lease waits before asking again (at most; a third of the lease)."""
FIRST_POLL = 0.1
"""Its first wait: each next one doubles, up to ``POLL`` (the others' last units and the run's finish
usually end within seconds, and it exits as soon as the run is finished)."""


def worker_id() -> str:
    """This process's name among a run's workers: host, pid and a random part (``gpu-3-4121-9f0c``)."""
    host = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{host}-{os.getpid()}-{secrets.token_hex(2)}")


@dataclass
class WorkerSettings:
    """How one worker works: ``concurrency`` calls at most in flight to each endpoint (None: the endpoint's
    ``max_concurrency``), ``lease_seconds``, ``max_cost`` for the whole run (None: the run's stored one)."""

    concurrency: int | None = None
    lease_seconds: float = LEASE_SECONDS
    max_cost: float | None = None
    holder: str = field(default_factory=worker_id)


@dataclass
class WorkerOutcome:
    """What one worker did: its own calls (``outcome``), the units it completed, and whether it finished the
    run (``outcome.rows`` then hold the run's results)."""

    outcome: RunOutcome
    holder: str
    units: int = 0
    finished: bool = False
    """This worker finished the run (status, export, aggregates, canary, audit heads)."""
    progress: Progress | None = None
    """Where the run stood when this worker stopped."""


def plan(store: Store, spec: RunSpec) -> RunManifest:
    """Create a run for workers (``evals run --plan-only``): its items, manifest and config snapshot, status
    ``planned``, its units entered, its ``--max-cost`` kept for all its workers. Nothing is called."""
    manifest = run_suite(store, dataclasses.replace(spec, plan_only=True)).manifest
    leases.add_units(store.backend, manifest.run_id, manifest.samples)
    if spec.max_cost is not None:
        leases.set_budget(store.backend, manifest.run_id, spec.max_cost)
    return manifest


def work(store: Store, spec: RunSpec, settings: WorkerSettings, say: Callable[[str], None]) -> WorkerOutcome:
    """Work the stored run ``spec.resume`` with the others until no unit is left (see the module).

    Raises ``KeyboardInterrupt`` on Ctrl-C or SIGTERM, ``EndpointFailing``, ``BudgetExceeded``, each once
    this worker's units are given back; a second worker on a SQLite store is a ``StoreError``."""
    assert spec.resume is not None
    run_id, shared = spec.resume, store.dialect == "postgresql"
    with ExitStack() as held:
        try:
            manifest = lock_resumed(store, spec, held, shared=shared)
        except StoreError as exc:
            if shared or "being worked" not in str(exc):
                raise
            held_by = str(exc).split(";")[0]
            raise StoreError(
                f"a SQLite store ({store.path}) takes one worker at a time, and {held_by}: wait for it, or use "
                "a PostgreSQL store for several (store: postgresql://... in evals.yaml, or EVALS_STORE; "
                "evals docs workers)"
            ) from None
        db: Db = store.backend
        limits: Limits | None = None
        if isinstance(store.backend, PostgresBackend):
            twin = store.backend.twin()  # leases and fleet limits never wait behind the store's writes
            held.callback(twin.close)
            db, limits = twin, FleetLimits(twin, settings.holder, settings.lease_seconds)
        leases.add_units(db, run_id, manifest.samples)
        budget = _budget(store, spec, settings, db, run_id)
        opened = open_run(store, spec, held, manifest, budget, limits, settings.concurrency)
        worker = _Worker(store, spec, opened, budget, db, settings, say)
        try:
            with audit.recording(store, route={run_id: audit.worker_chain(run_id, settings.holder)}):
                result = run_until_terminated(worker.go)
        except BaseException:
            worker.stop()
            raise
        finally:
            if limits is not None:
                try:
                    limits.close()
                except Exception as exc:  # its slots come back when their lease runs out
                    say(f"worker {settings.holder}: could not give its fleet slots back ({exc})")
        if result.finished:
            _finish(store, db, run_id, result)
        result.progress = leases.progress(db, run_id)
        return result


def _budget(store: Store, spec: RunSpec, settings: WorkerSettings, db: Db, run_id: str) -> Budget | None:
    """``--max-cost`` over the run: the fleet's in the store (PostgreSQL), else this process's."""
    limit = settings.max_cost if settings.max_cost is not None else leases.budget_limit(db, run_id)
    if limit is None:
        return None
    checked = Budget.of(limit, spec.endpoints())  # prices for every paid endpoint, or a ConfigError
    if store.dialect != "postgresql":
        return checked
    return FleetBudget(limit, {name: e for name, (_, e) in spec.endpoints().items()}, db, run_id)


def _finish(store: Store, db: Db, run_id: str, result: WorkerOutcome) -> None:
    """The finish after this worker's chain is sealed: export, aggregates, the run's chain naming its
    workers' chains, and the finish unit marked done (last: a finisher killed before it is replaced)."""
    rows = list(store.results(run_id))
    store.export_jsonl(run_id, rows)
    store.save_aggregates(run_id, rows)
    audit.seal_workers(store, run_id)
    leases.mark_done(db, run_id, [FINISH])
    result.outcome.rows = rows
    result.outcome.manifest = store.run(run_id)


class _Worker:
    """The event loop's side of one worker: leasing, batches, heartbeat, the finish's calls."""

    def __init__(
        self,
        store: Store,
        spec: RunSpec,
        opened: OpenRun,
        budget: Budget | None,
        db: Db,
        settings: WorkerSettings,
        say: Callable[[str], None],
    ):
        self.store, self.spec, self.opened, self.budget, self.db = store, spec, opened, budget, db
        self.settings, self.say = settings, say
        self.run_id = opened.manifest.run_id
        self.holder = settings.holder
        self.result = WorkerOutcome(RunOutcome(opened.manifest), settings.holder)
        self.size = max(1, opened.model.max_concurrency)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, self.db, *args)

    async def go(self) -> WorkerOutcome:
        beat = asyncio.create_task(self._heartbeat())
        try:
            if await self._work():
                await self._finish_calls()
            return self.result
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await self.opened.gateway.aclose()

    async def _work(self) -> bool:
        """Lease and work batches until none is left; True when this worker won the run's finish."""
        seconds = self.settings.lease_seconds
        tasks: set[asyncio.Task[None]] = set()
        pause = FIRST_POLL
        try:
            while True:
                while len(tasks) < BATCHES:
                    keys = await self._db(leases.lease, self.run_id, self.holder, self.size, seconds)
                    if not keys:
                        break
                    pause = FIRST_POLL
                    if not tasks:  # holding nothing, this worker did not keep the run from being stopped
                        await self._db(leases.set_running, self.run_id)
                    tasks.add(asyncio.create_task(self._batch(keys)))
                if tasks:
                    done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # a batch's failure stops the worker
                    continue
                if await self._db(leases.lease_finish, self.run_id, self.holder, seconds):
                    return True
                if await self._db(leases.finished, self.run_id):
                    return False
                # Others hold the rest: they end soon, or their leases run out if they died.
                await asyncio.sleep(pause)
                pause = min(POLL, seconds / 3, pause * 2)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _batch(self, keys: Sequence[tuple[str, int]]) -> None:
        """Answer and judge the leased units ``keys`` (what is stored of them already is not asked again)."""
        o = self.opened
        batch = await asyncio.to_thread(leases.read_batch, self.store, self.run_id, keys)
        done = await execute(
            self.store, o.manifest, o.model, o.judges, SilentReporter(), self.budget, o.marking, o.inhouse,
            only=batch,
        )  # fmt: skip
        total = self.result.outcome
        total.asked += done.asked
        total.judged += done.judged
        total.reused += done.reused
        total.answer_errors += done.answer_errors
        total.judge_errors += done.judge_errors
        total.skipped += done.skipped
        await self._db(leases.mark_done, self.run_id, keys)
        self.result.units += len(keys)
        if o.manifest.model_id is None and done.asked:  # stored now: the next batches need not store it
            stored = await asyncio.to_thread(self.store.run, self.run_id)
            o.manifest = dataclasses.replace(o.manifest, model_id=stored.model_id)

    async def _finish_calls(self) -> None:
        """The finish's part in the event loop, on this worker's chain: status, then the drift canary."""
        self.result.finished = True
        manifest = await asyncio.to_thread(self.store.run, self.run_id)
        again = manifest.status == "finished"  # a finisher died before the end: this one takes over
        await asyncio.to_thread(self.store.set_status, self.run_id, "finished", now())
        observer, judge = self.spec.observer, self.opened.judges[0]
        if observer is not None and (not again or observer.missed(self.store, manifest, self.spec.judge)):
            await observer.observe(self.store, await asyncio.to_thread(self.store.run, self.run_id), judge)

    async def _heartbeat(self) -> None:
        """Renew this worker's leases and fleet slots every third of the lease, and say where the run is."""
        seconds, limits = self.settings.lease_seconds, self.opened.gateway.limits
        said = time.monotonic()
        while True:
            await asyncio.sleep(seconds / 3)
            await self._db(leases.renew, self.run_id, self.holder, seconds)
            await limits.renew()
            if time.monotonic() - said >= 10:
                said = time.monotonic()
                state = await self._db(leases.progress, self.run_id)
                self.say(
                    f"worker {self.holder}: {self.result.units} units done here; run {self.run_id}: "
                    f"{state.done}/{state.total} done, {state.leased} leased"
                )

    def stop(self) -> None:
        """Give this worker's units back at once; the last worker to stop marks the run interrupted."""
        try:
            leases.release(self.db, self.run_id, self.holder)
            if leases.set_stopped(self.db, self.run_id):
                rows = list(self.store.results(self.run_id))
                self.store.export_jsonl(self.run_id, rows)
                self.store.save_aggregates(self.run_id, rows)
        except Exception as exc:  # the stop's cause is what the user needs to see; the leases run out
            self.say(f"worker {self.holder}: could not give its units back ({type(exc).__name__}: {exc})")
