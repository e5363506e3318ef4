"""Measure what the audit trail costs per call, and how fast ``evals audit verify`` reads it back.

Run from the repository root::

    .venv/bin/python scripts/bench_audit.py --n 20000
    .venv/bin/python scripts/bench_audit.py --n 100000 --store postgresql://localhost/bench

On a fresh store (a temporary SQLite file unless ``--store`` names another) it times:

* ``append``: N records appended one by one to one run's chain (read the tail, hash, insert: what the
  writer thread does per call), as appends per second and microseconds each;
* the hot path: N records submitted to a ``recording`` trail (what a call's coroutine pays: on SQLite the
  append itself, made in place; on PostgreSQL a queue put) and the time until all are stored;
* ``verify``: the whole trail recomputed, in records per second.

A call to a model takes milliseconds to seconds; the figures say how much of that the trail adds.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.outbound import audit  # noqa: E402
from evals.outbound.audit_verify import verify  # noqa: E402
from evals.store import Store  # noqa: E402


def entry(chain: str, i: int) -> audit.Entry:
    """A call record as a run makes them (every field set)."""
    return audit.Entry(
        kind=audit.CALL, at=audit.now(), run_id=chain, item_id=f"item-{i // 2}", sample=0,
        role="model" if i % 2 == 0 else "judge", endpoint="local", url="http://127.0.0.1:8000/v1/chat/completions",
        model="qwen2.5-7b-instruct", sha256=f"{i:064x}", redactions={"EMAIL_ADDRESS": 1} if i % 7 == 0 else {},
        status="ok", attempt=1,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000, help="records per measurement")
    parser.add_argument("--store", help="a PostgreSQL URL or SQLite file (default: a temporary SQLite file)")
    args = parser.parse_args()
    print("$ " + shlex.join([Path(sys.executable).name, "scripts/bench_audit.py", *sys.argv[1:]]))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or str(Path(tmp) / "evals.db")
        with Store(tmp, url=url) as store:
            print(f"store: {store.dialect}, {args.n} records per measurement")
            start = time.perf_counter()
            for i in range(args.n):
                audit.append(store, "bench-append", entry("bench-append", i))
            elapsed = time.perf_counter() - start
            print(f"append: {args.n / elapsed:,.0f} appends/s ({elapsed / args.n * 1e6:,.0f} µs per record)")

            start = time.perf_counter()
            with audit.recording(store) as trail:
                for i in range(args.n):
                    trail.submit(entry("bench-trail", i))
                submitted = time.perf_counter() - start
            stored = time.perf_counter() - start
            print(
                f"hot path: {submitted / args.n * 1e6:,.2f} µs per call to submit "
                f"({'in place' if store.inline else 'a queue put; a writer thread stores it'}); all {args.n} "
                f"stored in {stored:.2f} s ({args.n / stored:,.0f} records/s), then the chain sealed"
            )

            start = time.perf_counter()
            result = verify(store)
            elapsed = time.perf_counter() - start
            state = "intact" if result.intact else "NOT intact"
            print(
                f"verify: {result.records:,} records in {elapsed:.2f} s "
                f"({result.records / elapsed:,.0f} records/s), {state}"
            )


if __name__ == "__main__":
    main()
