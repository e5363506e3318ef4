"""Fake OpenAI and Anthropic servers: real HTTP on loopback, for tests and benchmarks.

The real ``openai.AsyncOpenAI`` and ``anthropic.AsyncAnthropic`` clients reach these servers through
``base_url``, so everything between our code and the wire (request building, auth headers, error mapping,
timeouts, connection pooling) is exercised for real. Failures are injected per request with ``Fault``::

    with FakeOpenAI(responder=text_reply(str.upper)) as server:
        server.inject(Fault("rate_limit", retry_after=1))   # the next request gets a 429
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test")
        ...
        assert server.count() == 2

Both also serve their vendor's batch API (``evals.fakes.batches``; ``server.batch_behaviour`` makes batches
slow, partial, expired or failed).

Each server runs ``http.server.ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one daemon thread per
connection) in a background thread. Its own cost is about half a millisecond of CPU per request with 64
connections open, so in a benchmark the client side (the SDKs spend milliseconds per call) is the limit.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count as counter
from typing import Any, ClassVar, Literal, Self

from evals.fakes.batches import BatchBehaviour, BatchBook

Responder = Callable[[dict[str, Any]], "str | dict[str, Any] | Reply"]
"""Computes a reply from a request body: a ``str`` is a text reply, a ``dict`` a structured one, a ``Reply``
either with a finish reason, reasoning or a tool call of its own."""

FaultKind = Literal["rate_limit", "server_error", "slow", "malformed", "disconnect", "trickle"]
RefusalStyle = Literal["llama-cpp-python", "400", "422"]
"""How a server refuses a ``response_format`` it does not support: llama-cpp-python answers 500 with a
pydantic validation error as the message; vLLM, LM Studio and others 400; FastAPI servers 422."""


@dataclass
class Fault:
    """One injected failure, consumed by the next request the server receives."""

    kind: FaultKind
    retry_after: float | None = None
    """Seconds, sent as the ``Retry-After`` header (on 429, or on any error status when set)."""
    seconds: float = 0.0
    """For ``slow``: how long to sleep before answering normally; for ``trickle``: the pause between
    each byte of an otherwise normal reply (headers go out at once)."""
    status: int = 500
    """For ``server_error``: the HTTP status to answer with (any 4xx or 5xx, e.g. 400 or 401)."""


@dataclass
class Reply:
    """A reply with more than its content: how it ended, reasoning the API returns apart from the text, and
    a tool call."""

    content: str | dict[str, Any]
    """Text, or a structured object (as a plain ``dict`` reply)."""
    finish_reason: str | None = None
    """``length`` (OpenAI) or ``max_tokens`` (Anthropic) for a cut-off answer; None: the normal end."""
    reasoning: str | None = None
    """Sent as ``message.reasoning_content`` (OpenAI-compatible) or a ``thinking`` block (Anthropic)."""
    tool_call: tuple[str, dict[str, Any] | str] | None = None
    """A tool the reply calls, ``(name, arguments)``, whatever the request offered: ``message.tool_calls``
    (OpenAI-compatible; text ``arguments`` are sent as written) or a ``tool_use`` block (Anthropic), after
    the text of ``content`` when it has any."""
    tool_shape: str | None = None
    """How the tool call is sent, when not as above: ``function_call`` (OpenAI-compatible: the older
    ``message.function_call``, finish reason ``function_call``) or an Anthropic block type
    (``server_tool_use``, ``mcp_tool_use``)."""


# Error "type" strings as both APIs spell them; the SDKs read them into their exceptions.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_MALFORMED = b'{"id": "broken", "choices": [{"message": {"content": "cut off'
_TRICKLE = "x-fake-trickle"
"""Header set inside the server to make the handler send the body byte by byte; never sent."""


def count_tokens(text: str) -> int:
    """The fakes' token count: whitespace-separated words (rough, but monotone in length)."""
    return len(text.split())


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of content blocks (both APIs allow either)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user turn of a chat request (OpenAI or Anthropic), or ``""``."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def grade_by_reference(body: dict[str, Any]) -> dict[str, Any]:
    """A fake judge's structured verdict: 5 when the reference block's text is in the answer block (ignoring
    case), else 1. A grading prompt without both blocks is a bug in the prompt, so it fails loudly."""
    text = last_user_text(body)
    answer = re.search(r"<answer>(.*?)</answer>", text, re.S)
    reference = re.search(r"<reference>(.*?)</reference>", text, re.S)
    assert answer and reference, "the judge prompt must carry the answer and the reference in delimiters"
    hit = reference.group(1).strip().lower() in answer.group(1).lower()
    return {"rationale": "matches the reference" if hit else "wrong", "score": 5 if hit else 1}


def text_reply(fn: Callable[[str], str]) -> Responder:
    """A responder answering ``fn(last user turn)`` as text."""
    return lambda body: fn(last_user_text(body))


def default_responder(body: dict[str, Any]) -> str:
    """What a fake says unless told otherwise."""
    return "I don't know."


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive handler threads wait for the client's next request; closing must not wait for them.
    block_on_close = False
    request_queue_size = 512  # listen backlog: benchmarks open many connections at once

    def __init__(self, fake: FakeServer):
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up before a slow answer is expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    disable_nagle_algorithm = True  # headers and body leave at once, no 40 ms delayed-ACK stalls
    wbufsize = 1 << 16  # buffer the response so headers and body go out in one send

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self._serve(raw)

    def _serve(self, raw: bytes | None) -> None:
        try:
            status, body, headers = self.server.fake._dispatch(self.command, self.path, raw, self.headers)
        except _Disconnect:
            self.close_connection = True
            return
        trickle = float(headers.pop(_TRICKLE, 0.0))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not trickle:
            self.wfile.write(body)
            return
        self.wfile.flush()
        for i in range(len(body)):  # each read of the client gets a byte in time: no per-read timeout trips
            time.sleep(trickle)
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()


class _Disconnect(Exception):
    """Raised inside the server to hang up without answering."""


class FakeServer:
    """Base of the fake API servers. Use as a context manager, or call ``start()`` and ``stop()``."""

    url_path: ClassVar[str] = ""
    """Path appended to ``http://127.0.0.1:PORT`` to make the SDK's ``base_url``."""
    completion_path: ClassVar[str] = ""
    vendor: ClassVar[Literal["anthropic", "openai"]] = "openai"
    """Whose batch API it speaks (``evals.fakes.batches``)."""
    id_prefix: ClassVar[str] = "fake"
    default_model_id: ClassVar[str] = "fake-model"

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        model_id: str | None = None,
        latency: float = 0.0,
        refuses: tuple[str, ...] = (),
        refusal: RefusalStyle = "llama-cpp-python",
    ):
        self.responder: Responder = responder or default_responder
        self.refuses = refuses
        """``response_format`` types this server refuses (``json_schema``, ``json_object``), in ``refusal`` style."""
        self.refusal: RefusalStyle = refusal
        """Computes each reply from the request body; replace it at any time."""
        self.model_id = model_id or self.default_model_id
        """Model id reported in every response (and by ``GET /v1/models``)."""
        self.latency = latency
        """Seconds added to every call."""
        self.requests: list[dict[str, Any]] = []
        """The JSON body of every POST received, in order (faulted ones included)."""
        self.headers: list[dict[str, str]] = []
        """The headers of each POST in ``requests`` (names lower-cased)."""
        self.raw_requests: list[bytes] = []
        """The body of each POST in ``requests`` exactly as received (the audit trail hashes these bytes)."""
        self.in_flight = 0
        """Requests being answered right now."""
        self.max_in_flight = 0
        """The most requests answered at once so far (what a concurrency limit must keep down)."""
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._ids = counter(1)
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.batch_book = BatchBook(self.vendor, self._answer)
        """The vendor's batch API (``evals.fakes.batches``): its batches and files."""

    @property
    def batch_behaviour(self) -> BatchBehaviour:
        """How this server's batches behave: slow, partial, expired, failed (``evals.fakes.batches``)."""
        return self.batch_book.behaviour

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        if self._server is None:
            self._server = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up on open connections and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            connections = list(server.open_connections)
        for connection in connections:  # wakes handler threads blocked on a keep-alive read
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The ``base_url`` to give the SDK."""
        return f"http://127.0.0.1:{self.port}{self.url_path}"

    def inject(self, *faults: Fault) -> None:
        """Queue failures: each next request (of any route) consumes one, in order."""
        with self._lock:
            self._faults.extend(faults)

    def count(self, predicate: Callable[[dict[str, Any]], bool] | None = None) -> int:
        """Requests received so far (only those whose body matches ``predicate``, when given)."""
        with self._lock:
            bodies = list(self.requests)
        return len(bodies) if predicate is None else sum(1 for b in bodies if predicate(b))

    def clear(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self.raw_requests.clear()
            self._faults.clear()

    def _dispatch(
        self, method: str, path: str, raw: bytes | None, headers: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._respond(method, path, raw, headers)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(
        self, method: str, path: str, raw: bytes | None, headers: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        body: dict[str, Any] | None = None
        if raw is not None:
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else {"_unparsed": raw.decode("utf-8", "replace")}
        with self._lock:
            if body is not None:
                self.requests.append(body)
                self.headers.append({k.lower(): v for k, v in headers.items()})
                self.raw_requests.append(raw or b"")
            fault = self._faults.popleft() if self._faults else None
        if self.latency:
            time.sleep(self.latency)
        if fault is not None:
            early = self._apply(fault)
            if early is not None:
                return early
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            return 200, _dump(self._models()), {}
        routed = self.batch_book.route(method, path, raw, headers, f"http://127.0.0.1:{self.port}")
        if routed is not None:
            return routed
        if method != "POST" or path != self.completion_path:
            return self._error(404, f"no route {method} {path}")
        if body is None or "_unparsed" in body:
            return self._error(400, "request body is not a JSON object")
        status, answer = self._answer(body)
        trickle = {_TRICKLE: str(fault.seconds)} if fault is not None and fault.kind == "trickle" else {}
        return status, _dump(answer), trickle if status == 200 else {}

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The answer to one request body, as a status and a JSON object (a batch's requests get it too)."""
        refused = self._refuse(body)
        if refused is not None:
            return refused[0], json.loads(refused[1])
        try:
            reply = self.responder(body)
        except Exception as exc:  # a broken responder is a test bug: say so in the reply
            status, error, _ = self._error(500, f"responder failed: {type(exc).__name__}: {exc}")
            return status, json.loads(error)
        return 200, self._reply(body, reply)

    def _apply(self, fault: Fault) -> tuple[int, bytes, dict[str, str]] | None:
        """The response a fault forces, or None when the request should then proceed normally."""
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return None
        if fault.kind == "disconnect":
            raise _Disconnect
        if fault.kind == "malformed":
            return 200, _MALFORMED, {}
        if fault.kind == "trickle":
            return None
        status = 429 if fault.kind == "rate_limit" else fault.status
        status, body, headers = self._error(status, f"injected {fault.kind}")
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return status, body, headers

    def _error(self, status: int, message: str) -> tuple[int, bytes, dict[str, str]]:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        try:
            message = f"{HTTPStatus(status).phrase}: {message}"
        except ValueError:
            pass
        return status, _dump(self._error_body(kind, message)), {}

    def _refuse(self, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]] | None:
        """The refusal of a request whose ``response_format`` type is in ``refuses``, or None."""
        response_format = body.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in self.refuses:
            return None
        accepted = " or ".join(
            f"'{t}'" for t in ("text", "json_object", "json_schema") if t not in self.refuses
        )
        if self.refusal == "422":  # FastAPI's own validation error shape
            detail = {"type": "literal_error", "loc": ["body", "response_format", "type"], "input": kind}
            return 422, _dump({"detail": [{**detail, "msg": f"Input should be {accepted}"}]}), {}
        if self.refusal == "400":
            return self._error(400, f"response_format type '{kind}' is not supported by this server")
        # llama-cpp-python: its route error handler answers any exception, the request model's pydantic
        # ValidationError included, with a 500 whose message is str(exception)
        message = (
            "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
            f"  Input should be {accepted} [type=literal_error, input_value='{kind}', input_type=str]"
        )
        error = {"message": message, "type": "internal_server_error", "param": None, "code": None}
        return 500, _dump({"error": error}), {}

    def _next_id(self) -> str:
        return f"{self.id_prefix}-{next(self._ids)}"

    def _reply(self, body: dict[str, Any], reply: str | dict[str, Any] | Reply) -> dict[str, Any]:
        raise NotImplementedError

    def _models(self) -> dict[str, Any]:
        raise NotImplementedError

    def _error_body(self, kind: str, message: str) -> dict[str, Any]:
        raise NotImplementedError


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def prompt_tokens(body: dict[str, Any]) -> int:
    """The fakes' count of a request's prompt tokens: words of every turn (and system), plus 3 a turn."""
    messages = body.get("messages") or []
    words = sum(count_tokens(_content_text(m.get("content"))) for m in messages if isinstance(m, dict))
    system = body.get("system")
    words += count_tokens(_content_text(system)) if system else 0
    return words + 3 * len(messages)  # role markers and turn separators cost tokens too


class FakeOpenAI(FakeServer):
    """``POST /v1/chat/completions``, ``GET /v1/models`` and the Batch API (files and batches), as OpenAI
    speaks them (OpenAI-compatible servers serve the first two).

    A ``dict`` reply becomes the message content as JSON text, as a ``json_schema`` response is.
    """

    url_path = "/v1"
    completion_path = "/v1/chat/completions"
    id_prefix = "chatcmpl"
    default_model_id = "fake-gpt"

    def _reply(self, body: dict[str, Any], reply: str | dict[str, Any] | Reply) -> dict[str, Any]:
        extra = reply if isinstance(reply, Reply) else Reply(reply)
        reply = extra.content
        text = reply if isinstance(reply, str) else json.dumps(reply)
        prompt, completion = prompt_tokens(body), count_tokens(text) + count_tokens(extra.reasoning or "")
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if extra.reasoning is not None:
            message["reasoning_content"] = extra.reasoning
        finish = extra.finish_reason or "stop"
        if extra.tool_call is not None:
            name, arguments = extra.tool_call
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            function = {"name": name, "arguments": arguments}
            if extra.tool_shape == "function_call":
                message["function_call"] = function
            else:
                message["tool_calls"] = [
                    {"id": f"call_{next(self._ids)}", "type": "function", "function": function}
                ]
            message["content"] = text or None  # what servers send with a bare tool call
            finish = extra.finish_reason or extra.tool_shape or "tool_calls"
        return {
            "id": self._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }

    def _models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.model_id, "object": "model", "created": 0, "owned_by": "fake"}],
        }

    def _error_body(self, kind: str, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class FakeAnthropic(FakeServer):
    """``POST /v1/messages``, ``GET /v1/models`` and the Message Batches API as the Anthropic API speaks them.

    A ``dict`` reply to a request that offers ``tools`` becomes a ``tool_use`` block calling the forced
    tool (or the first one); otherwise replies are text blocks.
    """

    completion_path = "/v1/messages"
    vendor = "anthropic"
    id_prefix = "msg"
    default_model_id = "fake-claude"

    def _reply(self, body: dict[str, Any], reply: str | dict[str, Any] | Reply) -> dict[str, Any]:
        extra = reply if isinstance(reply, Reply) else Reply(reply)
        reply = extra.content
        tools = body.get("tools") or []
        block: dict[str, Any]
        if isinstance(reply, dict) and tools:
            choice = body.get("tool_choice") or {}
            name = choice.get("name") if choice.get("type") == "tool" else tools[0].get("name")
            block = {"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": name, "input": reply}
            stop_reason, out_tokens = "tool_use", count_tokens(json.dumps(reply))
        else:
            text = reply if isinstance(reply, str) else json.dumps(reply)
            block = {"type": "text", "text": text}
            stop_reason, out_tokens = "end_turn", count_tokens(text)
        content = [block]
        if extra.tool_call is not None:
            name, arguments = extra.tool_call
            kind = extra.tool_shape or "tool_use"
            called = {"type": kind, "id": f"toolu_{next(self._ids)}", "name": name, "input": arguments}
            if kind == "mcp_tool_use":
                called["server_name"] = "fake-mcp"
            content = [block, called] if reply else [called]
            stop_reason = "tool_use" if kind == "tool_use" else "end_turn"  # a server's tool ran there
        if extra.reasoning is not None:
            thinking = {"type": "thinking", "thinking": extra.reasoning, "signature": "fake-signature"}
            content.insert(0, thinking)
            out_tokens += count_tokens(extra.reasoning)
        return {
            "id": self._next_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model_id,
            "content": content,
            "stop_reason": extra.finish_reason or stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens(body), "output_tokens": out_tokens},
        }

    def _models(self) -> dict[str, Any]:
        model = {
            "type": "model",
            "id": self.model_id,
            "display_name": self.model_id,
            "created_at": "2025-01-01T00:00:00Z",
        }
        return {"data": [model], "has_more": False, "first_id": self.model_id, "last_id": self.model_id}

    def _error_body(self, kind: str, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}
