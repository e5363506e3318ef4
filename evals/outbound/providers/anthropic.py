"""Claude through the ``anthropic`` SDK.

System turns go to the ``system`` parameter (the Messages API has no system role). Structured output is
a forced tool call: the schema is the tool's ``input_schema`` and the tool's input is the object (in
``json_object`` mode there is no tool: the prompt describes the schema and the text reply is parsed). A
reply that calls a tool when none was offered is an error, not an answer.
Sampling settings (``temperature``, ``top_p``, ``seed``) are not sent: the API version this SDK speaks
has none. A judge's ``temperature`` therefore only applies to OpenAI-compatible judges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from anthropic import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncAnthropic,
    DefaultAsyncHttpxClient,
)
from anthropic.types import Message
from anthropic.types.messages import MessageBatch

from evals.config import Endpoint
from evals.errors import ConfigError
from evals.outbound import audit
from evals.outbound.providers.base import SDKProvider, json_object, token_count
from evals.outbound.providers.batching import BatchLimits, BatchReply, BatchState
from evals.outbound.providers.retry import TOOL_CALL, MalformedResponse, NotText, SDKErrors, elapsed_ms
from evals.records import Completion, CompletionRequest

ERRORS = SDKErrors(status=APIStatusError, connection=APIConnectionError, timeout=APITimeoutError)


def make_client(endpoint: Endpoint) -> AsyncAnthropic:
    """The SDK client for ``endpoint``: its base_url (None: ANTHROPIC_BASE_URL or Anthropic), timeout, key.

    The key is read from the endpoint's key variable only; without it, ``ConfigError`` names the variable.
    The SDK's own retries are off (we retry).
    """
    key = endpoint.api_key()
    if key is None:
        raise ConfigError(
            f"no Anthropic API key: set the environment variable {endpoint.key_env} "
            "(or name another one with api_key_env in evals.yaml)"
        )
    return AsyncAnthropic(
        api_key=key,
        base_url=endpoint.base_url,
        timeout=endpoint.timeout_s,
        max_retries=0,
        http_client=DefaultAsyncHttpxClient(event_hooks=audit.EVENT_HOOKS),  # the SDK's limits, body hashed
    )


class AnthropicProvider(SDKProvider):
    """Messages from the Anthropic API."""

    errors = ERRORS
    model_hint = "e.g. a Claude model id"
    vendor = "anthropic"
    batch_limits = BatchLimits(requests=100_000, bytes=250 * 1024 * 1024)
    """Message Batches: at most 100,000 requests or 256 MB a batch."""

    def make_client(self, endpoint: Endpoint) -> Any:
        return make_client(endpoint)

    def arguments(self, request: CompletionRequest) -> dict[str, Any]:
        endpoint = self.endpoint
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        arguments: dict[str, Any] = {
            "model": endpoint.model,
            "max_tokens": endpoint.max_tokens,
            "messages": [m for m in request.messages if m["role"] != "system"],
        }
        if system:
            arguments["system"] = system
        # Not sent: seed (the Messages API never had one), temperature and top_p (API version 2026-10-21,
        # which this SDK speaks, rejects them with a 400 at any value; the SDK no longer accepts them).
        if endpoint.stop:
            arguments["stop_sequences"] = endpoint.stop
        if endpoint.extra_body:
            arguments["extra_body"] = endpoint.extra_body
        if request.output_schema is not None and request.output_mode == "json_schema":
            arguments["tools"] = [
                {
                    "name": request.output_name,
                    "description": f"Record the {request.output_name}. Call it exactly once.",
                    "input_schema": request.output_schema,
                }
            ]
            arguments["tool_choice"] = {"type": "tool", "name": request.output_name}
        return arguments

    async def attempt(self, arguments: dict[str, Any], request: CompletionRequest) -> Completion:
        start = time.perf_counter()
        try:
            response = await self._client.messages.create(**arguments)
        except json.JSONDecodeError:
            raise MalformedResponse("the body is not valid JSON") from None
        return self.read(response, request, elapsed_ms(start))

    def read(self, response: object, request: CompletionRequest, latency: float) -> Completion:
        """The completion in a reply (``MalformedResponse``, ``NotText`` when it holds none), online or batched."""
        enforced = request.output_schema is not None and request.output_mode == "json_schema"
        tool = request.output_name if enforced else None
        # A server answering 200 with a non-JSON content type makes the SDK hand back the raw text.
        if not isinstance(response, Message):
            raise MalformedResponse("the body is not valid JSON")
        if response.content is None:  # an empty list is a real (empty) answer; a missing field is not
            raise MalformedResponse("no content in the reply")
        data: dict[str, Any] | None = None
        texts: list[str] = []
        thoughts: list[str] = []
        if tool is None and (
            response.stop_reason == "tool_use"
            or any(str(block.type).endswith("tool_use") for block in response.content)
        ):  # tool_use, server_tool_use, mcp_tool_use: any block calling a tool holds no answer
            raise NotText(TOOL_CALL)  # no tool was offered: an answer error, not an empty answer to grade
        for block in response.content:
            if block.type == "tool_use" and tool is not None and block.name == tool:
                data = block.input if isinstance(block.input, dict) else None
            elif block.type == "text":
                if not isinstance(block.text, str):  # the SDK does not check what it reads
                    raise MalformedResponse(f"a text block holds {type(block.text).__name__}, not text")
                texts.append(block.text)
            elif block.type == "thinking" and isinstance(block.thinking, str):
                thoughts.append(block.thinking)  # kept apart: extended thinking is not the answer
        usage = response.usage
        if data is None and request.output_schema is not None and request.output_mode == "json_object":
            data = json_object("".join(texts))
        return Completion(
            text=json.dumps(data, ensure_ascii=False) if data is not None else "".join(texts),
            data=data,
            tokens_in=token_count(usage.input_tokens) if usage is not None else None,
            tokens_out=token_count(usage.output_tokens) if usage is not None else None,
            latency_ms=latency,
            model_id=response.model if isinstance(response.model, str) and response.model else None,
            finish_reason=response.stop_reason if isinstance(response.stop_reason, str) else None,
            reasoning="\n\n".join(thoughts) or None,
        )

    # -- Message Batches (evals.outbound.providers.batching) ----------------------------------------------

    def batch_entry(self, custom_id: str, request: CompletionRequest) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": self.batch_body(request)}

    async def submit_batch(self, entries: Sequence[dict[str, Any]], lines: Sequence[bytes]) -> str:
        batch = await self.batch_call(
            lambda: self._client.messages.batches.create(requests=list(entries)), record=True, long=True
        )
        return _batch_id(batch)

    async def batch_state(self, batch_id: str) -> BatchState:
        batch = await self.batch_call(lambda: self._client.messages.batches.retrieve(batch_id))
        if not isinstance(batch, MessageBatch):
            raise MalformedResponse("the batch is not a message batch")
        counts = batch.request_counts
        done = counts.succeeded + counts.errored + counts.canceled + counts.expired
        ended = batch.processing_status == "ended"
        return BatchState(ended, batch.processing_status, done + counts.processing, done)

    async def batch_results(self, batch_id: str, requests: dict[str, CompletionRequest]) -> list[BatchReply]:
        async def read_all() -> list[Any]:
            return [entry async for entry in await self._client.messages.batches.results(batch_id)]

        replies = []
        for entry in await self.batch_call(read_all, long=True):
            request = requests.get(entry.custom_id)
            if request is None:
                continue  # not a request of ours
            result = entry.result
            if result.type == "succeeded":
                read = partial(self.read, result.message, request, 0.0)
                replies.append(self.batch_reply(entry.custom_id, read))
            else:
                error = getattr(result, "error", None)
                body = error.model_dump() if error is not None else None
                replies.append(BatchReply(entry.custom_id, None, self.batch_problem(result.type, body)))
        return replies


def _batch_id(batch: object) -> str:
    batch_id = getattr(batch, "id", None)
    if not isinstance(batch_id, str) or not batch_id:
        raise MalformedResponse("the new batch has no id")
    return batch_id
