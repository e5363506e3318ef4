"""OpenTelemetry export of what goes through the door (``telemetry:`` in evals.yaml; the ``otel`` extra).

A command that makes calls holds ``tracing(config)`` around its work. Without a ``telemetry:`` section it
does nothing: OpenTelemetry is never imported and nothing is exported. With one:

- every call through the gateway is a ``chat {model}`` span with the GenAI semantic conventions'
  attributes (``gen_ai.operation.name``, ``gen_ai.provider.name`` and the older ``gen_ai.system``,
  ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``,
  ``gen_ai.response.finish_reasons``) and ours (``evals.run.id``, ``evals.item.id``, ``evals.role``...);
- a run's calls hang under one ``evals item`` span per item and sample, under one ``evals run`` span;
  calls outside a run (calibration, probes, generation) under one ``evals <role>`` span per command;
- each verdict of a run is a ``gen_ai.evaluation.result`` event on its item's span (the answer it grades;
  the answer's own chat span has ended by then): the rubric, the score, pass or fail at the gate's
  ``pass_score``, the judge's identity, and its explanation when the text may go.

The collector is an outbound destination like any endpoint (``TelemetrySettings.external``), and the
gateway's rules hold for it: ids, scores, token counts and model names always go; text (the judge's
explanation; with ``capture_text`` the messages) goes as written to a collector inside the perimeter; to an
external one public and internal text redacted (the run's patterns, the config's, the built-in recognizers;
when redaction is off, public text as written and internal text left out) and restricted text never. Spans leave through the
SDK's OTLP/HTTP exporter on its own thread and are flushed when the command ends; a collector that does not
take them costs a warning, never the run. Item and run spans end when the command ends, at the time of the
last thing that happened under them.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, cast

from evals.config import Config, Endpoint, RedactionSettings, TelemetrySettings
from evals.errors import ConfigError
from evals.outbound.callcontext import CallContext, current
from evals.outbound.redaction import Redactor
from evals.records import Completion, CompletionRequest, CustomPattern, Item, Judgment, Sensitivity
from evals.secrets import safe_url


class Door(Protocol):
    """What a span needs of a gateway's door: the endpoint's name in evals.yaml, and the endpoint."""

    name: str
    endpoint: Endpoint


log = logging.getLogger("evals.outbound.telemetry")

EVALUATION_EVENT = "gen_ai.evaluation.result"
FLUSH_MS = 30_000
"""How long the end of a command waits for the last spans to go out."""
EXPORT_TIMEOUT_S = 10.0
"""One export request's limit (the exporter's retries included)."""
SDK_HEADERS = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
"""The SDK's own header variables, which its exporter would add to ours: not read (``headers_env`` is)."""
QUEUE = 8192
"""Ended spans waiting to be sent; the exporter sends them 512 at a time."""

_SESSION: ContextVar[Telemetry | None] = ContextVar("evals_telemetry", default=None)


@contextmanager
def tracing(config: Config) -> Iterator[Telemetry | None]:
    """Export the spans of the calls (and a run's verdicts) made inside the block, when ``config`` says where.

    Raises ``ConfigError`` before anything is done when the ``otel`` extra is missing or ``headers_env`` is
    unset or malformed. Inside another ``tracing`` block, that one's telemetry is used.
    """
    if config.telemetry is None or _SESSION.get() is not None:
        yield _SESSION.get()
        return
    session = Telemetry(
        config.telemetry, config.redaction, config.default_sensitivity, config.gate.pass_score
    )
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)
        session.close()


def adopt(patterns: Sequence[CustomPattern]) -> None:
    """A gateway's redaction patterns (the config's and its run's), for the text exported while it works."""
    session = _SESSION.get()
    if session is not None:
        session.adopt(patterns)


async def traced(
    door: Door,
    request: CompletionRequest,
    call: Awaitable[Completion],
    restore: Callable[[str | None], str | None] | None = None,
    patterns: Sequence[CustomPattern] = (),
) -> Completion:
    """Await ``call`` (the provider's call for ``request`` through ``door``) inside a chat span.

    ``request`` is the local view (before redaction), ``restore`` puts the local view back into the reply,
    and ``patterns`` are the gateway's: the collector's own rules decide what text goes.
    """
    session = _SESSION.get()
    if session is None:
        return await call
    session.adopt(patterns)
    return await session.trace_call(door.name, door.endpoint, request, call, restore)


def evaluated(item: Item, judgment: Judgment, rubric: str) -> None:
    """One ``gen_ai.evaluation.result`` event for a run's verdict, on its item's span."""
    session = _SESSION.get()
    if session is not None:
        session.evaluation(item, judgment, rubric)


def read_headers(variable: str | None) -> dict[str, str]:
    """The export's headers from the environment variable named ``variable`` (``key=value,...``, values
    URL-encoded, as ``OTEL_EXPORTER_OTLP_HEADERS``); a ``ConfigError`` that never shows the value."""
    if variable is None:
        return {}
    raw = os.environ.get(variable)
    where = f"telemetry.headers_env: {variable}"
    if raw is None or not raw.strip():
        raise ConfigError(
            f"evals.yaml: {where} is not set; export it as key=value pairs (e.g. authorization=Bearer%20...)"
        )
    headers: dict[str, str] = {}
    for number, pair in enumerate(raw.split(","), start=1):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not all(c.isalnum() or c in "-_." for c in key):
            raise ConfigError(
                f"evals.yaml: {where}: pair {number} is not key=value (the value is not shown); write "
                "key=value pairs separated by commas, values URL-encoded"
            )
        headers[key.lower()] = urllib.parse.unquote(value.strip())
    return headers


@dataclass
class _Open:
    """A span kept open until the command ends, and when the last thing under it happened (ns)."""

    span: Any
    last: int

    def touch(self, at: int) -> None:
        self.last = max(self.last, at)


class _Watched:
    """The OTLP exporter, counting the batches the collector did not take (a span exporter by duck typing)."""

    def __init__(self, exporter: Any):
        self.exporter = exporter
        self.failed = 0

    def export(self, spans: Any) -> Any:
        result = self.exporter.export(spans)
        if getattr(result, "name", "") != "SUCCESS":
            self.failed += 1
        return result

    def force_flush(self, timeout_millis: int = FLUSH_MS) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.exporter.shutdown()


class Telemetry:
    """One command's export: the tracer, the open run and item spans, and the collector's text rules."""

    def __init__(
        self,
        settings: TelemetrySettings,
        redaction: RedactionSettings,
        default_sensitivity: Sensitivity = "internal",
        pass_score: float = 4,
    ):
        try:  # the otel extra: loaded only when telemetry: is set
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError(
                "evals.yaml: telemetry: needs the otel extra: pip install 'lookingglass[otel]' (or remove telemetry:)"
            ) from None
        headers = read_headers(settings.headers_env)  # before anything is built: a bad variable does nothing
        self.settings = settings
        self.external = settings.external is not False
        self.redaction = redaction
        self.default_sensitivity: Sensitivity = default_sensitivity
        self.pass_score = pass_score
        self.patterns: dict[str, CustomPattern] = {p.name: p for p in redaction.patterns}
        self._redactor: Redactor | None = None
        self.url = settings.traces_url()
        with _hidden(SDK_HEADERS):  # headers meant for another collector never go to this one
            exporter = OTLPSpanExporter(endpoint=self.url, headers=headers, timeout=EXPORT_TIMEOUT_S)
        self.exporter = _Watched(exporter)
        version = _version()
        resource = Resource.create({"service.name": settings.service_name, "service.version": version})
        # Never the global provider (nobody else's spans), shut down by ``close``, not at exit.
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        processor = BatchSpanProcessor(
            cast(Any, self.exporter), max_queue_size=QUEUE, max_export_batch_size=min(512, QUEUE)
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("lookingglass", version)
        self._runs: dict[str, _Open] = {}
        self._items: dict[tuple[str, str, int | None], _Open] = {}
        self._roles: dict[str, _Open] = {}

    # -- what text may go ------------------------------------------------------------------------------

    def adopt(self, patterns: Sequence[CustomPattern]) -> None:
        new = [p for p in patterns if p.name not in self.patterns]
        if new:
            self.patterns.update((p.name, p) for p in new)
            self._redactor = None

    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor(tuple(self.patterns.values()), self.redaction.ner_model)
        return self._redactor

    def shareable(
        self, texts: Sequence[str | None], level: Sensitivity | None
    ) -> tuple[str | None, ...] | str:
        """``texts`` as the collector may get them (redacted together, with one mapping), or why it may not."""
        level = level or self.default_sensitivity
        if not self.external:
            return tuple(texts)
        if level == "restricted":
            return "restricted"
        if not self.redaction.enabled:
            # redaction off: internal text stays home, public text goes as the endpoints get it
            return tuple(texts) if level == "public" else "not redacted"
        # Public text is redacted too, as the gateway redacts it: a call's messages carry more than the item
        # (the team's rubric, a document), and the item's level says nothing of those.
        return self.redactor().redact(texts).texts

    # -- spans -----------------------------------------------------------------------------------------

    def _context(self, span: Any) -> Any:
        from opentelemetry import trace

        return trace.set_span_in_context(span)

    def _run(self, run_id: str, at: int) -> _Open:
        held = self._runs.get(run_id)
        if held is None:
            span = self.tracer.start_span("evals run", attributes={"evals.run.id": run_id}, start_time=at)
            held = self._runs[run_id] = _Open(span, at)
        return held

    def _item(self, run_id: str, item_id: str, sample: int | None, at: int) -> _Open:
        key = (run_id, item_id, sample)
        held = self._items.get(key)
        if held is None:
            run = self._run(run_id, at)
            attributes = _attrs({"evals.run.id": run_id, "evals.item.id": item_id, "evals.sample": sample})
            span = self.tracer.start_span(
                "evals item", context=self._context(run.span), attributes=attributes, start_time=at
            )
            held = self._items[key] = _Open(span, at)
        return held

    def _role(self, role: str, at: int) -> _Open:
        held = self._roles.get(role)
        if held is None:
            span = self.tracer.start_span(f"evals {role}", attributes={"evals.role": role}, start_time=at)
            held = self._roles[role] = _Open(span, at)
        return held

    def _parents(self, context: CallContext | None, at: int) -> list[_Open]:
        """The open spans a call or event hangs under, innermost first."""
        if context is None:
            return [self._role("call", at)]
        if context.run_id is None:
            return [self._role(context.role, at)]
        if context.item_id is None:
            return [self._run(context.run_id, at)]
        return [
            self._item(context.run_id, context.item_id, context.sample, at),
            self._run(context.run_id, at),
        ]

    async def trace_call(
        self,
        name: str,
        endpoint: Endpoint,
        request: CompletionRequest,
        call: Awaitable[Completion],
        restore: Callable[[str | None], str | None] | None = None,
    ) -> Completion:
        context = current()
        start = time.time_ns()
        parents = self._parents(context, start)
        model = endpoint.model or ""
        attributes = _attrs({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": endpoint.provider,
            "gen_ai.system": endpoint.provider,
            "gen_ai.request.model": endpoint.model,
            "gen_ai.request.max_tokens": endpoint.max_tokens,
            "gen_ai.request.temperature": endpoint.temperature,
            "gen_ai.request.top_p": endpoint.top_p,
            "gen_ai.request.seed": endpoint.seed,
            **_server(endpoint.base_url),
            "evals.endpoint": name,
            "evals.endpoint.external": endpoint.is_external(),
            "evals.role": context.role if context else None,
            "evals.run.id": context.run_id if context else None,
            "evals.item.id": context.item_id if context else None,
            "evals.sample": context.sample if context else None,
        })  # fmt: skip
        span = self.tracer.start_span(
            f"chat {model}".strip(), context=self._context(parents[0].span), attributes=attributes,
            start_time=start, kind=_client_kind(),
        )  # fmt: skip
        try:
            completion = await call
        except BaseException as exc:
            # The class only: a server's error text may quote what was sent.
            span.set_attribute("error.type", type(exc).__name__)
            _error(span)
            self._end(span, parents)
            raise
        finish = [completion.finish_reason] if completion.finish_reason else None
        redactions = sum(context.redactions.values()) if context and context.redactions else None
        response = {
            "gen_ai.response.model": completion.model_id,
            "gen_ai.usage.input_tokens": completion.tokens_in,
            "gen_ai.usage.output_tokens": completion.tokens_out,
            "gen_ai.response.finish_reasons": finish,
            "evals.redactions": redactions,
        }
        span.set_attributes(_attrs(response))
        if self.settings.capture_text:
            self._messages(
                span, request, restore(completion.text) if restore else completion.text, completion
            )
        self._end(span, parents)
        return completion

    def _messages(
        self, span: Any, request: CompletionRequest, reply: str | None, completion: Completion
    ) -> None:
        turns = [m.get("content") for m in request.messages]
        texts = self.shareable([*turns, reply], request.sensitivity)
        if isinstance(texts, str):
            span.set_attribute("evals.text.withheld", texts)
            return
        inputs = [
            {"role": m.get("role", "user"), "parts": [{"type": "text", "content": t or ""}]}
            for m, t in zip(request.messages, texts[:-1], strict=True)
        ]
        output = {"role": "assistant", "parts": [{"type": "text", "content": texts[-1] or ""}]}
        if completion.finish_reason:
            output["finish_reason"] = completion.finish_reason
        span.set_attribute("gen_ai.input.messages", json.dumps(inputs, ensure_ascii=False))
        span.set_attribute("gen_ai.output.messages", json.dumps([output], ensure_ascii=False))

    def _end(self, span: Any, parents: list[_Open]) -> None:
        end = time.time_ns()
        span.end(end_time=end)
        for parent in parents:
            parent.touch(end)

    def evaluation(self, item: Item, judgment: Judgment, rubric: str) -> None:
        at = time.time_ns()
        held = self._item(judgment.run_id, judgment.item_id, judgment.sample, at)
        held.span.set_attribute("evals.item.area", item.area)
        attributes: dict[str, Any] = {
            "gen_ai.evaluation.name": rubric,
            "evals.judge": judgment.judge,
            "evals.judge.fingerprint": judgment.judge_fingerprint,
            "evals.judge.model_id": judgment.model_id,
            "evals.verdict.repeat": judgment.repeat,
            "evals.verdict.cached": judgment.cached,
            "evals.run.id": judgment.run_id,
            "evals.item.id": judgment.item_id,
            "evals.sample": judgment.sample,
        }
        if judgment.score is not None:
            attributes["gen_ai.evaluation.score.value"] = float(judgment.score)
            attributes["gen_ai.evaluation.score.label"] = (
                "pass" if judgment.score >= self.pass_score else "fail"
            )
        if judgment.error is not None:
            attributes["error.type"] = "unscored"  # the error's text may quote the judge's reply: not sent
        if judgment.rationale:
            # Redacted beside the item's own text, so a value found there is replaced in the explanation too.
            context = [m.content for m in item.prompt()] + [item.reference]
            texts = self.shareable([*context, judgment.rationale], item.sensitivity)
            if isinstance(texts, str):
                attributes["evals.explanation.withheld"] = texts
            else:
                attributes["gen_ai.evaluation.explanation"] = texts[-1]
        held.span.add_event(EVALUATION_EVENT, _attrs(attributes), timestamp=at)
        held.touch(at)
        self._run(judgment.run_id, at).touch(at)

    # -- the end ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """End the open spans and send what is left (waiting at most ``FLUSH_MS``)."""
        # A big run's items are sent in turn, never dropped by a full queue.
        chunk = max(1, QUEUE // 2)
        for group in (self._items, self._runs, self._roles):
            for ended, held in enumerate(group.values(), start=1):
                held.span.end(end_time=held.last)
                if ended % chunk == 0:
                    self.provider.force_flush(FLUSH_MS)
            group.clear()
        self.provider.force_flush(FLUSH_MS)
        self.provider.shutdown()
        if self.exporter.failed:
            log.warning(
                "telemetry: the collector at %s did not take %d batch(es) of spans; the results are stored as usual",
                safe_url(self.url),
                self.exporter.failed,
            )


@contextmanager
def _hidden(names: Sequence[str]) -> Iterator[None]:
    """The environment without ``names`` meanwhile (the exporter reads them when it is built, only then)."""
    held = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(held)


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes: no None values (the SDK drops them with a warning)."""
    return {k: v for k, v in values.items() if v is not None}


def _server(base_url: str | None) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of an endpoint (never its credentials)."""
    if base_url is None:
        return {}
    parts = urllib.parse.urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname, "server.port": port}


def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT


def _error(span: Any) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR))


def _version() -> str:
    try:
        return metadata.version("lookingglass")
    except metadata.PackageNotFoundError:
        return "unknown"
