"""Checking the audit trail: every chain recomputed, every head matched, every anchor found.

``verify`` streams the records chain by chain (a page at a time, so a million records cost one page of
memory) and reports, per chain, the first record that is not what the chain says it should be: altered (its
fields no longer hash to its ``hash``), relinked (its ``prev_hash`` is not the previous record's hash) or
missing (a gap in ``seq``, fewer records than a head counted). The heads chain is checked the same way, and
each head against the record it names (a tail rewritten consistently after its run was sealed no longer
matches). Anchors (``RUN=HASH`` kept outside the store, from a run's printed ``audit head``) must name a
record of that run: a store rewritten wholesale, heads included, cannot match them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import groupby

from evals.errors import StoreError
from evals.outbound.audit import GENESIS, chain_hash, head_fields, record_fields
from evals.store import audit as sql
from evals.store.audit import HeadRow, RecordRow
from evals.store.core import Store

HEADS = "(heads)"
"""How findings about the heads chain name their chain."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong (or worth saying) about a chain: which chain, which record (seq), what."""

    chain_id: str
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"chain {self.chain_id}" if self.seq is None else f"chain {self.chain_id} record {self.seq}"
        return f"{where}: {self.what}"


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found. ``problems`` empty: the trail is intact."""

    records: int
    chains: int
    heads: int
    problems: tuple[Finding, ...] = ()
    """Tampered or missing: each chain's first, the heads chain's first, every failed head and anchor."""
    notes: tuple[Finding, ...] = ()
    """Not failures: records after a chain's last head (a run still running, or killed before its end)."""

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class _Chain:
    """The running state of one chain's walk."""

    chain_id: str
    count: int = 0
    prev: str = GENESIS
    broken: bool = False
    hashes: dict[int, str] = field(default_factory=dict)
    """Hashes at the positions a head or an anchor asks about."""


def _walk_heads(rows: list[HeadRow], problems: list[Finding]) -> None:
    prev = GENESIS
    for expected, row in enumerate(rows):
        if row.seq != expected:
            problems.append(
                Finding(HEADS, expected, f"missing: the heads chain jumps from {expected - 1} to {row.seq}")
            )
            return
        if row.prev_hash != prev:
            problems.append(
                Finding(HEADS, row.seq, "relinked: its prev_hash is not the previous head's hash")
            )
            return
        if chain_hash(row.prev_hash, head_fields(row)) != row.hash:
            problems.append(Finding(HEADS, row.seq, "altered: its fields do not hash to its stored hash"))
            return
        prev = row.hash


def _walk_chain(
    chain_id: str, rows: Iterator[RecordRow], wanted: set[int], anchors: set[str]
) -> tuple[_Chain, Finding | None, set[str]]:
    """Walk one chain's records in seq order: its state, its first problem, the anchors found in it."""
    state = _Chain(chain_id)
    problem: Finding | None = None
    found: set[str] = set()
    for row in rows:
        if not state.broken:
            if row.seq != state.count:
                first = state.count
                gap = f"record {first}" if row.seq == first + 1 else f"records {first} to {row.seq - 1}"
                problem = Finding(chain_id, first, f"missing: {gap} (the chain jumps to {row.seq})")
                state.broken = True
            elif row.prev_hash != state.prev:
                problem = Finding(
                    chain_id, row.seq, "relinked: its prev_hash is not the previous record's hash"
                )
                state.broken = True
            elif chain_hash(row.prev_hash, record_fields(row)) != row.hash:
                problem = Finding(chain_id, row.seq, "altered: its fields do not hash to its stored hash")
                state.broken = True
        if row.hash in anchors:
            found.add(row.hash)
        if row.seq in wanted:
            state.hashes[row.seq] = row.hash
        state.prev = row.hash
        state.count += 1
    return state, problem, found


def verify(
    store: Store, chain_id: str | None = None, anchors: Mapping[str, Iterable[str]] | None = None
) -> Verification:
    """Recompute every chain (or only ``chain_id``'s) and the heads chain; check ``anchors`` (chain id →
    head hashes kept elsewhere). A ``StoreError`` when ``chain_id`` has neither records nor heads."""
    wanted_anchors = {chain: set(hashes) for chain, hashes in (anchors or {}).items()}
    problems: list[Finding] = []
    notes: list[Finding] = []
    all_heads = sql.heads(store)
    _walk_heads(all_heads, problems)
    by_chain: dict[str, list[HeadRow]] = defaultdict(list)
    for row in all_heads:
        by_chain[row.chain_id].append(row)
    if chain_id is not None and chain_id not in by_chain and sql.tail(store, chain_id) is None:
        raise StoreError(f"no audit records or heads for {chain_id!r} in {store.path}")
    seen: set[str] = set()
    records = chains = 0
    for chain, rows in groupby(sql.records(store, chain_id), key=lambda r: r.chain_id):
        seen.add(chain)
        heads = by_chain.get(chain, [])
        wanted = {h.count - 1 for h in heads}
        state, problem, found = _walk_chain(chain, rows, wanted, wanted_anchors.get(chain, set()))
        chains += 1
        records += state.count
        if problem is not None:
            problems.append(problem)
        for h in heads:
            if h.count > state.count:
                problems.append(Finding(chain, state.count, (
                    f"missing: head {h.seq} of the heads chain counts {h.count} records, the chain has "
                    f"{state.count}"
                )))  # fmt: skip
            elif state.hashes.get(h.count - 1) != h.head_hash:
                problems.append(Finding(chain, h.count - 1, (
                    f"rewritten: head {h.seq} of the heads chain sealed this record with another hash"
                )))  # fmt: skip
        sealed = max((h.count for h in heads), default=0)
        if state.count > sealed:
            notes.append(Finding(chain, sealed, (
                f"{state.count - sealed} record(s) after the last head (a run still running, or stopped "
                "without its end); anchors and heads cannot vouch for them"
            )))  # fmt: skip
        for missing in sorted(wanted_anchors.get(chain, set()) - found):
            problems.append(Finding(chain, None, f"anchor {missing} does not match any record of the chain"))
    for chain in sorted(set(by_chain) - seen):
        if chain_id is None or chain == chain_id:
            problems.append(
                Finding(
                    chain,
                    0,
                    f"missing: the heads chain seals {by_chain[chain][-1].count} records, none is left",
                )
            )
    for chain in sorted(set(wanted_anchors) - seen):
        if chain_id is None or chain == chain_id:
            problems.append(Finding(chain, None, "anchor given, but the chain has no records"))
    return Verification(records, chains, len(all_heads), tuple(problems), tuple(notes))
