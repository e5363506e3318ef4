"""The audit trail: every outbound call to a model endpoint appends a record to a hash chain in the store.

A record says when a request went out, for which run, item, sample and role (``evals.outbound.callcontext``), to
which endpoint (name, URL without credentials, model), the SHA-256 of exactly the bytes of the HTTP request
body that went out, what redaction replaced in it (counts by kind), how it ended (``ok``, the HTTP status,
or the error's class) and which attempt it was (a retry is a call too). Nothing else: no text, no key.

A batch (``judging: batch``) is an upload, recorded as any call, and one record of kind ``batched`` per
request in it, with the SHA-256 of that request's line as submitted (its RFC 8785 JSON), the batch id and
its custom id (``record_batched``).

Chains. One per run (chain id = run id), so concurrent runs never wait on each other; a run worked by
several ``evals worker`` processes has one chain per worker (``<run id>@<worker id>``: ``worker_chain``),
which the run's own chain names with their heads when the run is finished; calls without a run
(calibration, probes) get a chain per session, ``<role>-<YYYYmmddTHHMMSSZ>``; non-call events (a purge) go
to the chain ``events``. Record n stores ``prev_hash`` (record n-1's ``hash``, or ``GENESIS`` for n = 0)
and ``hash = sha256(prev_hash || JCS(fields))``: the 64 lowercase hex characters of ``prev_hash`` as ASCII,
then the RFC 8785 canonical JSON of the record's fields (every column but ``prev_hash`` and ``hash``, the
two JSON columns as objects). When a run ends (also when interrupted) its chain's head hash and record
count are appended to ``audit_heads``, a chain of its own built the same way, so a rewritten tail no
longer matches its head; the run prints the head, so a CI log keeps an anchor outside the store (a resumed
run seals again: each of its heads is an anchor).

How it is hooked in: each provider builds its SDK client on an ``httpx`` client whose request hook
(``EVENT_HOOKS``) hashes the body as it goes out, and wraps each attempt in ``attempts(...)``, which hands
the finished record to the active ``recording(store)`` (a ``ContextVar``; nothing is recorded outside one).
Records go to the store through one writer thread, in the order the calls ended, without holding up the
calls; ``flush`` waits for it (the runner stores an answer or verdict only once the records of its calls
are stored, so a process killed at any moment leaves no result whose call is not on the trail);
``recording`` flushes it and seals the chains when it ends, however it ends. ``evals.outbound.audit_verify``
checks everything; ``evals docs audit`` says how to recompute it with other tools.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import queue
import threading
import urllib.parse
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import rfc8785

from evals.errors import StoreError
from evals.outbound.callcontext import CallContext, current
from evals.secrets import safe_url
from evals.store import audit as sql
from evals.store.audit import WORKER_MARK, HeadRow, RecordRow
from evals.store.core import Store

log = logging.getLogger("evals.outbound.audit")
T = TypeVar("T")

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record of every chain, and of the first head."""
EVENTS_CHAIN = "events"
"""The chain of non-call events (``record_event``): purges and the like."""
CALL = "call"
"""The ``kind`` of a record of an outbound call."""
BATCHED = "batched"
"""The ``kind`` of a record of one request sent inside a batch upload (``evals.outbound.batch``): the
upload itself is a ``call``; each request in it gets one of these once the vendor accepted the batch."""
_APPEND_TRIES = 5
WORKERS = "workers"
"""The ``kind`` of the record on a run's chain that names its workers' chains and their heads."""


def worker_chain(run_id: str, worker: str) -> str:
    """The chain of one ``evals worker``'s calls for a run."""
    return f"{run_id}{WORKER_MARK}{worker}"


def run_of(chain_id: str) -> str:
    """The run a chain belongs to: the run's own chain or one of its workers' (else the chain itself)."""
    return chain_id.split(WORKER_MARK, 1)[0]


_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when ``value`` holds only text, safe integers, booleans, null, lists and ASCII-keyed objects:
    then ``json.dumps`` with sorted keys writes exactly RFC 8785's bytes (same escapes, lowercase ``\\u00xx``;
    JCS sorts keys by UTF-16 unit, which for ASCII keys is Python's order). Floats and other keys are not."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return -_SAFE_INT <= value <= _SAFE_INT
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(v) for k, v in value.items())
    return False


def canonical(fields: dict[str, Any]) -> bytes:
    """The RFC 8785 (JCS) canonical JSON of ``fields``: sorted keys, no spaces, UTF-8, ES6 numbers.

    The ``rfc8785`` library writes it; records made only of text and integers (every call record) take
    the standard library's byte-identical path, several times faster (``tests/test_audit.py`` checks both
    agree)."""
    if _plain(fields):
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return rfc8785.dumps(fields)


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """``sha256(prev_hash || JCS(fields))`` as 64 lowercase hex characters."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(fields)).hexdigest()


def now() -> str:
    """UTC time with microseconds, ISO 8601 (``2026-11-30T18:30:00.123456+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Entry:
    """What a record says, before the chain gives it a place (``seq``) and hashes."""

    kind: str
    at: str
    run_id: str | None = None
    item_id: str | None = None
    sample: int | None = None
    role: str | None = None
    endpoint: str | None = None
    url: str | None = None
    model: str | None = None
    sha256: str | None = None
    redactions: dict[str, int] = field(default_factory=dict)
    status: str | None = None
    attempt: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def record_fields(row: RecordRow) -> dict[str, Any]:
    """The hashed fields of a stored record: every column but ``prev_hash`` and ``hash``."""
    return {
        "chain_id": row.chain_id, "seq": row.seq, "at": row.at, "kind": row.kind, "run_id": row.run_id,
        "item_id": row.item_id, "sample": row.sample, "role": row.role, "endpoint": row.endpoint,
        "url": row.url, "model": row.model, "sha256": row.sha256, "redactions": row.redactions,
        "status": row.status, "attempt": row.attempt, "details": row.details,
    }  # fmt: skip


def head_fields(row: HeadRow) -> dict[str, Any]:
    """The hashed fields of a heads-chain entry: every column but ``prev_hash`` and ``hash``."""
    return {
        "seq": row.seq,
        "chain_id": row.chain_id,
        "head_hash": row.head_hash,
        "count": row.count,
        "at": row.at,
    }


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _chain_lock(chain_id: str) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(chain_id, threading.Lock())


def append(store: Store, chain_id: str, entry: Entry) -> RecordRow:
    """Append ``entry`` to ``chain_id`` and return the stored record.

    A per-chain lock orders this process's appends; the primary key ``(chain_id, seq)`` refuses a second
    record at a taken place, and the append then retries after the new tail (another process's event).
    """
    redactions = canonical(dict(entry.redactions)).decode()
    details = canonical(dict(entry.details)).decode()  # a value JSON cannot hold fails here, not at verify
    with _chain_lock(chain_id):
        for attempt in range(_APPEND_TRIES):
            last = sql.tail(store, chain_id)
            seq, prev = (0, GENESIS) if last is None else (last[0] + 1, last[1])
            draft = RecordRow(
                chain_id, seq, entry.at, entry.kind, entry.run_id, entry.item_id, entry.sample, entry.role,
                entry.endpoint, entry.url, entry.model, entry.sha256, redactions, entry.status, entry.attempt,
                details, prev, "",
            )  # fmt: skip
            row = dataclasses.replace(draft, hash=chain_hash(prev, record_fields(draft)))
            try:
                sql.insert_record(store, row)
            except Exception as exc:
                if not store.backend.is_error(exc) or attempt == _APPEND_TRIES - 1:
                    raise
                continue
            return row
    raise AssertionError("unreachable")  # pragma: no cover


def seal(store: Store, chain_id: str) -> HeadRow | None:
    """Append the chain's head (hash and count) to the heads chain; None for an empty chain. Nothing is
    appended when the newest head of this chain already says the same."""
    with sql.heads_locked(store):
        last = sql.tail(store, chain_id)
        if last is None:
            return None
        count, head_hash = last[0] + 1, last[1]
        mine = sql.last_head(store, chain_id)
        if mine is not None and (mine.count, mine.head_hash) == (count, head_hash):
            return mine
        newest = sql.last_head(store)
        seq, prev = (0, GENESIS) if newest is None else (newest.seq + 1, newest.hash)
        draft = HeadRow(seq, chain_id, head_hash, count, now(), prev, "")
        row = dataclasses.replace(draft, hash=chain_hash(prev, head_fields(draft)))
        sql.insert_head(store, row)
        return row


def seal_workers(store: Store, run_id: str) -> HeadRow | None:
    """Seal the chain of every worker of a run (a killed one's too), name them with their heads in a record
    on the run's own chain, and seal that: the run's head then vouches for every call of its workers. Done
    by the worker that finishes the run; doing it again adds a record naming the same heads."""
    named = []
    for chain in sql.worker_chains(store, run_id):
        sealed = seal(store, chain)
        if sealed is not None:
            named.append({"chain": chain, "head": sealed.head_hash, "count": sealed.count})
    if not named:
        return seal(store, run_id)
    append(store, run_id, Entry(kind=WORKERS, at=now(), run_id=run_id, details={"workers": named}))
    return seal(store, run_id)


def head(store: Store, chain_id: str) -> tuple[str, int] | None:
    """A chain's head hash and record count, or None when it has no records (what a run prints)."""
    last = sql.tail(store, chain_id)
    return None if last is None else (last[1], last[0] + 1)


def audit_line(store: Store, chain_id: str) -> str:
    """``audit head: <hash> (N records)``: the line a run prints, for a CI log to keep as an anchor. It is
    the chain's newest sealed head (``evals audit verify --anchor`` accepts nothing else), which is its last
    record once the run has ended; records after it (a seal that failed) are counted apart."""
    found = head(store, chain_id)
    if found is None:
        return "audit head: none (no outbound call recorded)"
    sealed = sql.last_head(store, chain_id)
    if sealed is None:
        return f"audit head: none sealed ({found[1]} record{'s' if found[1] != 1 else ''} not sealed)"
    line = f"audit head: {sealed.head_hash} ({sealed.count} record{'s' if sealed.count != 1 else ''})"
    later = found[1] - sealed.count
    return line if later <= 0 else f"{line}; {later} later record(s) not sealed"


def record_event(store: Store, kind: str, details: dict[str, Any]) -> RecordRow:
    """Record a non-call event (``kind`` e.g. ``purge``, ``details`` any JSON object) in the ``events`` chain,
    and seal it at once, so the heads chain covers it. ``details`` must hold no secret and no data text."""
    if kind == CALL:
        raise ValueError(f"{CALL!r} is the kind of outbound calls; name the event")
    row = append(store, EVENTS_CHAIN, Entry(kind=kind, at=now(), details=details))
    seal(store, EVENTS_CHAIN)
    return row


# ------------------------------------------------------------------------------------------ recording


class AuditTrail:
    """Writes the records of one ``recording`` block to the store in submission order: in place on a store
    whose statements take microseconds (``Store.inline``: SQLite), else from a writer thread."""

    def __init__(self, store: Store, route: dict[str, str] | None = None):
        self.store = store
        self.route = dict(route or {})
        """Run id → the chain its calls go to instead of the run's own (a worker's chain)."""
        self.session = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        """Names the chain of calls made without a run: ``<role>-<session>``."""
        self.chains: set[str] = set()
        """Chains this trail appended to."""
        self.failures = 0
        self.first_failure: str | None = None
        self._queue: queue.SimpleQueue[Entry | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if not store.inline:
            self._thread = threading.Thread(target=self._drain, name="evals-audit", daemon=True)
            self._thread.start()

    def chain_of(self, entry: Entry) -> str:
        """The chain an entry belongs to: its run, else a chain for its role in this session."""
        if entry.run_id:
            return self.route.get(entry.run_id, entry.run_id)
        return f"{entry.role or 'call'}-{self.session}"

    def submit(self, entry: Entry) -> None:
        """Store a record in place (an inline store), or queue it for the writer thread: either way the
        event loop waits for no round trip to a server."""
        if self._thread is None:
            self._write(entry)
        else:
            self._queue.put(entry)

    def flush(self) -> None:
        """Wait until every record queued so far is stored (or failed). Blocks: call it from a thread."""
        if self._thread is not None and self._thread.is_alive():
            written = threading.Event()
            self._queue.put(written)
            written.wait()

    def _drain(self) -> None:
        while (entry := self._queue.get()) is not None:
            if isinstance(entry, threading.Event):
                entry.set()
            else:
                self._write(entry)

    def _write(self, entry: Entry) -> None:
        chain = self.chain_of(entry)
        try:
            append(self.store, chain, entry)
            self.chains.add(chain)
        except Exception as exc:  # kept going: the calls go on, and the block's end reports it
            self.failures += 1
            if self.first_failure is None:
                self.first_failure = f"{type(exc).__name__}: {exc}"
                log.error("audit: a record of chain %s could not be stored: %s", chain, self.first_failure)

    def close(self) -> None:
        """Write everything queued, then stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()


_SINK: ContextVar[AuditTrail | None] = ContextVar("evals_audit_trail", default=None)


def is_recording() -> bool:
    """True inside a ``recording`` block: an outbound call made here goes on the audit trail."""
    return _SINK.get() is not None


def flush() -> None:
    """Wait until the records of every call made so far in this context are stored (blocks: from a thread,
    ``asyncio.to_thread`` carries the context); nothing outside a ``recording`` block."""
    trail = _SINK.get()
    if trail is not None:
        trail.flush()


@contextmanager
def recording(
    store: Store, chains: Iterable[str] = (), route: dict[str, str] | None = None
) -> Iterator[AuditTrail]:
    """Record every outbound call made inside the block (in this context and the tasks it starts) in
    ``store``; at the end, however it ends, write what is queued and seal every chain appended to, and
    ``chains`` (a run's, so that a resumed run killed earlier gets its head). ``route``: run id → the
    chain its calls go to (an ``evals worker``'s own). Records that could not be stored make it a
    ``StoreError`` once the block ends normally."""
    trail = AuditTrail(store, route)
    token = _SINK.set(trail)
    try:
        yield trail
    except BaseException:
        _SINK.reset(token)
        _finish(trail, chains, quiet=True)
        raise
    _SINK.reset(token)
    _finish(trail, chains, quiet=False)
    if trail.failures:
        raise StoreError(
            f"{trail.failures} audit record(s) could not be stored in {store.path} ({trail.first_failure})"
        )


def _finish(trail: AuditTrail, chains: Iterable[str], quiet: bool) -> None:
    trail.close()
    for chain in sorted(trail.chains | set(chains)):
        try:
            seal(trail.store, chain)
        except Exception as exc:
            if not quiet:
                raise
            log.error("audit: chain %s could not be sealed: %s: %s", chain, type(exc).__name__, exc)


@dataclass(slots=True)
class _Sent:
    """Filled by the HTTP client's request hook during one attempt."""

    at: str | None = None
    url: str | None = None
    sha256: str | None = None


_SENT: ContextVar[_Sent | None] = ContextVar("evals_audit_sent", default=None)


def _where(url: str) -> str | None:
    """Scheme, host and path of a request URL: no credentials, no query string."""
    parts = urllib.parse.urlsplit(url)
    return safe_url(urllib.parse.urlunsplit(parts._replace(query="", fragment="")))


async def _on_request(request: Any) -> None:
    """The HTTP client's request hook: the SHA-256 of the body exactly as it goes out, and where to."""
    sent = _SENT.get()
    if sent is None:
        return  # not a recorded attempt (a health check, a model list)
    try:
        body = request.content
    except Exception:  # a streamed body not read yet
        body = await request.aread()
    sent.at, sent.url, sent.sha256 = now(), _where(str(request.url)), hashlib.sha256(body).hexdigest()


EVENT_HOOKS: dict[str, list[Any]] = {"request": [_on_request]}
"""Pass as ``event_hooks`` to the SDK's ``DefaultAsyncHttpxClient`` (keeps the SDK's limits and timeouts)."""


class Attempts:
    """Numbers the attempts of one call and records each that sent a request (``attempts(...)``)."""

    def __init__(self, endpoint: str, model: str | None):
        self.endpoint = endpoint
        self.model = model
        self.count = 0

    async def __call__(self, call: Awaitable[T]) -> T:
        """Await one attempt; record it in the active trail if a request went out."""
        self.count += 1
        trail = _SINK.get()
        if trail is None:
            return await call
        sent = _Sent()
        token = _SENT.set(sent)
        status = "ok"
        try:
            return await call
        except asyncio.CancelledError:
            status = "cancelled"  # its timeout, or the run was interrupted
            raise
        except BaseException as exc:
            code = getattr(exc, "status_code", None)
            status = str(code) if isinstance(code, int) else type(exc).__name__
            raise
        finally:
            _SENT.reset(token)
            if sent.sha256 is not None:
                context = current()
                trail.submit(
                    Entry(
                        kind=CALL, at=sent.at or now(),
                        run_id=context.run_id if context else None,
                        item_id=context.item_id if context else None,
                        sample=context.sample if context else None,
                        role=context.role if context else None,
                        endpoint=self.endpoint, url=sent.url, model=self.model, sha256=sent.sha256,
                        redactions=dict(context.redactions) if context else {},
                        status=status, attempt=self.count,
                    )
                )  # fmt: skip


def record_batched(
    endpoint: str, model: str | None, sha256: str, context: CallContext | None, details: dict[str, Any]
) -> None:
    """Record one request sent inside a batch the vendor accepted: ``sha256`` of its line as submitted,
    ``context`` the call context it was prepared in (run, item, sample, role, redactions), ``details`` the
    batch id and custom id. Outside a ``recording`` block it is a bug, and nothing was sent in the first place."""
    trail = _SINK.get()
    if trail is None:
        raise RuntimeError(f"a batch to {endpoint!r} was sent with no audit trail open")
    trail.submit(
        Entry(
            kind=BATCHED, at=now(), run_id=context.run_id if context else None,
            item_id=context.item_id if context else None, sample=context.sample if context else None,
            role=context.role if context else None, endpoint=endpoint, model=model, sha256=sha256,
            redactions=dict(context.redactions) if context else {}, status="ok", attempt=1, details=details,
        )
    )  # fmt: skip


def attempts(endpoint: str, model: str | None) -> Attempts:
    """A recorder for the attempts of one call to ``endpoint`` (its name in evals.yaml) serving ``model``."""
    return Attempts(endpoint, model)
