"""The gateway: the one door out of the process for every call to a model, judge or generator.

Read this module to know what leaves the process. Callers (the runner, the judge, calibration, probes,
the canary, reruns, references, generation) never hold a provider: they hold a ``Door`` the gateway
opened for one configured endpoint, and every ``Door.complete`` passes, in this order and nowhere else:

a. **refusal**: a request carries the sensitivity of its text (``CompletionRequest.sensitivity``; none
   given counts as the config's ``default_sensitivity``); ``restricted`` text bound for an external
   endpoint raises ``Refused`` before anything is sent;
b. **redaction**: for an external endpoint (unless ``redaction: {enabled: false}``), every turn of the
   request is redacted with one mapping (the run's patterns, the config's ``redaction.patterns`` and the
   built-in recognizers, on normalised text), rubric and document text included; counts go to the call's
   context (``evals.outbound.callcontext``) for the audit record and the store;
c. **budget**: with ``--max-cost``, the call's bound is held (``OverBudget`` when it could cross it);
d. **audit**: no call without an open audit trail (``audit.recording``); each request sent appends one
   record (``evals.outbound.audit.attempts``, inside the provider, one per attempt);
e. **the provider call**, with its retries, within the endpoint's ``max_concurrency`` (shared by every
   caller of that endpoint in this process) and its ``requests_per_minute`` and ``tokens_per_minute``
   (``evals.outbound.fleet``: this process's, or every ``evals worker``'s together, kept in the store);
f. **placeholders restored** in the reply (text, structured data, reasoning), so what is stored and shown
   is the local view.

A vendor's batch (``judging: batch``) passes the same steps per request in ``evals.outbound.batch``, the
gateway's batch side: one door, many requests, one upload.
With ``telemetry:`` set, the provider call (e) is also a span sent to the collector, under the collector's
own rules for text (``evals.outbound.telemetry``).

The gateway is also the one worker pool: ``each`` runs a caller's work with at most the endpoint's
``max_concurrency`` in flight (the runner's pipeline sizes its workers the same way), and ``send`` holds
that limit per endpoint across every caller in the process. Only this package builds providers (an import-linter contract).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from evals.config import Endpoint, JudgeEndpoint, RedactionSettings
from evals.errors import ConfigError
from evals.outbound import audit, telemetry
from evals.outbound.budget import Budget, OverBudget
from evals.outbound.fleet import Limits
from evals.outbound.providers import Provider, build_provider
from evals.outbound.providers.health import FAIL_AFTER, EndpointFailing
from evals.outbound.providers.retry import CallError
from evals.outbound.redaction import CustomPattern, Redactor, combined_patterns, record_redactions
from evals.records import Completion, CompletionRequest, Sensitivity

__all__ = [
    "FAIL_AFTER",
    "CallError",
    "Door",
    "EndpointFailing",
    "Gateway",
    "NoAuditTrail",
    "OverBudget",
    "Refused",
    "each",
]
"""What callers catch, from the one module they import: ``CallError`` (a call that failed after its
retries), ``EndpointFailing`` (stops the run), ``OverBudget``, ``Refused``."""

log = logging.getLogger("evals.outbound.gateway")
T = TypeVar("T")
R = TypeVar("R")


class Refused(ConfigError):
    """Restricted text bound for an external endpoint: nothing was sent."""


class NoAuditTrail(RuntimeError):
    """A call attempted with no audit trail open: a bug in the caller, never sent."""


class Door:
    """One configured endpoint behind the gateway: what a caller holds instead of a provider."""

    def __init__(
        self, gateway: Gateway, name: str, endpoint: Endpoint, provider: Provider, redactor: Redactor | None
    ):
        self.gateway = gateway
        self.name = name
        self.endpoint = endpoint
        self.provider = provider
        self.redactor = redactor
        """Redacts what this door sends (None: the endpoint is inside the perimeter, or redaction is off)."""
        self.max_concurrency = min(endpoint.max_concurrency, gateway.concurrency or endpoint.max_concurrency)
        self._slots: asyncio.Semaphore | None = None

    @property
    def external(self) -> bool:
        return self.endpoint.is_external()

    @property
    def redaction_version(self) -> str | None:
        """What identifies this door's redaction in a judgment's cache key (None: text goes as written)."""
        return self.redactor.version if self.redactor is not None else None

    def slots(self) -> asyncio.Semaphore:
        """The endpoint's ``max_concurrency``, shared by every caller in this event loop."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.max_concurrency))
        return self._slots

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request`` through the gateway (refusal, redaction, budget, audit, call, restore)."""
        return await self.gateway.send(self, request)

    async def aclose(self) -> None:
        await self.gateway.close_door(self)


class Gateway:
    """Opens doors to configured endpoints and passes every call through the perimeter's steps.

    ``redaction``: the config's settings (patterns for every call included); ``patterns``: the run's own
    (a suite's ``redact:``); ``budget``: ``--max-cost``, kept across every door; ``default_sensitivity``:
    the level of a request that carries none; ``fail_after``: a door's endpoint stops the run when this
    many first calls all fail the same way (0: never); ``limits``: the endpoints' rate limits (and, for an
    ``evals worker``, their fleet-wide slots); ``concurrency``: the most calls in flight to any one
    endpoint from this process, below its ``max_concurrency`` (``--workers-concurrency``).
    """

    def __init__(
        self,
        redaction: RedactionSettings | None = None,
        patterns: Sequence[CustomPattern] = (),
        budget: Budget | None = None,
        default_sensitivity: Sensitivity = "internal",
        fail_after: int = FAIL_AFTER,
        limits: Limits | None = None,
        concurrency: int | None = None,
    ):
        self.settings = redaction or RedactionSettings()
        self.limits = limits or Limits()
        self.concurrency = concurrency
        # The config's patterns (every call) and the run's (a suite's): a name given twice differently is a
        # ConfigError here, before anything is sent.
        self.patterns = tuple(combined_patterns(self.settings.patterns, patterns))
        self.budget = budget
        self.default_sensitivity: Sensitivity = default_sensitivity
        self.fail_after = fail_after
        self._doors: list[Door] = []
        self._redactor: Redactor | None = None
        telemetry.adopt(self.patterns)  # what the collector's text is redacted with, too

    # -- doors --------------------------------------------------------------------------------------------

    def door(self, name: str, endpoint: Endpoint) -> Door:
        """The door to ``endpoint`` (named ``name`` in evals.yaml), its client built once and its key checked."""
        for held in self._doors:  # a model and a judge may share a name: the endpoint tells them apart
            if held.name == name and held.endpoint == endpoint:
                return held
        provider = build_provider(name, endpoint, self.fail_after)
        door = Door(self, name, endpoint, provider, self.redactor_for(endpoint))
        self._doors.append(door)
        return door

    def redactor_for(self, endpoint: Endpoint) -> Redactor | None:
        """The redactor of calls to ``endpoint``: one when it is external and redaction is on, else None."""
        if not endpoint.is_external():
            return None
        if not self.settings.enabled:
            return None
        if self._redactor is None:
            self._redactor = Redactor(self.patterns, self.settings.ner_model)
            if self._redactor.note:
                log.warning("redaction: %s", self._redactor.note)
        return self._redactor

    def snapshot(self, doors: Iterable[tuple[str, Endpoint]]) -> dict[str, Any]:
        """``redaction`` in a run's config snapshot: where text went, and how it was redacted."""
        doors = list(doors)
        external = any(e.is_external() for _, e in doors)
        data: dict[str, Any] = {"enabled": self.settings.enabled}
        redactor = next((r for _, e in doors if (r := self.redactor_for(e)) is not None), None)
        if external:
            data["status"] = "redacted" if redactor is not None else "not redacted"
            if redactor is None:
                log.warning(
                    "redaction is disabled (redaction: {enabled: false}): external endpoints get text as written"
                )
        else:
            data["status"] = "not needed"
        if redactor is not None:
            data.update(redactor.snapshot())
        return data

    async def close_door(self, door: Door) -> None:
        """Close ``door``'s connections (once: a door already closed is left alone)."""
        if door in self._doors:
            self._doors.remove(door)
            await door.provider.aclose()

    async def aclose(self) -> None:
        """Close every open door's connections."""
        for door in list(self._doors):
            await self.close_door(door)

    # -- the call -----------------------------------------------------------------------------------------

    def check(self, door: Door, sensitivity: Sensitivity | None) -> None:
        """Refuse ``restricted`` text bound for an external door (``Refused``), before any call."""
        level = sensitivity or self.default_sensitivity
        if level == "restricted" and door.external:
            why = (
                "the text is restricted" if sensitivity else "default_sensitivity is restricted in evals.yaml"
            )
            judge = isinstance(door.endpoint, JudgeEndpoint)
            inhouse = ", or name an in-house judge (restricted_judge)" if judge else ""
            raise Refused(
                f"{why} and {door.name!r} is an external endpoint: nothing was sent. Keep restricted text on "
                f"endpoints inside the perimeter (external: false, loopback or internal_hosts){inhouse}"
            )

    async def send(self, door: Door, request: CompletionRequest) -> Completion:
        """One call through every step of the perimeter (see the module's docstring)."""
        self.check(door, request.sensitivity)  # a
        if not audit.is_recording():  # d, before anything is held or sent
            raise NoAuditTrail(f"a call to {door.name!r} was attempted with no audit trail open")
        redacted, local = None, request
        if door.redactor is not None:  # b
            redacted = door.redactor.redact([m.get("content") for m in request.messages])
            record_redactions(redacted.counts)
            messages = tuple(
                {**m, "content": t or ""} for m, t in zip(request.messages, redacted.texts, strict=True)
            )
            request = dataclasses.replace(request, messages=messages)
        held = 0.0
        if self.budget is not None:  # c
            held = self.budget.hold(
                door.name, request.messages, answering=not isinstance(door.endpoint, JudgeEndpoint)
            )
        try:
            async with door.slots(), self.limits.call(door.endpoint, request) as usage:
                call = door.provider.complete(request)  # d (per attempt) and e
                restore = redacted.restore if redacted is not None else None
                completion = await telemetry.traced(door, local, call, restore, self.patterns)
                usage.completion = completion
        except BaseException:
            if self.budget is not None:
                self.budget.settle(held, door.name, None, None, failed=True)
            raise
        if self.budget is not None:
            self.budget.settle(held, door.name, completion.tokens_in, completion.tokens_out, failed=False)
        if redacted is None or not redacted.mapping:
            return completion
        return dataclasses.replace(  # f
            completion,
            text=redacted.restore(completion.text) or "",
            data=restored_data(completion.data, redacted.restore),
            reasoning=redacted.restore(completion.reasoning),
        )


async def each(work: Iterable[T], fn: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """``fn`` over ``work`` with at most ``limit`` in flight (a door's ``max_concurrency``; the endpoint's
    own limit holds in ``Gateway.send`` too); results in the order of ``work``. The first exception (an
    interrupt, a failing endpoint) cancels the rest and is raised. The one worker pool for callers outside
    the runner's pipeline: calibration, probes, the canary, references, generation.
    """
    jobs = list(work)
    results: list[Any] = [None] * len(jobs)
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        for index, job in queue:  # one iterator shared by the workers: each job is taken once
            results[index] = await fn(job)

    workers = [asyncio.create_task(worker()) for _ in range(min(max(1, limit), len(jobs)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results


def restored_data(value: Any, restore: Callable[[str | None], str | None]) -> Any:
    """A structured reply (tool input, json_schema object) with the placeholders in its strings put back."""
    if isinstance(value, str):
        return restore(value)
    if isinstance(value, dict):
        return {k: restored_data(v, restore) for k, v in value.items()}
    if isinstance(value, list):
        return [restored_data(v, restore) for v in value]
    return value
