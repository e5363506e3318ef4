"""A provider that redacts what it sends: the model's own call when the model endpoint is external.

The request's turns (the item's question or conversation) are redacted with one mapping, in order, as the
judge redacts them, so the model and the judge see the same placeholders for an item. The reply comes back
with the placeholders mapped to the values again: the stored answer is the local view, and an external
judge gets it redacted afresh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from evals.outbound.providers import Provider
from evals.outbound.redaction import Redactor, record_redactions
from evals.records import Completion, CompletionRequest


class RedactingProvider:
    """Wraps a ``Provider``: every request's message contents are redacted before the call."""

    def __init__(self, inner: Provider, redactor: Redactor):
        self.inner = inner
        self.redactor = redactor
        self.name = inner.name
        self.max_concurrency = inner.max_concurrency

    async def complete(self, request: CompletionRequest) -> Completion:
        redacted = self.redactor.redact([m.get("content") for m in request.messages])
        record_redactions(redacted.counts)
        messages = tuple(
            {**m, "content": t or ""} for m, t in zip(request.messages, redacted.texts, strict=True)
        )
        completion = await self.inner.complete(dataclasses.replace(request, messages=messages))
        return dataclasses.replace(
            completion,
            text=redacted.restore(completion.text) or "",
            data=_restored(completion.data, redacted.restore),
            reasoning=redacted.restore(completion.reasoning),
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def _restored(value: Any, restore: Callable[[str | None], str | None]) -> Any:
    """A structured reply (tool input, json_schema object) with the placeholders in its strings put back."""
    if isinstance(value, str):
        return restore(value)
    if isinstance(value, dict):
        return {k: _restored(v, restore) for k, v in value.items()}
    if isinstance(value, list):
        return [_restored(v, restore) for v in value]
    return value
