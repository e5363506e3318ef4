"""What the SDK providers share: one client per endpoint, retried calls, closing, and the parts of their
batch APIs (``evals.outbound.providers.batching``) that are alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from evals.config import Endpoint, JudgeEndpoint
from evals.errors import ConfigError
from evals.outbound import audit
from evals.outbound.providers.batching import UPLOAD_TIMEOUT_S, BatchReply
from evals.outbound.providers.health import FAIL_AFTER, FailFast
from evals.outbound.providers.retry import (
    LONE_SURROGATE,
    CallError,
    MalformedResponse,
    NotText,
    SDKErrors,
    call_with_retries,
    describe,
    server_message,
)
from evals.records import Completion, CompletionRequest
from evals.secrets import Scrubber
from evals.userfiles import parse_json

T = TypeVar("T")


class SDKProvider:
    """A ``Provider`` over one SDK client; subclasses say how to build the request and read the reply."""

    errors: SDKErrors
    """The SDK's exception classes, for the retry policy."""
    model_hint: str = "the model name the server serves"

    def __init__(self, name: str, endpoint: Endpoint, fail_after: int = FAIL_AFTER):
        if not endpoint.model:
            raise ConfigError(f"{name!r} has no 'model:' in evals.yaml ({self.model_hint})")
        self.name = name
        self.endpoint = endpoint
        self.max_concurrency = endpoint.max_concurrency
        self._who = f"{'judge' if isinstance(endpoint, JudgeEndpoint) else 'model'} {name!r}"
        self._client = self.make_client(endpoint)  # one per endpoint: its connection pool is reused
        self._secrets = endpoint.secrets()  # the key and a base_url password, scrubbed from error text
        self._scrubber = Scrubber(endpoint.secrets())  # a server may echo the key in any field
        self.health = FailFast(self._who, name, endpoint, fail_after)
        """Stops the run when the first calls all fail the same way."""

    def make_client(self, endpoint: Endpoint) -> Any:
        raise NotImplementedError

    def arguments(self, request: CompletionRequest) -> dict[str, Any]:
        """The SDK call's keyword arguments for ``request``."""
        raise NotImplementedError

    async def attempt(self, arguments: dict[str, Any], request: CompletionRequest) -> Completion:
        """One call, no retry; raises the SDK's errors or ``MalformedResponse``."""
        raise NotImplementedError

    async def complete(self, request: CompletionRequest) -> Completion:
        """One completion, retried on transient failures; ``ProviderError`` when it cannot be had."""
        arguments = self.arguments(request)
        recorded = audit.attempts(self.name, self.endpoint.model)  # each attempt appends an audit record
        try:
            completion = await call_with_retries(
                lambda: recorded(self._whole_attempt(arguments, request)),
                who=self._who,
                attempts=1 + self.endpoint.max_retries,
                errors=self.errors,
                timeout_s=self.endpoint.timeout_s,
                secret=self._secrets,
                give_up=self.health.gives_up,
            )
        except CallError as exc:
            # A refused output format is the judge's to negotiate (json_object, then text), not a failure yet.
            if not (exc.rejects_format and self.negotiable(request)):
                self.health.failed(exc)
            raise
        self.health.succeeded()
        return self._scrubber.completion(completion) if self._scrubber else completion

    async def _whole_attempt(self, arguments: dict[str, Any], request: CompletionRequest) -> Completion:
        """One attempt whose reply is made of whole characters and nested no deeper than a reply can be
        (``MalformedResponse`` otherwise: retried, then an error on record, never a crash)."""
        try:
            completion = await self.attempt(arguments, request)
        except RecursionError:  # the SDK's own JSON parse of a body nested thousands deep
            raise MalformedResponse(f"the reply is nested more than {MAX_REPLY_DEPTH} levels deep") from None
        return whole_characters(completion)

    def negotiable(self, request: CompletionRequest) -> bool:
        """True when a refusal of this request's output format has a fallback (``structured: auto``)."""
        endpoint = self.endpoint
        return (
            request.output_schema is not None
            and isinstance(endpoint, JudgeEndpoint)
            and endpoint.structured == "auto"
        )

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    # -- what the batch APIs share (evals.outbound.providers.batching) ----------------------------------

    def batch_body(self, request: CompletionRequest) -> dict[str, Any]:
        """The request's body as a batch entry carries it: the call's arguments, ``extra_body`` merged in."""
        arguments = self.arguments(request)
        extra = arguments.pop("extra_body", {})
        return {**arguments, **extra}

    async def batch_call(
        self, call: Callable[[], Awaitable[T]], *, record: bool = False, long: bool = False
    ) -> T:
        """One call to the batch API with the endpoint's retries (``CallError`` when it cannot be had);
        ``record``: each attempt is an audit record (an upload carries text out); ``long``: the attempt may
        take ``UPLOAD_TIMEOUT_S`` at least."""
        endpoint = self.endpoint
        recorded = audit.attempts(self.name, endpoint.model) if record else None
        return await call_with_retries(
            (lambda: recorded(call())) if recorded is not None else call,
            who=f"{self._who} (batch API)",
            attempts=1 + endpoint.max_retries,
            errors=self.errors,
            timeout_s=max(endpoint.timeout_s, UPLOAD_TIMEOUT_S) if long else endpoint.timeout_s,
            secret=self._secrets,
        )

    def batch_reply(self, custom_id: str, read: Callable[[], Completion]) -> BatchReply:
        """A batched request's result from ``read()`` (the provider's ``read`` of the reply it holds), made of
        whole characters and scrubbed as an online reply is; a reply that holds no completion is a problem."""
        try:
            completion = whole_characters(read())
        except (MalformedResponse, NotText) as exc:
            return BatchReply(custom_id, None, describe(exc, self.errors))
        return BatchReply(custom_id, self._scrubber.completion(completion) if self._scrubber else completion)

    def batch_problem(self, what: str, body: Any = None) -> str:
        """Why a batched request has no result: ``what`` (``expired``, ``errored``, an HTTP status) and the
        server's explanation in ``body``, without anything key-like."""
        detail = server_message(body, self._secrets)
        return f"{what} ({detail})" if detail else what


def json_object(text: str) -> dict[str, Any] | None:
    """The reply as a JSON object, or None (the judge's fallback parser then reads the text)."""
    try:
        value = parse_json(text)  # depth-limited and duplicate keys refused: the server is untrusted
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


MAX_TOKEN_COUNT = 10**9
"""More tokens than any call could use: a count above it is made up."""


def token_count(value: object) -> int | None:
    """A usage count a server reported, or None when it is no count (negative, fractional, huge, text).

    Kept counts feed the scorecard's cost and ``--max-cost``: a negative one would read as money earned.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if 0 <= value <= MAX_TOKEN_COUNT else None


MAX_REPLY_DEPTH = 200
"""Deeper than any structured reply we ask for (a verdict, a list of items) is, by far; deeper still would
exhaust Python's stack on the way through (``RecursionError``)."""


def _whole(value: Any, depth: int = 0) -> Any:
    if depth > MAX_REPLY_DEPTH:
        raise MalformedResponse(f"the reply is nested more than {MAX_REPLY_DEPTH} levels deep")
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_whole(k, depth + 1): _whole(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v, depth + 1) for v in value]
    return value


def whole_characters(completion: Completion) -> Completion:
    """``completion`` with each lone surrogate (JSON may escape half a pair, ``\\ud800``) made U+FFFD.

    Half a surrogate is no character: it cannot be stored, written as UTF-8 or printed, and would end the
    run at the first write.
    """
    fields = ("text", "data", "model_id", "finish_reason", "reasoning")
    return dataclasses.replace(completion, **{name: _whole(getattr(completion, name)) for name in fields})
