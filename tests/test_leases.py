"""A run's units as its workers lease them (``evals.store.leases``), on SQLite and PostgreSQL: leased in suite
order, each to one worker, done once; a leased batch read back with what is stored of it."""

from __future__ import annotations

from builders import make_run

from evals.store import leases

SCORES = {"a-1": [5, 4], "a-2": [3, None], "b-3": [5, 5], "b-4": [2, 2], "c-5": [1, 1]}


def test_units_are_leased_in_suite_order_one_worker_each_and_done_once(open_store):
    with open_store() as store:
        make_run(store, "r01", SCORES, status="planned")
        db = store.backend
        assert leases.add_units(db, "r01", 2) == 10
        assert leases.add_units(db, "r01", 2) == 10  # a second worker entering them changes nothing
        first = leases.lease(db, "r01", "w1", 3, 60)
        assert first == [("a-1", 0), ("a-1", 1), ("a-2", 0)]
        second = leases.lease(db, "r01", "w2", 4, 60)
        assert second == [("a-2", 1), ("b-3", 0), ("b-3", 1), ("b-4", 0)]
        leases.mark_done(db, "r01", first)
        assert leases.progress(db, "r01") == leases.Progress(done=3, leased=4, waiting=3, finished=False)
        leases.release(db, "r01", "w2")  # w2 stops: its units go back, to be leased first
        assert leases.lease(db, "r01", "w1", 10, 60) == [*second, ("b-4", 1), ("c-5", 0), ("c-5", 1)]
        assert leases.lease(db, "r01", "w2", 10, 60) == []
        assert not leases.lease_finish(db, "r01", "w1", 60)  # units left: nobody finishes yet
        leases.mark_done(db, "r01", [*second, ("b-4", 1), ("c-5", 0), ("c-5", 1)])
        assert leases.lease_finish(db, "r01", "w2", 60)
        assert not leases.lease_finish(db, "r01", "w1", 60)  # won once
        assert not leases.finished(db, "r01")  # w1 waits for w2's finish, to take it over if w2 dies
        leases.mark_done(db, "r01", [leases.FINISH])
        assert leases.finished(db, "r01") and leases.progress(db, "r01").finished


def test_a_leased_batch_is_read_with_its_items_in_suite_order_and_what_is_stored_of_them(open_store):
    with open_store() as store:
        make_run(store, "r01", SCORES, unanswered={"b-4"})
        batch = leases.read_batch(store, "r01", [("c-5", 1), ("a-2", 1), ("b-4", 0)])
        assert [item.id for item in batch.items] == ["a-2", "b-4", "c-5"]
        assert batch.keys == {("c-5", 1), ("a-2", 1), ("b-4", 0)}
        assert sorted(batch.answers) == [("a-2", 0), ("a-2", 1), ("c-5", 0), ("c-5", 1)]
        assert batch.answers[("c-5", 1)].text == "answer c-5"
        verdicts = sorted((j.item_id, j.sample, j.score) for j in batch.verdicts)
        assert verdicts == [("a-2", 0, 3), ("a-2", 1, None), ("c-5", 0, 1), ("c-5", 1, 1)]
        assert leases.read_batch(store, "r01", [("nope", 0)]).items == []
