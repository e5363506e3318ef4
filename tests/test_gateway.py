"""The gateway, the one door out (``evals.outbound.gateway``), over real HTTP to fake servers: nothing is sent
without an audit trail or when the text is restricted and the endpoint external; every turn an external
endpoint reads is redacted and the reply restored; one record per request; the endpoint's limit holds
across callers; ``each`` keeps order and stops at the first failure.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from evals.config import Endpoint, RedactionSettings
from evals.errors import ProviderError
from evals.fakes import FakeAnthropic, FakeOpenAI
from evals.outbound import audit
from evals.outbound.gateway import Gateway, NoAuditTrail, Refused, each
from evals.records import CompletionRequest, CustomPattern
from evals.store import Store
from evals.store import audit as records


def endpoint(server: FakeOpenAI, **fields) -> Endpoint:
    return Endpoint(base_url=server.url, model="m", max_retries=0, **fields)


def ask(gateway: Gateway, ep: Endpoint, *requests: CompletionRequest) -> list:
    async def go() -> list:
        door = gateway.door("m", ep)
        try:
            return [await door.complete(r) for r in requests]
        finally:
            await gateway.aclose()

    return asyncio.run(go())


def request(*texts: str, sensitivity=None) -> CompletionRequest:
    roles = ["system", *["user"] * (len(texts) - 1)]
    return CompletionRequest(
        messages=tuple({"role": r, "content": t} for r, t in zip(roles, texts, strict=True)),
        sensitivity=sensitivity,
    )


def test_no_call_leaves_without_an_audit_trail(fake_openai):
    with pytest.raises(NoAuditTrail):
        ask(Gateway(), endpoint(fake_openai), request("be brief", "hello"))
    assert fake_openai.count() == 0


@pytest.mark.parametrize("default", ["internal", "restricted"])
def test_restricted_text_never_reaches_an_external_endpoint(fake_openai, tmp_path, default):
    external = endpoint(fake_openai, external=True)
    with Store(tmp_path / "reports") as store, audit.recording(store):
        with pytest.raises(Refused, match="restricted"):
            ask(Gateway(default_sensitivity=default), external, request("s", "q", sensitivity="restricted"))
        if default == "restricted":  # text whose level nothing says takes the config's default
            with pytest.raises(Refused):
                ask(Gateway(default_sensitivity=default), external, request("s", "q"))
        # inside the perimeter, restricted text goes as written
        [reply] = ask(Gateway(), endpoint(fake_openai), request("s", "q", sensitivity="restricted"))
    assert fake_openai.count() == 1 and reply.text


def test_every_turn_to_an_external_endpoint_is_redacted_and_the_reply_restored(fake_openai, tmp_path):
    fake_openai.responder = lambda body: "About " + body["messages"][1]["content"]
    settings = RedactionSettings(patterns=(CustomPattern(name="TICKET", regex=r"TCK-\d{5}"),))
    suite = (CustomPattern(name="EMPLOYEE_ID", regex=r"EMP-\d{6}"),)
    gateway = Gateway(settings, suite)
    rubric = "Grade strictly. Escalate to jane.doe@example.com."
    question = "Is TCK-12345 for EMP-000042 (card 4111 1111\n1111 1111) done?"
    with Store(tmp_path / "reports") as store, audit.recording(store):
        [reply] = ask(gateway, endpoint(fake_openai, external=True), request(rubric, question))
    sent = json.dumps(fake_openai.requests[0])
    for value in ("jane.doe", "example.com", "TCK-12345", "EMP-000042", "4111"):
        assert value not in sent
    assert "<TICKET_1>" in sent and "<EMPLOYEE_ID_1>" in sent
    assert reply.text == "About " + question  # the placeholders mapped back locally
    with Store(tmp_path / "reports") as store:
        calls = [r for r in records.records(store) if r.kind == "call"]
    assert len(calls) == fake_openai.count() == 1


def test_one_audit_record_per_request_sent_retries_included(fake_openai, tmp_path):
    from evals.fakes import Fault

    fake_openai.inject(Fault("server_error"))
    with Store(tmp_path / "reports") as store, audit.recording(store):
        ask(Gateway(), endpoint(fake_openai).model_copy(update={"max_retries": 1}), request("s", "q"))
    with Store(tmp_path / "reports") as store:
        calls = [r for r in records.records(store) if r.kind == "call"]
    assert fake_openai.count() == 2 and len(calls) == 2
    assert sorted(str(r.status) for r in calls) == ["500", "ok"]


def test_the_endpoints_limit_holds_across_every_caller(tmp_path):
    lock, now, peak = threading.Lock(), [0], [0]

    def slow(body):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return "ok"

    with FakeOpenAI(slow) as server, Store(tmp_path / "reports") as store, audit.recording(store):
        gateway = Gateway()
        ep = endpoint(server, max_concurrency=2)

        async def go() -> None:
            door = gateway.door("m", ep)
            try:  # two callers (say the judge and the canary), each fanning out 6 calls at once
                await asyncio.gather(*(door.complete(request("s", f"q{n}")) for n in range(12)))
            finally:
                await gateway.aclose()

        asyncio.run(go())
        assert server.count() == 12
    assert peak[0] == 2


def test_each_keeps_order_bounds_concurrency_and_stops_at_the_first_failure():
    running, peak, started = [0], [0], []

    async def job(n: int) -> int:
        started.append(n)
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.001 * (5 - n % 5))
        running[0] -= 1
        if n == 7:
            raise ValueError("seven")
        return n * n

    assert asyncio.run(each(range(6), job, 3)) == [n * n for n in range(6)] and peak[0] == 3
    started.clear()
    with pytest.raises(ValueError, match="seven"):
        asyncio.run(each(range(100), job, 2))
    assert len(started) < 100  # the rest was never started


def test_a_reply_nested_absurdly_deep_is_a_malformed_reply_not_a_crash(fake_anthropic, tmp_path, monkeypatch):
    # Anthropic's tool input reaches us as the SDK parsed it: as deep as the server made it.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    deep: dict = {"score": 5}
    for _ in range(600):
        deep = {"x": deep}
    fake_anthropic.responder = lambda body: deep
    structured = CompletionRequest(
        messages=({"role": "user", "content": "grade"},), output_schema={"type": "object"}
    )
    with Store(tmp_path / "reports") as store, audit.recording(store):
        with pytest.raises(ProviderError, match="nested more than"):
            ask(
                Gateway(),
                Endpoint(provider="anthropic", base_url=fake_anthropic.url, model="c", max_retries=0),
                structured,
            )
    assert fake_anthropic.count() == 1


def _nested_body(kind: type[FakeOpenAI] | type[FakeAnthropic]) -> type:
    class Nested(kind):  # type: ignore[valid-type, misc]
        """Adds a field nested 100,000 deep to each reply: past what Python's JSON parser can follow."""

        def _respond(self, method, path, raw, headers):
            status, body, extra = super()._respond(method, path, raw, headers)
            if status == 200 and path.endswith(("/chat/completions", "/messages")):
                body = body[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            return status, body, extra

    return Nested


@pytest.mark.parametrize("kind", [FakeOpenAI, FakeAnthropic])
@pytest.mark.parametrize("structured", [False, True])
def test_a_body_nested_past_the_parsers_reach_is_a_malformed_reply(kind, structured, tmp_path, monkeypatch):
    # The SDK parses the body before we see it: its RecursionError is the server's malformed reply too.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    provider = "anthropic" if kind is FakeAnthropic else "openai"
    schema = {"type": "object"} if structured else None
    call = CompletionRequest(messages=({"role": "user", "content": "q"},), output_schema=schema)
    with _nested_body(kind)(lambda body: {"a": "b"} if structured else "fine") as server:
        ep = Endpoint(provider=provider, base_url=server.url, model="c", max_retries=1)
        with Store(tmp_path / "reports") as store, audit.recording(store):
            with pytest.raises(ProviderError, match="nested more than 200 levels deep"):
                ask(Gateway(), ep, call)
            calls = [r for r in records.records(store) if r.kind == "call"]
            assert len(calls) == 2  # each attempt on the audit trail
        assert server.count() == 2  # retried as a malformed reply is, then an error on record
