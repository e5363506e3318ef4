"""Redaction throughput: items redacted per second (question, reference and an answer, one mapping each).

    .venv/bin/python scripts/bench_redaction.py [--copies 100]

Two sets: the bundled demo suite repeated ``--copies`` times (few identifiers: the common case), and the
same number of items seeded with one identifier of every built-in kind each (the worst case). The
analyzer is built before timing (its one-off start is printed apart). One process, one thread.
"""

from __future__ import annotations

import argparse
import sys
import time

from evals.defaults import DEMO_SUITE
from evals.outbound.redaction import Redactor
from evals.records import Item
from evals.suites import load_suite

SEEDED = (
    "Patient MRN 00482913, born 03/14/1962, email jane.doe@example.com, phone (212) 555-0147, SSN 536-22-1234, "
    "card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, from 192.168.4.21, chart at "
    "https://portal.example.org/records, driver license D1234567, passport number 912803456, "
    "account number 440291837512. What should we tell her?"
)


def _rate(redactor: Redactor, items: list[Item]) -> tuple[float, int]:
    start = time.perf_counter()
    found = 0
    for item in items:
        found += sum(redactor.redact_item(item, item.reference).counts.values())
    return len(items) / (time.perf_counter() - start), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100)
    args = parser.parse_args()
    redactor = Redactor()
    start = time.perf_counter()
    redactor.redact(["warm up jane@example.com"])
    print(f"analyzer start: {time.perf_counter() - start:.2f} s ({redactor.version}; {redactor.note})")
    demo = list(load_suite(DEMO_SUITE).items) * args.copies
    rate, found = _rate(redactor, demo)
    print(f"demo suite x{args.copies}: {len(demo)} items, {rate:.0f} items/s, {found} identifiers replaced")
    seeded = [
        Item(id=f"p{i}", area="pii", question=SEEDED, reference="jane.doe@example.com")
        for i in range(len(demo))
    ]
    rate, found = _rate(redactor, seeded)
    print(
        f"seeded (12 kinds per item): {len(seeded)} items, {rate:.0f} items/s, {found} identifiers replaced"
    )
    print(f"command: {sys.executable} scripts/bench_redaction.py --copies {args.copies}")


if __name__ == "__main__":
    main()
