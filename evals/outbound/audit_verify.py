"""Checking the audit trail: every chain recomputed, every head matched, every run covered, anchors found.

``verify`` streams the records chain by chain (a page at a time, so a million records cost one page of
memory) and reports, per chain, the first record that is not what the chain says it should be: altered (its
fields no longer hash to its ``hash``), relinked (its ``prev_hash`` is not the previous record's hash) or
missing (a gap in ``seq``, fewer records than a head counted). The heads chain is checked the same way, and
each head against the record it names (a tail rewritten consistently after its run was sealed no longer
matches).

The chains alone cannot show what was deleted whole: the newest chain with its head, or every record and
head at once, leaves a trail that still verifies. So the runs' own rows are the second witness
(``evals.store.audit.run_calls``): a run whose answers or verdicts came back from calls made in this store
must have a chain, holding at least one successful model call per such answer and one judge call per such
verdict (a run worked by ``evals worker`` processes: over its chain and its workers', ``<run id>@<worker>``). Runs brought by ``evals import`` or ``evals store copy`` (their calls are on the trail of the store
that made them) and runs older than the trail are listed as such, not failed.

Anchors (``RUN=HASH`` kept outside the store, from a run's printed ``audit head``) must be one of that run's
sealed heads (each end of a run, a resume included, seals one): a store rewritten wholesale, heads included,
cannot match them, and neither can a record's hash from inside the chain.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from evals.errors import StoreError
from evals.outbound.audit import BATCHED, CALL, GENESIS, chain_hash, head_fields, record_fields, run_of
from evals.store import audit as sql
from evals.store.audit import HeadRow, Imported, RecordRow, RunCalls
from evals.store.core import Store

HEADS = "(heads)"
"""How findings about the heads chain name their chain."""
STORE = "(store)"
"""How findings about the store as a whole name their subject."""
CLOCK_SLACK = timedelta(minutes=5)
"""A run counts as older than the trail only when it started (and last got an answer) this long before the
trail began: the clocks of the machines sharing a store may differ a little, and a doubt must not excuse."""
RESTORE = "restore the audit tables from a backup of the store and compare"
"""What to do about a tampered or missing record."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong (or worth saying) about a chain or a run: which one, which record (seq), what, and
    what to do about it."""

    chain_id: str
    seq: int | None
    what: str
    todo: str = ""
    of: str = "chain"
    """``chain`` or ``run``: what ``chain_id`` names (a run's chain has the run's id)."""

    def __str__(self) -> str:
        where = "store" if self.chain_id == STORE else f"{self.of} {self.chain_id}"
        if self.seq is not None:
            where += f" record {self.seq}"
        return f"{where}: {self.what}" + (f"; {self.todo}" if self.todo else "")


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found. ``problems`` empty: the trail is intact."""

    records: int
    chains: int
    heads: int
    problems: tuple[Finding, ...] = ()
    """Tampered or missing: each chain's first, the heads chain's first, every failed head and anchor, every
    run whose calls its chain does not cover."""
    notes: tuple[Finding, ...] = ()
    """Not failures: records after a chain's last head (a run still running, or killed before its end), runs
    imported or older than the trail."""
    imported: tuple[str, ...] = ()
    """Runs that made calls elsewhere and were brought here (``evals import``, ``evals store copy``)."""
    before_trail: tuple[str, ...] = ()
    """Runs that made their calls before this store had an audit trail."""

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
    """Hashes at the positions a head asks about."""
    anchored: dict[str, int] = field(default_factory=dict)
    """The anchors found among the records: hash → seq."""
    ok_calls: Counter[str] = field(default_factory=Counter)
    """Successful outbound calls, by role (``model``, ``judge``, ...)."""


def _walk_heads(rows: list[HeadRow], problems: list[Finding]) -> None:
    prev = GENESIS
    for expected, row in enumerate(rows):
        if row.seq != expected:
            problems.append(
                Finding(
                    HEADS,
                    expected,
                    f"missing: the heads chain jumps from {expected - 1} to {row.seq}",
                    RESTORE,
                )
            )
            return
        if row.prev_hash != prev:
            problems.append(
                Finding(HEADS, row.seq, "relinked: its prev_hash is not the previous head's hash", RESTORE)
            )
            return
        if chain_hash(row.prev_hash, head_fields(row)) != row.hash:
            problems.append(
                Finding(HEADS, row.seq, "altered: its fields do not hash to its stored hash", RESTORE)
            )
            return
        prev = row.hash


def _walk_chain(
    chain_id: str, rows: Iterator[RecordRow], wanted: set[int], anchors: set[str]
) -> tuple[_Chain, Finding | None]:
    """Walk one chain's records in seq order: its state and its first problem."""
    state = _Chain(chain_id)
    problem: Finding | None = None
    for row in rows:
        if not state.broken:
            if row.seq != state.count:
                first = state.count
                gap = f"record {first}" if row.seq == first + 1 else f"records {first} to {row.seq - 1}"
                problem = Finding(chain_id, first, f"missing: {gap} (the chain jumps to {row.seq})", RESTORE)
                state.broken = True
            elif row.prev_hash != state.prev:
                problem = Finding(
                    chain_id, row.seq, "relinked: its prev_hash is not the previous record's hash", RESTORE
                )
                state.broken = True
            elif chain_hash(row.prev_hash, record_fields(row)) != row.hash:
                problem = Finding(
                    chain_id, row.seq, "altered: its fields do not hash to its stored hash", RESTORE
                )
                state.broken = True
        if row.hash in anchors:
            state.anchored[row.hash] = row.seq
        if row.seq in wanted:
            state.hashes[row.seq] = row.hash
        if row.kind in (CALL, BATCHED) and row.status == "ok" and row.role:  # a batched request is a call
            state.ok_calls[row.role] += 1
        state.prev = row.hash
        state.count += 1
    return state, problem


def _check_anchors(state: _Chain, heads: list[HeadRow], anchors: set[str], problems: list[Finding]) -> None:
    """Each anchor must be one of the chain's sealed heads (whose records the head checks vouch for)."""
    sealed = {h.head_hash for h in heads}
    for anchor in sorted(anchors - sealed):
        seq = state.anchored.get(anchor)
        if seq is None:
            what = f"anchor {anchor} does not match any record of the chain, nor any of its sealed heads"
            todo = "the store was rewritten, heads included (or the anchor is another run's): " + RESTORE
        else:
            what = (
                f"anchor {anchor} is the hash of record {seq}, not one of the chain's sealed heads (a run "
                "prints its head when it ends; a record inside the chain vouches for nothing after it)"
            )
            todo = "anchor the 'audit head' line the run printed"
        problems.append(Finding(state.chain_id, None, what, todo))


def verify(
    store: Store, chain_id: str | None = None, anchors: Mapping[str, Iterable[str]] | None = None
) -> Verification:
    """Recompute every chain (or only ``chain_id``'s) and the heads chain; check that every run's calls are
    on its chain (or that it is imported or older than the trail), and ``anchors`` (chain id → head hashes
    kept elsewhere). A ``StoreError`` when ``chain_id`` is neither a chain nor a run of the store."""
    wanted_anchors = {chain: set(hashes) for chain, hashes in (anchors or {}).items()}
    problems: list[Finding] = []
    notes: list[Finding] = []
    all_heads = sql.heads(store)
    _walk_heads(all_heads, problems)
    by_chain: dict[str, list[HeadRow]] = defaultdict(list)
    for row in all_heads:
        by_chain[row.chain_id].append(row)
    runs = sql.run_calls(store, chain_id)
    if chain_id is not None and not runs and chain_id not in by_chain and sql.tail(store, chain_id) is None:
        raise StoreError(f"no audit records or heads for {chain_id!r} in {store.path}")
    walked: dict[str, _Chain] = {}
    unsealed: set[str] = set()  # runs with records after a chain's last head
    records = 0
    for chain, rows in groupby(sql.records(store, chain_id), key=lambda r: r.chain_id):
        heads = by_chain.get(chain, [])
        wanted = {h.count - 1 for h in heads}
        state, problem = _walk_chain(chain, rows, wanted, wanted_anchors.get(chain, set()))
        walked[chain] = state
        records += state.count
        if problem is not None:
            problems.append(problem)
        for h in heads:
            if h.count > state.count:
                problems.append(Finding(chain, state.count, (
                    f"missing: head {h.seq} of the heads chain counts {h.count} records, the chain has "
                    f"{state.count}"
                ), RESTORE))  # fmt: skip
            elif state.hashes.get(h.count - 1) != h.head_hash:
                problems.append(Finding(chain, h.count - 1, (
                    f"rewritten: head {h.seq} of the heads chain sealed this record with another hash"
                ), RESTORE))  # fmt: skip
        sealed = max((h.count for h in heads), default=0)
        if state.count > sealed:
            unsealed.add(run_of(chain))
            notes.append(Finding(chain, sealed, (
                f"{state.count - sealed} record(s) after the last head (a run still running, or stopped "
                "without its end); anchors and heads cannot vouch for them"
            )))  # fmt: skip
        _check_anchors(state, heads, wanted_anchors.get(chain, set()), problems)
    for chain in sorted(set(by_chain) - set(walked)):
        if chain_id is None or run_of(chain) == chain_id:
            problems.append(Finding(chain, 0, (
                f"missing: the heads chain seals {by_chain[chain][-1].count} records, none is left"
            ), RESTORE))  # fmt: skip
    for chain in sorted(set(wanted_anchors) - set(walked)):
        if chain_id is None or run_of(chain) == chain_id:
            problems.append(Finding(chain, None, "anchor given, but the chain has no records", RESTORE))
    troubled = {run_of(p.chain_id) for p in problems}
    coverage = _Coverage(sql.trail_began(store), sql.imported(store), problems, notes, unsealed)
    calls: dict[str, Counter[str]] = defaultdict(Counter)  # a run's calls: on its chain and its workers'
    for chain in set(walked) | set(by_chain):
        calls[run_of(chain)].update(walked[chain].ok_calls if chain in walked else {})
    for run in runs:
        if run.run_id in calls:
            if run.run_id not in troubled:
                coverage.check_counts(run, calls[run.run_id])
        else:
            coverage.check_chainless(run)
    if chain_id is None and not records and not all_heads and coverage.missing:
        problems.append(Finding(STORE, None, (
            f"missing: the audit tables hold no record and no head, yet {len(coverage.missing)} run(s) made "
            "calls in this store since its trail began"
        ), "restore audit_records and audit_heads from a backup of the store"))  # fmt: skip
    return Verification(
        records, len(walked), len(all_heads), tuple(problems), tuple(notes),
        tuple(coverage.imported), tuple(coverage.before),
    )  # fmt: skip


@dataclass(slots=True)
class _Coverage:
    """Whether each run's calls are on its chain, given when the trail began and which runs were imported."""

    began: datetime | None
    marks: dict[str, Imported]
    problems: list[Finding]
    notes: list[Finding]
    unsealed: set[str]
    """Runs whose chains hold records after their last head (running, or killed before the seal)."""
    imported: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def _before_trail(self, run: RunCalls) -> bool:
        """Started, and last got an answer, well before the store had audit tables."""
        started = sql.stored_time(run.started_at)
        if self.began is None or started is None:
            return False
        cutoff = self.began - CLOCK_SLACK
        return started < cutoff and (run.last_answer is None or run.last_answer < cutoff)

    def _after_trail(self, run: RunCalls) -> bool:
        """Started once the trail was there: every call it made is on its chain."""
        started = sql.stored_time(run.started_at)
        return self.began is not None and started is not None and started >= self.began - CLOCK_SLACK

    def check_chainless(self, run: RunCalls) -> None:
        """A run with no chain: listed when it is imported or older than the trail, else missing."""
        if not run.calls:
            return  # it made no call (an offline judge re-grading copied answers, a run stopped at once)
        mark = self.marks.get(run.run_id)
        counted = ((run.answers, "answer"), (run.verdicts, "verdict"))
        what = " and ".join(f"{n} {noun}(s)" for n, noun in counted if n) + " came back from calls"
        if mark is not None and mark.how != "unmarked":
            command = "evals import" if mark.how == "import" else "evals store copy"
            self.imported.append(run.run_id)
            self.notes.append(Finding(run.run_id, None, (
                f"imported ({command} from {mark.source or 'elsewhere'}, {mark.at}): {what} in the store it "
                "came from; its trail is there"
            ), of="run"))  # fmt: skip
        elif self._before_trail(run):
            self.before.append(run.run_id)
            began = self.began.isoformat(timespec="seconds") if self.began else "?"
            self.notes.append(Finding(run.run_id, None, (
                f"before the audit trail (started {run.started_at}; the store's trail began {began}): its "
                "calls were not recorded"
            ), of="run"))  # fmt: skip
        elif mark is not None:
            self.imported.append(run.run_id)
            self.notes.append(Finding(run.run_id, None, (
                f"no chain, and already in the store when it began to mark imports ({mark.at}): imported "
                "before then, or its chain deleted before then"
            ), "compare with the store it came from or a backup", of="run"))  # fmt: skip
        else:
            self.missing.append(run.run_id)
            self.problems.append(Finding(run.run_id, None, (
                f"missing: {what} made in this store, but the run has no audit chain and no head (its "
                "records and heads were deleted, or never stored)"
            ), RESTORE, of="run"))  # fmt: skip

    def check_counts(self, run: RunCalls, calls: Counter[str]) -> None:
        """A run made since the trail began, running or killed too: at least one successful model call on its
        chains (its own and its workers') per answer, one judge call per fresh verdict. A result is stored only
        once the records of its calls are (``evals.runner``), and the runs' rows are read before the records,
        so a run still running is behind on neither. An imported run resumed here holds answers its chain
        never saw."""
        if run.run_id in self.marks or not self._after_trail(run):
            return
        how = (
            "records removed from its end, which no head had sealed yet"
            if run.run_id in self.unsealed
            else "records removed and the chain sealed again"
        )
        for role, stored, noun in (("model", run.answers, "answer"), ("judge", run.verdicts, "verdict")):
            if calls[role] < stored:
                what = (
                    f"missing: {stored} {noun}(s) came back from {role} calls, its chain records "
                    f"{calls[role]} successful {role} call(s) ({how})"
                )
                todo = RESTORE + ", and verify with the 'audit head' the run printed (--anchor)"
                self.problems.append(Finding(run.run_id, None, what, todo, of="run"))
