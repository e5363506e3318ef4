"""The vendors' batch APIs, as the fake servers speak them over HTTP (``evals.fakes``).

``FakeAnthropic`` serves Anthropic's Message Batches API (``POST /v1/messages/batches``, ``GET
/v1/messages/batches/{id}``, the results JSONL at the batch's ``results_url``); ``FakeOpenAI`` serves
OpenAI's Batch API (``POST /v1/files`` with purpose ``batch``, ``POST /v1/batches``, ``GET
/v1/batches/{id}``, ``GET /v1/files/{id}/content``). Each request of a batch is answered as the server
answers it online (its responder, refusals and all) once the batch ends.

How batches behave is set on the server's ``batch_behaviour`` (``BatchBehaviour``), at any time::

    server.batch_behaviour.polls = 3                     # three status reads say "in progress"
    server.batch_behaviour.outcome = lambda i: "expired" if i % 2 else "succeeded"
    server.batch_behaviour.failed = True                 # OpenAI: the whole batch fails validation

A slow batch is ``polls``; a partial one drops or errors some requests (``outcome``); an expired one expires
them (OpenAI then says ``expired`` for the batch). ``batches`` holds every batch created, in order.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count as counter
from typing import Any, Literal

Outcome = Literal["succeeded", "errored", "expired", "canceled", "missing"]
"""What happens to one request of a batch: answered, an error result, expired, canceled, or left out of the
results altogether (``missing``)."""

Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
"""The server's online answer to a request body: HTTP status and JSON body."""

Response = tuple[int, bytes, dict[str, str]]


@dataclass
class BatchBehaviour:
    """How the fake's batches behave (change it at any time; read when a batch is polled)."""

    polls: int = 0
    """Status reads of a new batch that say it is still in progress, before it ends."""
    outcome: Callable[[int], Outcome] = lambda index: "succeeded"
    """What happens to the request at ``index`` (0-based, in upload order) of a batch."""
    failed: bool = False
    """OpenAI: the batch fails validation (status ``failed``, no results); Anthropic: every request errors."""


@dataclass
class FakeBatch:
    """One batch the fake accepted."""

    id: str
    requests: list[tuple[str, dict[str, Any]]]
    """(custom id, request body) in upload order."""
    created_at: int
    polls_left: int
    ended: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    """One result line per request the results hold (OpenAI: output and error lines together)."""
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None


class BatchBook:
    """The batches and files of one fake server, and the routes that serve them."""

    def __init__(self, vendor: Literal["anthropic", "openai"], answer: Answer):
        self.vendor = vendor
        self.answer = answer
        self.behaviour = BatchBehaviour()
        self.batches: list[FakeBatch] = []
        self.files: dict[str, tuple[str, bytes]] = {}
        """Uploaded and result files by id: (purpose, content)."""
        self._lock = threading.Lock()
        self._ids = counter(1)

    def route(self, method: str, path: str, raw: bytes | None, headers: Any, base: str) -> Response | None:
        """The response to a batch route, or None when ``path`` is none of them."""
        parts = path.strip("/").split("/")
        if self.vendor == "anthropic" and parts[:3] == ["v1", "messages", "batches"]:
            if method == "POST" and len(parts) == 3:
                return self._anthropic_create(raw)
            if method == "GET" and len(parts) == 4:
                return self._anthropic_batch(parts[3], base)
            if method == "GET" and len(parts) == 5 and parts[4] == "results":
                return self._anthropic_results(parts[3])
        if self.vendor == "openai":
            if method == "POST" and parts == ["v1", "files"]:
                return self._openai_upload(raw, headers)
            if method == "POST" and parts == ["v1", "batches"]:
                return self._openai_create(raw)
            if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "batches"]:
                return self._openai_batch(parts[2])
            if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "files"] and parts[3] == "content":
                return self._file_content(parts[2])
        return None

    # -- shared -------------------------------------------------------------------------------------------

    def _new(self, prefix: str, requests: list[tuple[str, dict[str, Any]]]) -> FakeBatch:
        with self._lock:
            batch = FakeBatch(f"{prefix}{next(self._ids)}", requests, int(time.time()), self.behaviour.polls)
            self.batches.append(batch)
        return batch

    def _find(self, batch_id: str) -> FakeBatch | None:
        with self._lock:
            return next((b for b in self.batches if b.id == batch_id), None)

    def _poll(self, batch: FakeBatch) -> None:
        """One status read: the batch ends once ``polls`` reads said it was in progress."""
        with self._lock:
            if batch.ended:
                return
            if batch.polls_left > 0:
                batch.polls_left -= 1
                return
            batch.ended = True
        batch.results = [self._result(i, cid, body) for i, (cid, body) in enumerate(batch.requests)]
        batch.results = [r for r in batch.results if r]

    def _result(self, index: int, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        outcome = "errored" if self.behaviour.failed else self.behaviour.outcome(index)
        if outcome == "missing":
            return {}
        if self.vendor == "anthropic":
            return {"custom_id": custom_id, "result": self._anthropic_result(outcome, body)}
        return {"id": f"batch_req_{index}", "custom_id": custom_id, **self._openai_result(outcome, body)}

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Response:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return status, json.dumps(body).encode(), {}

    # -- Anthropic ----------------------------------------------------------------------------------------

    def _anthropic_create(self, raw: bytes | None) -> Response:
        try:
            body = json.loads(raw or b"")
            requests = [(r["custom_id"], r["params"]) for r in body["requests"]]
        except (ValueError, KeyError, TypeError):
            return self._error(
                400, "invalid_request_error", "requests: expected a list of {custom_id, params}"
            )
        if not requests or len({cid for cid, _ in requests}) != len(requests):
            return self._error(400, "invalid_request_error", "requests: empty, or a custom_id used twice")
        batch = self._new("msgbatch_", requests)
        return 200, json.dumps(self._anthropic_batch_body(batch, "")).encode(), {}

    def _anthropic_batch(self, batch_id: str, base: str) -> Response:
        batch = self._find(batch_id)
        if batch is None:
            return self._error(404, "not_found_error", f"no batch {batch_id}")
        self._poll(batch)
        return 200, json.dumps(self._anthropic_batch_body(batch, base)).encode(), {}

    def _anthropic_batch_body(self, batch: FakeBatch, base: str) -> dict[str, Any]:
        counts = {
            "processing": len(batch.requests),
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        if batch.ended:
            counts["processing"] = 0
            for r in batch.results:
                counts[r["result"]["type"]] += 1
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created_at))
        return {
            "id": batch.id, "type": "message_batch", "created_at": created, "expires_at": created,
            "processing_status": "ended" if batch.ended else "in_progress", "request_counts": counts,
            "ended_at": created if batch.ended else None, "archived_at": None, "cancel_initiated_at": None,
            "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if batch.ended else None,
        }  # fmt: skip

    def _anthropic_result(self, outcome: str, body: dict[str, Any]) -> dict[str, Any]:
        if outcome == "succeeded":
            status, message = self.answer(body)
            if status == 200:
                return {"type": "succeeded", "message": message}
            return {"type": "errored", "error": message}
        if outcome == "errored":
            error = {"type": "api_error", "message": "Internal server error"}
            return {"type": "errored", "error": {"type": "error", "error": error}}
        return {"type": outcome}

    def _anthropic_results(self, batch_id: str) -> Response:
        batch = self._find(batch_id)
        if batch is None or not batch.ended:
            return self._error(404, "not_found_error", f"no results for batch {batch_id}")
        lines = b"".join(json.dumps(r).encode() + b"\n" for r in batch.results)
        return 200, lines, {}

    # -- OpenAI -------------------------------------------------------------------------------------------

    def _openai_error(self, status: int, message: str) -> Response:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        return status, json.dumps(body).encode(), {}

    def _openai_upload(self, raw: bytes | None, headers: Any) -> Response:
        fields = _multipart(raw or b"", headers.get("Content-Type", ""))
        content, purpose = fields.get("file"), fields.get("purpose", b"").decode()
        if content is None or purpose != "batch":
            return self._openai_error(400, "expected a 'file' and purpose 'batch'")
        file_id = f"file-{next(self._ids)}"
        with self._lock:
            self.files[file_id] = (purpose, content)
        return 200, json.dumps(self._file_object(file_id, purpose, content)).encode(), {}

    @staticmethod
    def _file_object(file_id: str, purpose: str, content: bytes) -> dict[str, Any]:
        return {
            "id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
            "filename": "batch.jsonl", "purpose": purpose, "status": "processed",
        }  # fmt: skip

    def _openai_create(self, raw: bytes | None) -> Response:
        try:
            body = json.loads(raw or b"")
            file_id = body["input_file_id"]
            assert body["endpoint"] == "/v1/chat/completions" and body["completion_window"] == "24h"
            lines = [json.loads(line) for line in self.files[file_id][1].splitlines() if line.strip()]
            requests = [(line["custom_id"], line["body"]) for line in lines]
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._openai_error(400, "input_file_id, endpoint or completion_window is not valid")
        batch = self._new("batch_", requests)
        batch.input_file_id = file_id
        return 200, json.dumps(self._openai_batch_body(batch)).encode(), {}

    def _openai_batch(self, batch_id: str) -> Response:
        batch = self._find(batch_id)
        if batch is None:
            return self._openai_error(404, f"no batch {batch_id}")
        self._poll(batch)
        if batch.ended and not self.behaviour.failed and batch.output_file_id is None:
            ok = [r for r in batch.results if r.get("response", {}) and r["response"]["status_code"] == 200]
            bad = [r for r in batch.results if r not in ok]
            batch.output_file_id = self._result_file(ok)
            batch.error_file_id = self._result_file(bad)
        return 200, json.dumps(self._openai_batch_body(batch)).encode(), {}

    def _result_file(self, rows: list[dict[str, Any]]) -> str | None:
        if not rows:
            return None
        file_id = f"file-{next(self._ids)}"
        with self._lock:
            self.files[file_id] = ("batch_output", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
        return file_id

    def _openai_batch_body(self, batch: FakeBatch) -> dict[str, Any]:
        total = len(batch.requests)
        status = "in_progress"
        completed = failed = 0
        errors = None
        if batch.ended and self.behaviour.failed:
            status = "failed"
            errors = {
                "object": "list",
                "data": [{"code": "invalid_request", "message": "the file is not valid"}],
            }
        elif batch.ended:
            expired = any(r.get("error", {}) and r["error"]["code"] == "batch_expired" for r in batch.results)
            status = "expired" if expired else "completed"
            completed = sum(1 for r in batch.results if (r.get("response") or {}).get("status_code") == 200)
            failed = total - completed
        return {
            "id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": errors,
            "input_file_id": batch.input_file_id or "", "completion_window": "24h", "status": status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": batch.created_at, "request_counts": {"total": total, "completed": completed, "failed": failed},
        }  # fmt: skip

    def _openai_result(self, outcome: str, body: dict[str, Any]) -> dict[str, Any]:
        if outcome == "succeeded":
            status, reply = self.answer(body)
            return {
                "response": {"status_code": status, "request_id": "req_fake", "body": reply},
                "error": None,
            }
        if outcome == "errored":
            error = {"error": {"message": "Internal server error", "type": "server_error"}}
            return {"response": {"status_code": 500, "request_id": "req_fake", "body": error}, "error": None}
        code = "batch_expired" if outcome == "expired" else "batch_cancelled"
        return {"response": None, "error": {"code": code, "message": f"This request was not run: {outcome}."}}

    def _file_content(self, file_id: str) -> Response:
        with self._lock:
            found = self.files.get(file_id)
        if found is None:
            return self._openai_error(404, f"no file {file_id}")
        return 200, found[1], {}


def _multipart(raw: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a ``multipart/form-data`` body, by name."""
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields
