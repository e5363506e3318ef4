"""One run, many workers: ``evals run --plan-only`` creates a run, and ``evals worker RUN_ID`` processes on
any number of machines sharing a PostgreSQL store work it together (``loop.py``).

Each worker leases batches of the run's units (an item and a sample) from the store (``evals.store.leases``),
renews its leases while it works, answers and judges them through the runner's own code path
(``evals.runner.execute`` on the batch), and marks them done. A worker that dies loses its leases when they
run out, and the others take its units; a unit's answer and verdicts are stored once whatever happens (the
store's keys, an answer never replaced by a second one). The endpoints' limits and ``--max-cost`` are held
by all the workers together, in the store (``evals.outbound.fleet``). The worker that finds every unit done
first finishes the run, once: status, export, aggregates, the drift canary, and the run's audit chain naming
every worker's chain. On SQLite one worker at a time works a run.
"""
