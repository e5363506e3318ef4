"""An OTLP/HTTP collector on loopback for tests (the ``otel`` extra): every span the SDK's exporter posts,
decoded. Shared by ``test_telemetry.py`` and the perimeter test (an external collector is a door out too).
Import it only after ``pytest.importorskip("opentelemetry.exporter.otlp.proto.http")``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from evals.outbound import telemetry

# -- the collector --------------------------------------------------------------------------------------


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    start: int
    end: int


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _span(s: Any, resource: dict[str, Any]) -> Span:
    return Span(
        s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), _attributes(s.attributes),
        [(e.name, _attributes(e.attributes)) for e in s.events], resource, s.start_time_unix_nano,
        s.end_time_unix_nano,
    )  # fmt: skip


@dataclass
class Collector:
    """An OTLP/HTTP receiver on loopback: every ``ExportTraceServiceRequest`` posted to ``/v1/traces``."""

    spans: list[Span] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    delay: float = 0.0
    """Seconds each export waits before it is answered (a busy collector)."""

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def events(self) -> list[tuple[Span, dict[str, Any]]]:
        return [
            (s, attrs) for s in self.spans for name, attrs in s.events if name == telemetry.EVALUATION_EVENT
        ]

    def received(self) -> str:
        """Every string of every export, decoded (what a careful reader of the collector would see)."""
        return "\n".join(
            json.dumps([s.name, s.attributes, s.events, s.resource], ensure_ascii=False) for s in self.spans
        )


@contextmanager
def serve_collector() -> Iterator[Collector]:
    """A collector listening on loopback until the block ends."""
    got = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(got.delay)
            got.bodies.append(body)
            got.headers.append({k.lower(): v for k, v in self.headers.items()})
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    got.spans.extend(_span(s, resource) for s in scope.spans)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
