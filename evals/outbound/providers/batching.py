"""What the vendors' batch APIs share: their limits, a batch's state, one request's result, and the calls.

Anthropic's Message Batches API and OpenAI's Batch API both take many requests at once, answer within 24
hours at half the price, and hand back one result per request, matched by the request's ``custom_id``.
A provider that speaks one (``AnthropicProvider``, ``OpenAIProvider``) offers ``Batching``; the gateway's
batch side (``evals.outbound.batch``) is its only caller. This module imports neither SDK.

Every call to a batch API is retried like an online call (``call_with_retries``); the uploads are on the
audit trail, one record per attempt, as every request that carries text out is. Polls and result downloads
send no text and are not recorded (as health checks are not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from evals.records import Completion, CompletionRequest

UPLOAD_TIMEOUT_S = 600.0
"""The least time an upload or a download of results may take (files reach hundreds of megabytes)."""


@dataclass(frozen=True)
class BatchLimits:
    """The most one batch of a vendor may hold."""

    requests: int
    bytes: int
    """Of the requests as uploaded (a margin is kept below the vendor's figure)."""


@dataclass(frozen=True)
class BatchState:
    """A submitted batch as the vendor describes it now."""

    ended: bool
    """True once the vendor processes nothing more in it (completed, expired, cancelled or failed)."""
    status: str
    """The vendor's word for it (``in_progress``, ``ended``, ``finalizing``, ``expired``...)."""
    total: int
    done: int
    """Requests the vendor says are processed (Anthropic counts them only once the batch has ended)."""
    failed: str | None = None
    """Why the whole batch failed (OpenAI ``failed``: nothing in it was answered); None otherwise."""


@dataclass(frozen=True)
class BatchReply:
    """One request's result in a batch: a completion, or why there is none."""

    custom_id: str
    completion: Completion | None
    problem: str | None = None
    """``expired``, ``canceled``, ``errored (invalid_request_error: ...)``, ``malformed response ...``."""


class Batching(Protocol):
    """A provider that can send many requests through its vendor's batch API."""

    name: str
    vendor: str
    """``anthropic`` or ``openai``."""
    batch_limits: BatchLimits

    def batch_entry(self, custom_id: str, request: CompletionRequest) -> dict[str, Any]:
        """The request as one entry of a batch (``{"custom_id", "params"}``, ``{"custom_id", "body", ...}``)."""
        ...

    async def submit_batch(self, entries: Sequence[dict[str, Any]], lines: Sequence[bytes]) -> str:
        """Upload ``entries`` (``lines``: each as canonical JSON bytes) as one batch; the vendor's batch id."""
        ...

    async def batch_state(self, batch_id: str) -> BatchState:
        """The batch's state now."""
        ...

    async def batch_results(self, batch_id: str, requests: dict[str, CompletionRequest]) -> list[BatchReply]:
        """The result of each request of an ended batch that is in ``requests`` (by custom id); requests the
        vendor gave no result for are left out."""
        ...
