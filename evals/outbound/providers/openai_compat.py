"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, TGI, SGLang) through ``openai``.

Structured output uses ``response_format`` with a strict ``json_schema`` (or, in ``json_object`` mode,
``{"type": "json_object"}`` with the schema described in the prompt); servers that honour it return the
object as the message's JSON text, which is parsed into ``Completion.data``. No request offers tools, so a
reply that calls one (a server parsing tool calls out of the model's text) is an error, not an answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, DefaultAsyncHttpxClient
from openai.types import Batch
from openai.types.chat import ChatCompletion

from evals.config import Endpoint
from evals.errors import ConfigError
from evals.outbound import audit
from evals.outbound.providers.base import SDKProvider, json_object, token_count
from evals.outbound.providers.batching import BatchLimits, BatchReply, BatchState
from evals.outbound.providers.retry import TOOL_CALL, MalformedResponse, NotText, SDKErrors, elapsed_ms
from evals.records import Completion, CompletionRequest
from evals.userfiles import parse_json

NO_KEY = "not-needed"
"""Sent when no key is set: local servers ignore the key, but the SDK refuses to start without one."""

CHAT_PATH = "/chat/completions"
"""Where ``chat.completions.create`` posts, relative to the client's base_url."""
ERRORS = SDKErrors(status=APIStatusError, connection=APIConnectionError, timeout=APITimeoutError)


def make_client(endpoint: Endpoint) -> AsyncOpenAI:
    """The SDK client for ``endpoint``: its base_url (None: OPENAI_BASE_URL or OpenAI), its timeout, its key.

    The key is read from the endpoint's key variable only; the SDK's own retries are off (we retry).
    Without a key, OpenAI itself (no base_url anywhere) is a ``ConfigError`` naming the variable; any other
    server gets a placeholder. (Naming an unset variable is how a config keeps OPENAI_API_KEY away from a
    local server, so that is allowed.)
    """
    key = endpoint.api_key()
    to_openai = endpoint.base_url is None and not os.environ.get("OPENAI_BASE_URL")
    if key is None and to_openai:
        raise ConfigError(
            f"no API key: set the environment variable {endpoint.key_env} "
            "(or name another one with api_key_env in evals.yaml)"
        )
    return AsyncOpenAI(
        api_key=key or NO_KEY,
        base_url=endpoint.base_url,
        timeout=endpoint.timeout_s,
        max_retries=0,
        http_client=DefaultAsyncHttpxClient(event_hooks=audit.EVENT_HOOKS),  # the SDK's limits, body hashed
    )


class OpenAIProvider(SDKProvider):
    """Chat completions from an OpenAI-compatible endpoint."""

    errors = ERRORS
    model_hint = "the model name the server serves"
    vendor = "openai"
    batch_limits = BatchLimits(requests=50_000, bytes=190 * 1024 * 1024)
    """The Batch API: at most 50,000 requests or 200 MB an input file."""

    def make_client(self, endpoint: Endpoint) -> Any:
        return make_client(endpoint)

    def arguments(self, request: CompletionRequest) -> dict[str, Any]:
        endpoint = self.endpoint
        arguments: dict[str, Any] = {
            "model": endpoint.model,
            "messages": list(request.messages),
            "max_tokens": endpoint.max_tokens,
        }
        optional = {"temperature": endpoint.temperature, "top_p": endpoint.top_p, "seed": endpoint.seed}
        arguments.update({k: v for k, v in optional.items() if v is not None})
        if endpoint.stop:
            arguments["stop"] = endpoint.stop
        if endpoint.extra_body:
            arguments["extra_body"] = endpoint.extra_body
        if request.output_schema is not None and request.output_mode == "json_object":
            arguments["response_format"] = {"type": "json_object"}
        elif request.output_schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.output_name, "schema": request.output_schema, "strict": True},
            }
        return arguments

    async def attempt(self, arguments: dict[str, Any], request: CompletionRequest) -> Completion:
        # The body as chat.completions.create sends it (extra_body merged in), without its pass over the
        # typed parameters, which changes nothing in plain messages and costs as much as the rest of the
        # SDK's work on a call (``scripts/bench_workers.py``).
        body = {k: v for k, v in arguments.items() if k != "extra_body"} | arguments.get("extra_body", {})
        start = time.perf_counter()
        try:
            response = await self._client.post(CHAT_PATH, body=body, cast_to=ChatCompletion)
        except json.JSONDecodeError:
            raise MalformedResponse("the body is not valid JSON") from None
        return self.read(response, request, elapsed_ms(start))

    def read(self, response: object, request: CompletionRequest, latency: float) -> Completion:
        """The completion in a reply (``MalformedResponse``, ``NotText`` when it holds none), online or batched."""
        structured = request.output_schema is not None
        # A server answering 200 with a non-JSON content type makes the SDK hand back the raw text.
        if not isinstance(response, ChatCompletion):
            raise MalformedResponse("the body is not valid JSON")
        if not response.choices:
            raise MalformedResponse("no choices in the reply")
        choice = response.choices[0]
        message = choice.message
        content = message.content if message is not None else None
        if content is not None and not isinstance(content, str):  # the SDK does not check what it reads
            raise MalformedResponse(f"the message content is {type(content).__name__}, not text")
        if _calls_a_tool(message, choice.finish_reason):
            raise NotText(TOOL_CALL)  # an answer error, not an empty answer to grade
        text = content or ""
        usage = response.usage
        return Completion(
            text=text,
            data=json_object(text) if structured else None,
            tokens_in=token_count(usage.prompt_tokens) if usage is not None else None,
            tokens_out=token_count(usage.completion_tokens) if usage is not None else None,
            latency_ms=latency,
            model_id=_text_or_none(response.model),
            finish_reason=_text_or_none(choice.finish_reason),
            reasoning=_reasoning(message),
        )

    # -- the Batch API (evals.outbound.providers.batching) -----------------------------------------------

    def batch_entry(self, custom_id: str, request: CompletionRequest) -> dict[str, Any]:
        body = self.batch_body(request)
        return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}

    async def submit_batch(self, entries: Sequence[dict[str, Any]], lines: Sequence[bytes]) -> str:
        content = b"".join(line + b"\n" for line in lines)
        upload = ("judge-batch.jsonl", content, "application/jsonl")
        file = await self.batch_call(
            lambda: self._client.files.create(file=upload, purpose="batch"), record=True, long=True
        )
        file_id = getattr(file, "id", None)
        if not isinstance(file_id, str) or not file_id:
            raise MalformedResponse("the uploaded file has no id")
        batch = await self.batch_call(
            lambda: self._client.batches.create(
                input_file_id=file_id, endpoint=BATCH_ENDPOINT, completion_window="24h"
            ),
            record=True,
        )
        batch_id = getattr(batch, "id", None)
        if not isinstance(batch_id, str) or not batch_id:
            raise MalformedResponse("the new batch has no id")
        return batch_id

    async def _batch(self, batch_id: str) -> Batch:
        batch = await self.batch_call(lambda: self._client.batches.retrieve(batch_id))
        if not isinstance(batch, Batch):
            raise MalformedResponse("the batch is not a batch object")
        return batch

    async def batch_state(self, batch_id: str) -> BatchState:
        batch = await self._batch(batch_id)
        counts = batch.request_counts
        total, done = (counts.total, counts.completed + counts.failed) if counts is not None else (0, 0)
        failed = None
        if batch.status == "failed":
            reasons = [e.message for e in (batch.errors.data or []) if e.message] if batch.errors else []
            failed = self.batch_problem("failed", {"error": {"message": "; ".join(reasons)}})
        return BatchState(batch.status in BATCH_ENDED, batch.status, total, done, failed)

    async def batch_results(self, batch_id: str, requests: dict[str, CompletionRequest]) -> list[BatchReply]:
        batch = await self._batch(batch_id)
        lines: list[str] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self.batch_call(partial(self._client.files.content, file_id), long=True)
                lines += content.content.decode("utf-8", "replace").splitlines()
        replies = []
        for line in lines:
            try:
                row = parse_json(line) if line.strip() else None  # the server is untrusted: depth-limited
            except ValueError:
                continue
            custom_id = row.get("custom_id") if isinstance(row, dict) else None
            request = requests.get(custom_id) if isinstance(custom_id, str) else None
            if request is None or not isinstance(row, dict) or not isinstance(custom_id, str):
                continue  # not a request of ours
            replies.append(self._batch_reply(custom_id, row, request))
        return replies

    def _batch_reply(self, custom_id: str, row: dict[str, Any], request: CompletionRequest) -> BatchReply:
        response = row.get("response")
        if isinstance(response, dict) and response.get("status_code") == 200:
            body = response.get("body")
            if isinstance(body, dict):
                reply = ChatCompletion.construct(**body)  # as leniently as the SDK reads an online reply
                return self.batch_reply(custom_id, lambda: self.read(reply, request, 0.0))
            return BatchReply(custom_id, None, "malformed response (no body)")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            return BatchReply(
                custom_id, None, self.batch_problem(str(response["status_code"]), response.get("body"))
            )
        error = row.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        what = code if isinstance(code, str) and code.isascii() and len(code) <= 40 else "errored"
        return BatchReply(custom_id, None, self.batch_problem(what, {"error": error}))


BATCH_ENDPOINT = "/v1/chat/completions"
BATCH_ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
"""The Batch API's statuses after which nothing more is processed."""


def _calls_a_tool(message: object, finish_reason: object) -> bool:
    """True when the reply calls a tool: ``tool_calls``, the older ``function_call``, or a finish reason
    saying so. This provider never offers tools, so a reply that calls one holds no answer."""
    if getattr(message, "tool_calls", None) or getattr(message, "function_call", None):
        return True
    return finish_reason in ("tool_calls", "function_call")


def _text_or_none(value: object) -> str | None:
    # Servers are untrusted: a field the SDK does not declare can hold anything.
    return value if isinstance(value, str) and value else None


def _reasoning(message: object) -> str | None:
    """The message's separate reasoning: ``reasoning_content`` (vLLM, DeepSeek, llama.cpp) or ``reasoning``.

    Neither is a declared field of the SDK's message, which keeps undeclared fields as attributes.
    """
    for name in ("reasoning_content", "reasoning"):
        value = _text_or_none(getattr(message, name, None))
        if value is not None:
            return value
    return None
