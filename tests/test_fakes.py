"""The fake API servers themselves: what the real SDKs see of them, faults, concurrency, shutdown."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time

import anthropic
import openai
import pytest

from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, last_user_text

USER = [{"role": "user", "content": "hello there"}]


def raw_request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_openai_sdk_lists_the_model_and_reads_errors(fake_openai):
    fake_openai.model_id = "served-model"
    fake_openai.inject(Fault("rate_limit", retry_after=2.5), Fault("server_error", status=503))

    async def go() -> tuple[list[str], Exception, Exception]:
        client = openai.AsyncOpenAI(base_url=fake_openai.url, api_key="k", max_retries=0)
        try:
            # the first fault goes to the first request, whichever route it takes
            with pytest.raises(openai.RateLimitError) as limited:
                await client.models.list()
            with pytest.raises(openai.InternalServerError) as down:
                await client.chat.completions.create(model="m", messages=USER)
            models = [m.id for m in (await client.models.list()).data]
            return models, limited.value, down.value
        finally:
            await client.close()

    models, limited, down = asyncio.run(go())
    assert models == ["served-model"]
    assert limited.response.headers["retry-after"] == "2.5"
    assert limited.body["type"] == "rate_limit_error"
    assert (down.status_code, down.body["type"]) == (503, "api_error")
    assert fake_openai.count() == 1, "only POST bodies are recorded"


def test_anthropic_replies_in_its_own_shapes(fake_anthropic):
    fake_anthropic.responder = lambda body: {"score": 2} if "json" in last_user_text(body) else "plain"
    tools = [{"name": "first", "input_schema": {"type": "object"}}, {"name": "grade", "input_schema": {}}]
    fake_anthropic.inject(Fault("server_error", status=529))

    async def go() -> list[object]:
        client = anthropic.AsyncAnthropic(base_url=fake_anthropic.url, api_key="k", max_retries=0)
        ask = client.messages.create
        try:
            with pytest.raises(anthropic.APIStatusError) as overloaded:
                await ask(model="m", max_tokens=9, messages=USER)
            return [
                overloaded.value,
                await ask(model="m", max_tokens=9, messages=[{"role": "user", "content": "json please"}]),
                await ask(
                    model="m", max_tokens=9, messages=[{"role": "user", "content": "json please"}],
                    tools=tools, tool_choice={"type": "tool", "name": "grade"},
                ),
                await ask(model="m", max_tokens=9, messages=USER, tools=tools),
            ]  # fmt: skip
        finally:
            await client.close()

    overloaded, untooled, tooled, text = asyncio.run(go())
    assert overloaded.status_code == 529 and overloaded.body["error"]["type"] == "overloaded_error"
    assert overloaded.body["type"] == "error"
    assert [b.type for b in untooled.content] == ["text"] and json.loads(untooled.content[0].text) == {
        "score": 2
    }
    [block] = tooled.content
    assert (block.type, block.name, block.input, tooled.stop_reason) == (
        "tool_use",
        "grade",
        {"score": 2},
        "tool_use",
    )
    assert (text.content[0].text, text.stop_reason) == ("plain", "end_turn")


def test_faults_are_consumed_one_per_request_in_order(fake_openai):
    fake_openai.inject(Fault("server_error", status=500), Fault("malformed"), Fault("slow", seconds=0.01))
    body = json.dumps({"model": "m", "messages": USER}).encode()
    port = fake_openai.port

    assert raw_request(port, "POST", "/v1/chat/completions", body)[0] == 500
    with pytest.raises(json.JSONDecodeError):
        raw_request(port, "POST", "/v1/chat/completions", body)
    status, reply = raw_request(port, "POST", "/v1/chat/completions", body)
    assert status == 200 and reply["choices"][0]["message"]["content"] == "I don't know."
    assert raw_request(port, "POST", "/v1/chat/completions", body)[0] == 200
    assert fake_openai.count() == 4
    assert fake_openai.count(lambda b: b.get("model") == "m") == 4
    assert fake_openai.count(lambda b: b.get("model") == "other") == 0


def test_refusals_of_response_format_look_like_the_servers_they_stand_for():
    def ask(server: FakeOpenAI, kind: str) -> tuple[int, dict]:
        body = {"model": "m", "messages": USER, "response_format": {"type": kind}}
        return raw_request(server.port, "POST", "/v1/chat/completions", json.dumps(body).encode())

    with FakeOpenAI(refuses=("json_schema",)) as llama:
        status, reply = ask(llama, "json_schema")
        assert status == 500 and "Input should be 'text' or 'json_object'" in reply["error"]["message"]
        assert ask(llama, "json_object")[0] == 200
    with FakeOpenAI(refuses=("json_schema", "json_object"), refusal="400") as other:
        status, reply = ask(other, "json_object")
        assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    with FakeOpenAI(refuses=("json_schema",), refusal="422") as fastapi:
        status, reply = ask(fastapi, "json_schema")
        assert status == 422 and reply["detail"][0]["loc"] == ["body", "response_format", "type"]


def test_a_trickled_reply_arrives_whole_byte_by_byte(fake_openai):
    fake_openai.inject(Fault("trickle", seconds=0.0002))
    body = json.dumps({"model": "m", "messages": USER}).encode()
    status, reply = raw_request(fake_openai.port, "POST", "/v1/chat/completions", body)
    assert status == 200 and reply["choices"][0]["message"]["content"] == "I don't know."


def test_bad_requests_get_api_errors(fake_openai):
    assert raw_request(fake_openai.port, "POST", "/v1/chat/completions", b"{not json")[0] == 400
    status, reply = raw_request(fake_openai.port, "GET", "/v1/nothing")
    assert status == 404 and reply["error"]["type"] == "not_found_error"

    fake_openai.responder = lambda body: 1 / 0
    status, reply = raw_request(fake_openai.port, "POST", "/v1/chat/completions", b"{}")
    assert status == 500 and "ZeroDivisionError" in reply["error"]["message"]


def test_many_concurrent_connections_are_served_at_once(fake_openai):
    fake_openai.latency = 0.3
    calls = 96

    async def go() -> list[str | None]:
        client = openai.AsyncOpenAI(base_url=fake_openai.url, api_key="k", max_retries=0, timeout=10)
        try:
            replies = await asyncio.gather(
                *(client.chat.completions.create(model="m", messages=USER) for _ in range(calls))
            )
            return [r.choices[0].message.content for r in replies]
        finally:
            await client.close()

    started = time.perf_counter()
    assert asyncio.run(go()) == ["I don't know."] * calls
    assert time.perf_counter() - started < 3.0, "96 calls of 0.3 s each overlapped"
    assert fake_openai.count() == calls


def test_stop_hangs_up_open_connections_and_frees_the_port():
    server = FakeOpenAI().start()
    keep_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    keep_alive.request("GET", "/v1/models")
    assert keep_alive.getresponse().read()
    port = server.port

    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 1.0
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    keep_alive.close()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url


def test_urls_are_what_each_sdk_expects():
    with FakeOpenAI() as openai_server, FakeAnthropic() as anthropic_server:
        assert openai_server.url == f"http://127.0.0.1:{openai_server.port}/v1"
        assert anthropic_server.url == f"http://127.0.0.1:{anthropic_server.port}"
