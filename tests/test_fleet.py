"""The fleet's call slots (``evals.outbound.fleet.FleetLimits``, ``evals.store.leases``): an endpoint's
``max_concurrency`` held by every ``evals worker`` together in a PostgreSQL store, each worker keeping the
slots its calls use without a trip to the store per call, and giving back the ones it no longer uses."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from evals.config import Endpoint
from evals.outbound.fleet import FleetLimits, endpoint_key
from evals.records import CompletionRequest
from evals.store import Store, leases

ENDPOINT = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", max_concurrency=3)
KEY = endpoint_key(ENDPOINT)
REQUEST = CompletionRequest(messages=({"role": "user", "content": "hi"},))


def counted(db: Any) -> Counter[str]:
    """Count the statements run on the connection ``db`` by their first three words (it stays itself)."""
    seen: Counter[str] = Counter()
    execute, executemany = db.execute, db.executemany

    def counting(sql: str, args: Sequence[Any] = ()) -> Any:
        seen[" ".join(sql.split()[:3])] += 1
        return execute(sql, args)

    def counting_many(sql: str, rows: Sequence[Sequence[Any]]) -> None:
        seen[" ".join(sql.split()[:3])] += 1
        executemany(sql, rows)

    db.execute, db.executemany = counting, counting_many
    return seen


TAKE = "UPDATE fleet_slots SET"


def held(store: Store, holder: str | None = None) -> list[int]:
    return [slot for slot, _ in leases.held_slots(store.backend, KEY, holder)]


async def until(check: Any) -> None:
    """Wait until ``check()`` is true (what the test waits for is certain to come; no timing is asserted)."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "waited 30 s"
        await asyncio.sleep(0.01)


def test_slots_are_taken_for_all_waiting_calls_in_one_statement_and_kept_between_calls(
    postgres_url, tmp_path
):
    with Store(tmp_path, url=postgres_url) as store:
        db = store.backend.twin()
        seen = counted(db)
        limits = FleetLimits(db, "w1", 60, linger=3600)

        async def call() -> None:
            async with limits.call(ENDPOINT, REQUEST):
                await asyncio.sleep(0)

        async def go() -> None:
            await asyncio.gather(*(call() for _ in range(3)))  # three calls at once: one statement
            assert seen[TAKE] == 1 and held(store, "w1") == [0, 1, 2]
            for _ in range(5):  # later calls use the slots this worker holds: no statement
                await asyncio.gather(call(), call())
            assert seen[TAKE] == 1 and held(store, "w1") == [0, 1, 2]

        try:
            asyncio.run(go())
        finally:
            limits.close()
            db.close()
        assert held(store) == []  # a stopping worker gives every slot back


def test_a_slot_no_call_uses_goes_back_to_the_store_for_the_other_workers(postgres_url, tmp_path):
    with Store(tmp_path, url=postgres_url) as store:
        one, two = FleetLimits(store.backend.twin(), "w1", 60, linger=0), FleetLimits(store.backend, "w2", 60)

        async def go() -> None:
            async with one.call(ENDPOINT, REQUEST), one.call(ENDPOINT, REQUEST), one.call(ENDPOINT, REQUEST):
                assert held(store, "w1") == [0, 1, 2]
            await until(lambda: held(store) == [])  # idle: given back
            async with two.call(ENDPOINT, REQUEST):
                assert held(store, "w2") == [0]

        try:
            asyncio.run(go())
        finally:
            one.close()
            two.close()
            one.db.close()  # type: ignore[attr-defined]


def test_the_fleet_never_has_more_calls_in_flight_than_max_concurrency(postgres_url, tmp_path):
    in_flight, most, done = 0, 0, 0

    async def calls(limits: FleetLimits, n: int) -> None:
        async def one() -> None:
            nonlocal in_flight, most, done
            async with limits.call(ENDPOINT, REQUEST):
                in_flight += 1
                most = max(most, in_flight)
                await asyncio.sleep(0.005)
                in_flight -= 1
                done += 1

        await asyncio.gather(*(one() for _ in range(n)))

    with Store(tmp_path, url=postgres_url) as store:
        twins = [store.backend.twin() for _ in range(3)]
        workers = [FleetLimits(db, f"w{n}", 60, linger=0.01 * n) for n, db in enumerate(twins)]

        async def go() -> None:
            await asyncio.gather(*(calls(w, 12) for w in workers))  # 3 workers × 12 calls at once, limit 3

        try:
            asyncio.run(go())
        finally:
            for limits, db in zip(workers, twins, strict=True):
                limits.close()
                db.close()
        assert done == 36 and most <= ENDPOINT.max_concurrency
        assert held(store) == []


def test_a_call_cancelled_while_it_waits_leaves_no_slot_held(postgres_url, tmp_path):
    with Store(tmp_path, url=postgres_url) as store:
        one = FleetLimits(store.backend, "w1", 60, linger=0)
        single = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", max_concurrency=1)
        key = endpoint_key(single)

        async def go() -> None:
            free = asyncio.Event()

            async def first() -> None:
                async with one.call(single, REQUEST):
                    await free.wait()

            holder = asyncio.create_task(first())
            await until(lambda: leases.held_slots(store.backend, key) == [(0, "w1")])
            waiting = asyncio.create_task(one.call(single, REQUEST).__aenter__())
            await asyncio.sleep(0.05)  # it waits for the slot the first call holds
            waiting.cancel()
            free.set()
            await holder
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await until(lambda: leases.held_slots(store.backend, key) == [])

        try:
            asyncio.run(go())
        finally:
            one.close()


def test_a_store_failing_fails_the_waiting_calls_instead_of_leaving_them_waiting(postgres_url, tmp_path):
    with Store(tmp_path, url=postgres_url) as store:
        gone = store.backend.twin()
        gone.close()
        limits = FleetLimits(gone, "w1", 60)

        async def go() -> list[BaseException | None]:
            async def call() -> None:
                async with limits.call(ENDPOINT, REQUEST):
                    pass

            return await asyncio.gather(call(), call(), return_exceptions=True)  # type: ignore[return-value]

        failed = asyncio.run(go())
        assert len(failed) == 2 and all(store.backend.is_error(exc) for exc in failed), failed
        with pytest.raises(Exception) as closing:  # the driver's own error
            limits.close()
        assert store.backend.is_error(closing.value)


def test_slots_statements_take_give_and_renew_only_a_holders_own(postgres_url, tmp_path):
    with Store(tmp_path, url=postgres_url) as store:
        db = store.backend
        leases.add_slots(db, KEY, 3)
        assert leases.take_slots(db, KEY, 3, "w1", 60, count=2) == [0, 1]
        assert leases.take_slots(db, KEY, 3, "w2", 60, count=5) == [2]  # only what is free
        assert leases.take_slots(db, KEY, 3, "w3", 60) == []
        leases.give_slots(db, KEY, [0, 2], "w1")  # slot 2 is w2's: it keeps it
        assert leases.held_slots(db, KEY) == [(1, "w1"), (2, "w2")]
        assert leases.take_slots(db, KEY, 3, "w3", 60, count=3) == [0]
        db.execute("UPDATE fleet_slots SET expires_at = 0 WHERE holder = ?", ("w2",))  # w2 died
        assert leases.take_slots(db, KEY, 3, "w3", 60, count=3) == [2]  # its slot, once it ran out
