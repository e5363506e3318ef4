"""The providers, through the real SDKs, against the fake servers on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest

from evals.config import Endpoint, JudgeEndpoint
from evals.errors import ConfigError, ProviderError
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, count_tokens, prompt_tokens, text_reply
from evals.outbound.providers import Provider, build_provider, retry
from evals.outbound.providers.anthropic import AnthropicProvider
from evals.outbound.providers.openai_compat import OpenAIProvider
from evals.records import Completion, CompletionRequest

KEY = "sk-test-SECRET123"
SCHEMA = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["rationale", "score"],
    "additionalProperties": False,
}
QUESTION = CompletionRequest(messages=({"role": "user", "content": "What is the capital of France?"},))
VERDICT = CompletionRequest(messages=QUESTION.messages, output_schema=SCHEMA, output_name="verdict")


def openai_endpoint(server: FakeOpenAI, **fields: Any) -> Endpoint:
    return Endpoint(provider="openai", base_url=server.url, model="local-model", **fields)


def anthropic_endpoint(server: FakeAnthropic, **fields: Any) -> Endpoint:
    return Endpoint(provider="anthropic", base_url=server.url, model="claude-test", **fields)


async def _complete(provider: Provider, request: CompletionRequest) -> Completion:
    try:
        return await provider.complete(request)
    finally:
        await provider.aclose()


def ask(endpoint: Endpoint, request: CompletionRequest = QUESTION, name: str = "local") -> Completion:
    """Build the configured provider and make one call, as the runner does."""
    return asyncio.run(_complete(build_provider(name, endpoint), request))


def ask_failing(endpoint: Endpoint, request: CompletionRequest = QUESTION, name: str = "local") -> str:
    with pytest.raises(ProviderError) as caught:
        ask(endpoint, request, name)
    return str(caught.value)


# -- successful calls ----------------------------------------------------------------------------------


def test_openai_plain_completion(fake_openai):
    fake_openai.model_id = "qwen-test-served"
    fake_openai.responder = text_reply(lambda q: f"You asked: {q} Paris.")
    endpoint = openai_endpoint(fake_openai, temperature=0.2, seed=7, stop=["END"], extra_body={"top_k": 5})

    completion = ask(endpoint)

    assert completion.text == "You asked: What is the capital of France? Paris."
    assert completion.tokens_out == count_tokens(completion.text)
    assert completion.tokens_in == prompt_tokens(fake_openai.requests[-1]) > 0
    assert completion.model_id == "qwen-test-served"
    assert completion.data is None
    assert completion.latency_ms > 0
    body = fake_openai.requests[-1]
    assert body["model"] == "local-model"
    assert body["messages"] == list(QUESTION.messages)
    assert (body["temperature"], body["seed"], body["stop"], body["max_tokens"]) == (0.2, 7, ["END"], 512)
    assert body["top_k"] == 5, "extra_body fields reach the server as they are"
    assert "response_format" not in body and "top_p" not in body


def test_openai_structured_output_uses_strict_json_schema(fake_openai):
    fake_openai.responder = lambda body: {"rationale": "Paris is right.", "score": 5}

    completion = ask(openai_endpoint(fake_openai), VERDICT)

    assert completion.data == {"rationale": "Paris is right.", "score": 5}
    assert json.loads(completion.text) == completion.data
    response_format = fake_openai.requests[-1]["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True},
    }


def test_openai_structured_reply_that_is_not_json_keeps_the_text(fake_openai):
    fake_openai.responder = lambda body: "Score: 4, because it is mostly right."

    completion = ask(openai_endpoint(fake_openai), VERDICT)

    assert completion.data is None
    assert completion.text == "Score: 4, because it is mostly right."


def test_openai_json_object_mode_asks_for_any_json_object(fake_openai):
    fake_openai.responder = lambda body: {"rationale": "Paris is right.", "score": 5}
    request = CompletionRequest(messages=QUESTION.messages, output_schema=SCHEMA, output_mode="json_object")

    completion = ask(openai_endpoint(fake_openai), request)

    assert completion.data == {"rationale": "Paris is right.", "score": 5}
    assert fake_openai.requests[-1]["response_format"] == {"type": "json_object"}


def test_anthropic_json_object_mode_reads_the_text_without_a_tool(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake_anthropic.responder = lambda body: '{"rationale": "Correct.", "score": 4}'
    request = CompletionRequest(messages=QUESTION.messages, output_schema=SCHEMA, output_mode="json_object")

    completion = ask(anthropic_endpoint(fake_anthropic), request)

    assert completion.data == {"rationale": "Correct.", "score": 4}
    assert not {"tools", "tool_choice"} & set(fake_anthropic.requests[-1])


@pytest.mark.parametrize("refusal", ["llama-cpp-python", "400", "422"])
def test_a_refused_response_format_is_not_retried_and_says_why(refusal, fake_openai):
    fake_openai.refuses, fake_openai.refusal = ("json_schema",), refusal

    with pytest.raises(retry.CallError) as caught:
        ask(openai_endpoint(fake_openai, max_retries=3), VERDICT)

    assert fake_openai.count() == 1, "asking again would get the same refusal"
    assert caught.value.rejects_format and not caught.value.transient
    assert "Input should be" in str(caught.value) or "not supported" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_openai_itself_without_a_key_is_refused_before_any_call():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_provider("gpt", Endpoint(provider="openai", model="gpt-4o"))
    with pytest.raises(ConfigError, match="GPT_KEY"):
        build_provider("gpt", Endpoint(provider="openai", model="gpt-4o", api_key_env="GPT_KEY"))


def test_anthropic_plain_completion_and_system_turns(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake_anthropic.model_id = "claude-served"
    fake_anthropic.responder = text_reply(lambda q: "Paris.")
    request = CompletionRequest(
        messages=(
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Capital of France?"},
        )
    )

    completion = ask(anthropic_endpoint(fake_anthropic, temperature=0.0, seed=3, stop=["END"]), request)

    assert (completion.text, completion.data, completion.model_id) == ("Paris.", None, "claude-served")
    assert completion.tokens_out == 1
    assert completion.tokens_in == prompt_tokens(fake_anthropic.requests[-1]) > 0
    body = fake_anthropic.requests[-1]
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert (body["model"], body["max_tokens"], body["stop_sequences"]) == ("claude-test", 512, ["END"])
    assert not {"tools", "seed", "temperature"} & set(body), "the API version the SDK speaks rejects them"


def test_anthropic_structured_output_is_a_forced_tool_call(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake_anthropic.responder = lambda body: {"rationale": "Correct.", "score": 4}

    completion = ask(anthropic_endpoint(fake_anthropic), VERDICT)

    assert completion.data == {"rationale": "Correct.", "score": 4}
    assert json.loads(completion.text) == completion.data
    body = fake_anthropic.requests[-1]
    assert body["tool_choice"] == {"type": "tool", "name": "verdict"}
    assert [t["name"] for t in body["tools"]] == ["verdict"]
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert "system" not in body


def test_one_provider_serves_concurrent_calls(fake_openai):
    fake_openai.responder = text_reply(lambda q: q.upper())
    fake_openai.latency = 0.05

    async def many() -> list[Completion]:
        provider = OpenAIProvider("local", openai_endpoint(fake_openai))
        try:
            requests = [
                CompletionRequest(messages=({"role": "user", "content": f"q{i}"},)) for i in range(40)
            ]
            return await asyncio.gather(*(provider.complete(r) for r in requests))
        finally:
            await provider.aclose()

    started = time.perf_counter()
    completions = asyncio.run(many())
    assert [c.text for c in completions] == [f"Q{i}" for i in range(40)]
    assert fake_openai.count() == 40
    assert time.perf_counter() - started < 40 * 0.05, "calls ran concurrently, not one after another"


# -- keys and base URLs --------------------------------------------------------------------------------


def test_openai_key_comes_from_the_endpoints_variable(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ask(openai_endpoint(fake_openai))
    monkeypatch.setenv("LOCAL_KEY", "sk-local-other")
    ask(openai_endpoint(fake_openai, api_key_env="LOCAL_KEY"))

    assert [h["authorization"] for h in fake_openai.headers] == [f"Bearer {KEY}", "Bearer sk-local-other"]


def test_openai_without_a_key_sends_a_placeholder_for_local_servers(fake_openai):
    completion = ask(openai_endpoint(fake_openai))

    assert completion.text == "I don't know."
    assert fake_openai.headers[-1]["authorization"] == "Bearer not-needed"


def test_anthropic_key_is_sent_from_the_endpoints_variable(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-this-one")
    monkeypatch.setenv("JUDGE_KEY", KEY)
    ask(anthropic_endpoint(fake_anthropic, api_key_env="JUDGE_KEY"))

    # SDK 2.x sends the key as a bearer token (older ones used x-api-key); either way it is this key.
    headers = fake_anthropic.headers[-1]
    assert KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))


@pytest.mark.parametrize("key_env", [None, "JUDGE_KEY"])
def test_anthropic_without_a_key_names_the_variable_to_set(key_env, fake_anthropic):
    endpoint = anthropic_endpoint(fake_anthropic, api_key_env=key_env)
    with pytest.raises(ConfigError, match=key_env or "ANTHROPIC_API_KEY"):
        AnthropicProvider("claude", endpoint)
    assert fake_anthropic.count() == 0


def test_openai_base_url_from_the_environment_is_honoured(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    completion = ask(Endpoint(provider="openai", base_url=None, model="local-model"))

    assert completion.text == "I don't know."
    assert fake_openai.count() == 1


def test_anthropic_base_url_from_the_environment_is_honoured(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    ask(Endpoint(provider="anthropic", base_url=None, model="claude-test"))

    assert fake_anthropic.count() == 1


def test_an_endpoint_without_a_model_is_a_config_error(fake_openai):
    with pytest.raises(ConfigError, match="model"):
        OpenAIProvider("local", Endpoint(base_url=fake_openai.url))


# -- retries -------------------------------------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says(fake_openai, caplog):
    caplog.set_level(logging.WARNING, logger="evals.outbound.providers")
    fake_openai.inject(Fault("rate_limit", retry_after=1))

    started = time.perf_counter()
    completion = ask(openai_endpoint(fake_openai))
    waited = time.perf_counter() - started

    assert completion.text == "I don't know."
    assert fake_openai.count() == 2
    assert waited >= 0.9, "the retry came before the server's Retry-After"
    assert waited < 5
    [record] = [r for r in caplog.records if r.name == "evals.outbound.providers"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "model 'local'" in message and "attempt 1/5" in message and "429" in message
    assert "1.00 s" in message


def test_500_then_success_is_retried(fake_openai):
    fake_openai.inject(Fault("server_error", status=500), Fault("server_error", status=503))

    assert ask(openai_endpoint(fake_openai)).text == "I don't know."
    assert fake_openai.count() == 3


def test_a_dropped_connection_is_retried(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake_anthropic.inject(Fault("disconnect"))

    assert ask(anthropic_endpoint(fake_anthropic)).text == "I don't know."
    assert fake_anthropic.count() == 2


def test_a_slow_answer_is_retried_and_latency_counts_only_the_successful_attempt(fake_openai):
    fake_openai.inject(Fault("slow", seconds=1.0))

    completion = ask(openai_endpoint(fake_openai, timeout_s=0.3))

    assert completion.text == "I don't know."
    assert fake_openai.count() == 2
    assert completion.latency_ms < 300


def test_answers_slower_than_the_timeout_fail_with_provider_error(fake_openai):
    fake_openai.inject(Fault("slow", seconds=2.0), Fault("slow", seconds=2.0))

    started = time.perf_counter()
    message = ask_failing(openai_endpoint(fake_openai, timeout_s=0.3, max_retries=1))

    assert time.perf_counter() - started < 1.8, "each attempt gave up at the timeout"
    assert message == "model 'local': no answer within 0.3 s (timeout) after 2 attempts"
    assert fake_openai.count() == 2


@pytest.mark.parametrize("server", ["openai", "anthropic"])
def test_a_malformed_body_is_retried_then_fails_cleanly(server, fake_openai, fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake, endpoint = (
        (fake_openai, openai_endpoint(fake_openai, max_retries=1))
        if server == "openai"
        else (fake_anthropic, anthropic_endpoint(fake_anthropic, max_retries=1))
    )
    fake.inject(Fault("malformed"))
    assert ask(endpoint).text == "I don't know."

    fake.inject(Fault("malformed"), Fault("malformed"))
    message = ask_failing(endpoint)

    assert message == "model 'local': malformed response (the body is not valid JSON) after 2 attempts"
    assert fake.count() == 2 + 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status, fake_openai):
    fake_openai.inject(Fault("server_error", status=status))

    message = ask_failing(openai_endpoint(fake_openai))

    assert message.startswith(f"model 'local': {status} ")
    assert "attempts" not in message
    assert fake_openai.count() == 1


def test_anthropic_client_errors_are_not_retried(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake_anthropic.inject(Fault("server_error", status=401))

    message = ask_failing(anthropic_endpoint(fake_anthropic), name="claude")

    assert message.startswith("model 'claude': 401 Unauthorized (authentication_error")
    assert fake_anthropic.count() == 1


def test_exhausted_retries_give_one_line_without_the_key(fake_openai, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx's included
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake_openai.inject(*[Fault("server_error", status=500)] * 3)

    message = ask_failing(openai_endpoint(fake_openai, max_retries=2))

    assert message.startswith("model 'local': 500 Internal Server Error (api_error")
    assert message.endswith("after 3 attempts")
    assert "\n" not in message
    assert fake_openai.count() == 3
    assert fake_openai.headers[0]["authorization"] == f"Bearer {KEY}", "the key was really in play"
    waits = [r for r in caplog.records if r.name == "evals.outbound.providers"]
    assert [r.levelno for r in waits] == [logging.WARNING] * 2
    assert all(KEY not in r.getMessage() and "SECRET" not in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text


def test_a_server_echoing_the_key_does_not_leak_it(fake_anthropic, monkeypatch, caplog):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    def echo_key(body: dict[str, Any]) -> str:
        raise RuntimeError(f"invalid key {KEY} for this workspace")  # becomes a 500 whose message has it

    fake_anthropic.responder = echo_key
    endpoint = JudgeEndpoint(
        provider="anthropic", base_url=fake_anthropic.url, model="claude-test", max_retries=1
    )

    message = ask_failing(endpoint, VERDICT, name="claude")

    assert message.startswith("judge 'claude': 500 Internal Server Error")
    assert "RuntimeError" in message, "the server's explanation is kept"
    assert KEY not in message and "SECRET" not in message
    assert KEY not in caplog.text


def test_retry_after_headers_are_read_in_every_form():
    def failure(**headers: str) -> SimpleNamespace:
        return SimpleNamespace(response=SimpleNamespace(headers=headers))

    assert retry.retry_after(failure(**{"retry-after": "2"})) == 2.0
    assert retry.retry_after(failure(**{"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry.retry_after(failure(**{"retry-after": "100000"})) == retry.RETRY_AFTER_CAP_S
    assert retry.retry_after(failure(**{"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < (retry.retry_after(failure(**{"retry-after": in_a_minute})) or 0) <= 30
    assert retry.retry_after(failure(**{"retry-after": "soon"})) is None
    assert retry.retry_after(failure()) is None
    assert retry.retry_after(ValueError("no response")) is None


def test_build_provider_picks_the_sdk(fake_openai, fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    async def build() -> tuple[type, type]:
        openai_provider = build_provider("a", openai_endpoint(fake_openai, max_concurrency=3))
        anthropic_provider = build_provider("b", anthropic_endpoint(fake_anthropic))
        assert openai_provider.max_concurrency == 3
        await openai_provider.aclose()
        await anthropic_provider.aclose()
        return type(openai_provider), type(anthropic_provider)

    assert asyncio.run(build()) == (OpenAIProvider, AnthropicProvider)
