"""The gateway's batch side: many requests to one door sent as a vendor's batch (``judging: batch``).

Every request of a batch passes the perimeter's steps as ``Gateway.send`` passes an online call, in the
same order, before anything is uploaded:

a. **refusal**: ``restricted`` text bound for an external door raises ``Refused`` (``Gateway.check``);
b. **redaction**: the request's turns redacted with one mapping of its own, its counts added to the call
   context it is prepared in (``prepare``);
c. **budget**: its bound held at the batch rate (the judge's ``batch_discount``);
d. **audit**: the upload is recorded as any call (one record per attempt, the SHA-256 of the bytes sent);
   once the vendor accepted the batch, each request in it gets one record of kind ``batched``: its run,
   item, sample and role, the SHA-256 of its line as submitted (the RFC 8785 JSON of its entry), its
   redaction counts, the batch id and its custom id;
e. **the upload**, in chunks within the vendor's limits (``chunks``), with the endpoint's retries;
f. **placeholders restored** in each result (``collect``), and the budget settled at the batch rate.

A request prepared again after a restart (``prepare(..., again=True)``: no hold, no counts) gets the same
line, because redaction is deterministic; its result is restored only when the line's SHA-256 is the one
stored at submission, so a changed redactor never pairs a reply with another mapping.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from evals.config import JudgeEndpoint
from evals.errors import ConfigError
from evals.outbound import audit
from evals.outbound.callcontext import CallContext, current
from evals.outbound.gateway import Door, NoAuditTrail, restored_data
from evals.outbound.providers.batching import Batching, BatchLimits, BatchState
from evals.outbound.redaction import Redacted, record_redactions
from evals.records import Completion, CompletionRequest

__all__ = ["BatchState", "Prepared", "batching", "chunks", "collect", "prepare", "release", "state", "submit"]

MISSING = "no result in the batch"
"""Why a request of an ended batch has no reply when the vendor's results leave it out."""


@dataclass
class Prepared:
    """One request ready to go into a batch: as the vendor gets it, and what brings its reply back."""

    custom_id: str
    request: CompletionRequest
    """As sent: redacted."""
    entry: dict[str, Any]
    """The vendor's batch entry for it."""
    line: bytes
    """The entry as RFC 8785 JSON: the line of an OpenAI upload, and what its audit record hashes."""
    sha256: str
    redacted: Redacted | None
    """Its redaction (None: the door redacts nothing): restores the placeholders in its reply."""
    held: float = 0.0
    """The budget held for it, at the batch rate."""
    context: CallContext | None = None
    """The call context it was prepared in (run, item, sample, role), for its audit record."""


def batching(door: Door) -> Batching:
    """The door's provider as a batch API (``ConfigError`` when its vendor has none)."""
    provider = door.provider
    if not all(hasattr(provider, name) for name in ("batch_entry", "submit_batch", "batch_results")):
        raise ConfigError(
            f"judge {door.name!r}: its provider has no batch API; set judging: online in evals.yaml"
        )
    return cast(Batching, provider)


def discount(door: Door) -> float:
    """The share of the door's token prices a batched request costs."""
    endpoint = door.endpoint
    return endpoint.batch_discount if isinstance(endpoint, JudgeEndpoint) else 1.0


def prepare(door: Door, custom_id: str, request: CompletionRequest, *, again: bool = False) -> Prepared:
    """``request`` through refusal, redaction and the budget, as a batch entry (see the module's docstring).

    ``again``: the request of a batch submitted earlier, prepared to read its reply: nothing is held and
    no redaction is counted a second time."""
    gateway = door.gateway
    gateway.check(door, request.sensitivity)  # a
    if not again and not audit.is_recording():  # d, before anything is held
        raise NoAuditTrail(f"a batch to {door.name!r} was prepared with no audit trail open")
    redacted = None
    if door.redactor is not None:  # b
        redacted = door.redactor.redact([m.get("content") for m in request.messages])
        if not again:
            record_redactions(redacted.counts)
        messages = tuple(
            {**m, "content": t or ""} for m, t in zip(request.messages, redacted.texts, strict=True)
        )
        request = dataclasses.replace(request, messages=messages)
    held = 0.0
    if gateway.budget is not None and not again:  # c
        held = gateway.budget.hold(door.name, request.messages, answering=False, rate=discount(door))
    entry = batching(door).batch_entry(custom_id, request)
    line = audit.canonical(entry)
    context = current()
    frozen = dataclasses.replace(context, redactions=dict(context.redactions)) if context else None
    return Prepared(custom_id, request, entry, line, hashlib.sha256(line).hexdigest(), redacted, held, frozen)


def chunks(prepared: Sequence[Prepared], limits: BatchLimits) -> Iterator[list[Prepared]]:
    """``prepared`` cut into batches the vendor accepts: at most ``limits.requests`` requests and
    ``limits.bytes`` bytes of lines each, in order."""
    chunk: list[Prepared] = []
    size = 0
    for one in prepared:
        if chunk and (len(chunk) >= limits.requests or size + len(one.line) + 1 > limits.bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(one)
        size += len(one.line) + 1
    if chunk:
        yield chunk


async def submit(door: Door, chunk: Sequence[Prepared]) -> str:
    """Upload ``chunk`` as one batch (e); the vendor's batch id. Each request then gets its audit record
    (d). ``CallError`` when the upload failed for good (the holds are released)."""
    provider = batching(door)
    try:
        batch_id = await provider.submit_batch([p.entry for p in chunk], [p.line for p in chunk])
    except BaseException:
        release(door, chunk)
        raise
    for p in chunk:
        details = {"batch_id": batch_id, "custom_id": p.custom_id}
        audit.record_batched(door.name, door.endpoint.model, p.sha256, p.context, details)
    return batch_id


async def state(door: Door, batch_id: str) -> BatchState:
    """The batch's state now (``CallError`` when the vendor cannot be asked)."""
    return await batching(door).batch_state(batch_id)


async def collect(door: Door, batch_id: str, prepared: Sequence[Prepared]) -> dict[str, Completion | str]:
    """The reply to each of ``prepared`` in an ended batch, by custom id, with its placeholders restored
    (f); or why there is none (``expired``, ``errored (...)``, ``no result in the batch``). The budget is
    settled for each, at the batch rate."""
    requests = {p.custom_id: p.request for p in prepared}
    replies = {r.custom_id: r for r in await batching(door).batch_results(batch_id, requests)}
    budget, rate = door.gateway.budget, discount(door)
    found: dict[str, Completion | str] = {}
    for p in prepared:
        reply = replies.get(p.custom_id)
        completion = reply.completion if reply is not None else None
        if budget is not None:
            tokens = (completion.tokens_in, completion.tokens_out) if completion else (None, None)
            budget.settle(p.held, door.name, *tokens, failed=completion is None, rate=rate)
        if completion is None:
            found[p.custom_id] = (reply.problem or MISSING) if reply is not None else MISSING
            continue
        if p.redacted is not None and p.redacted.mapping:
            completion = dataclasses.replace(
                completion,
                text=p.redacted.restore(completion.text) or "",
                data=restored_data(completion.data, p.redacted.restore),
                reasoning=p.redacted.restore(completion.reasoning),
            )
        found[p.custom_id] = completion
    return found


def release(door: Door, prepared: Sequence[Prepared]) -> None:
    """Release the budget held for requests that will not be sent."""
    budget = door.gateway.budget
    if budget is None:
        return
    for p in prepared:
        budget.settle(p.held, door.name, None, None, failed=True)
        p.held = 0.0
