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
from typing import Any

from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, DefaultAsyncHttpxClient
from openai.types.chat import ChatCompletion

from evals.config import Endpoint
from evals.errors import ConfigError
from evals.outbound import audit
from evals.outbound.providers.base import SDKProvider, json_object, token_count
from evals.outbound.providers.retry import TOOL_CALL, MalformedResponse, NotText, SDKErrors, elapsed_ms
from evals.records import Completion, CompletionRequest

NO_KEY = "not-needed"
"""Sent when no key is set: local servers ignore the key, but the SDK refuses to start without one."""

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
        structured = request.output_schema is not None
        start = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(**arguments)
        except json.JSONDecodeError:
            raise MalformedResponse("the body is not valid JSON") from None
        latency = elapsed_ms(start)
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
