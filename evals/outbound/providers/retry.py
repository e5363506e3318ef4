"""Retries for provider calls: which failures are worth another attempt, and how long to wait.

Transient: 408, 409, 429 and 5xx statuses, connection errors, timeouts and malformed bodies. Anything
else (400, 401, 403, 404, 422..., and a tool call where text was asked for) fails at once: asking again
would get the same answer. So does a 500
whose body is a request-validation error (llama-cpp-python answers an unknown ``response_format`` that
way): the request itself is refused, and it will be refused again. Waits are jittered exponential
backoff, except that a server's ``Retry-After`` (or ``retry-after-ms``) is obeyed. ``timeout_s`` bounds
each attempt as a whole: the SDK's own timeout is per read, which a server trickling its reply never trips.

This module imports neither SDK: each provider passes its SDK's exception classes, so a run that only
uses OpenAI never pays for importing ``anthropic``. Error messages are built here from the status code
and the error's type, never from the SDK's exception text, so they cannot carry a key or a header.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from evals.errors import ProviderError
from evals.secrets import scrub

log = logging.getLogger("evals.outbound.providers")

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""Half a UTF-16 surrogate pair, which JSON may escape (``\\ud800``) but which is no character."""

T = TypeVar("T")

DEFAULT_BACKOFF = (0.5, 30.0, 1.0)
"""Initial wait, longest wait and jitter, in seconds. With the default 4 retries a call that never
connects gives up after at most 0.5+1+2+4 s plus 4 s of jitter (11.5 s); the fail-fast watch then skips
the retries of the calls after it, so a dead endpoint ends a run in about that time."""
# Backoff settings, read at each call so that tests can make them small.
BACKOFF_INITIAL_S, BACKOFF_MAX_S, BACKOFF_JITTER_S = DEFAULT_BACKOFF
RETRY_AFTER_CAP_S = 60.0
"""A server asking for a longer pause than this gets this (a run should not stall for hours)."""

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""Besides every 5xx."""

_SECRET_LIKE = re.compile(r"\b(sk|pk|key|tok)[-_][A-Za-z0-9_\-]{6,}", re.IGNORECASE)
# How servers say "this request is invalid" (pydantic, FastAPI, llama.cpp, vLLM, OpenAI): a 500 saying so
# is a refusal of the request, not an outage.
_VALIDATION = re.compile(
    r"validation error|input should be|field required|extra inputs are not permitted|literal_error"
    r"|unexpected keyword|not supported|unsupported|not allowed|not permitted|invalid value|is not valid",
    re.IGNORECASE,
)
# ... and the words that show the refused part is the structured-output request.
_FORMAT_FIELD = re.compile(r"response_format|json_schema|json_object|schema|grammar|structured", re.I)


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not the response the API promises."""


TOOL_CALL = "the model answered with a tool call, not text"
"""The reason of a reply that calls a tool though the request offered none (``NotText``)."""


class NotText(Exception):
    """The server answered 200 with a well-formed reply that holds no answer to grade: a tool call to a
    request that offered no tools. Not retried (the model would most likely do it again); the item's
    answer is this error, never an empty answer."""


class CallError(ProviderError):
    """A call that failed for good, with what the runner and the judge need to react to it.

    The message is one line without secrets (``judge 'x': 500 Internal Server Error (...) after 5
    attempts``); ``reason`` is the same without the endpoint and the attempt count, so equal reasons
    mean the same failure.
    """

    def __init__(
        self, message: str, *, reason: str, status: int | None, transient: bool, rejects_format: bool
    ):
        super().__init__(message)
        self.reason = reason
        self.status = status
        """The HTTP status, or None when there was no answer (connection, timeout, malformed body)."""
        self.transient = transient
        """True when retrying could have helped (the attempts ran out); False for a refusal."""
        self.rejects_format = rejects_format
        """The server refused the request's structured-output field (``response_format``, schema)."""


@dataclass(frozen=True)
class SDKErrors:
    """The exception classes of one SDK that the retry policy needs to tell apart."""

    status: type[Exception]
    """``APIStatusError``: the server answered with a 4xx or 5xx (has ``status_code`` and ``response``)."""
    connection: type[Exception]
    """``APIConnectionError``: no answer at all (refused, reset, disconnected)."""
    timeout: type[Exception]
    """``APITimeoutError``: no answer in time."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    # The SDKs wrap their HTTP library's errors in APIConnectionError; should one escape unwrapped, it is
    # transient too. Look the classes up only among modules already loaded, to import nothing here.
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx", "httpx2"):
        module = sys.modules.get(name)
        error = getattr(module, "TransportError", None) if module is not None else None
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def is_transient(exc: BaseException, errors: SDKErrors) -> bool:
    """True when asking again may succeed (never for a 500 whose body says the request is invalid)."""
    if isinstance(exc, errors.status):
        status = int(getattr(exc, "status_code", 0))
        if status >= 500:
            return not _VALIDATION.search(_server_message(getattr(exc, "body", None), None))
        return status in RETRYABLE_STATUSES
    return isinstance(exc, (errors.connection, MalformedResponse, *_transport_errors()))


def rejects_format(exc: BaseException, errors: SDKErrors) -> bool:
    """True when the server refused the structured-output part of the request (400, 422, or a validation 500)."""
    if not isinstance(exc, errors.status):
        return False
    status = int(getattr(exc, "status_code", 0))
    text = _server_message(getattr(exc, "body", None), None)
    if status in (400, 422) or (status >= 500 and _VALIDATION.search(text)):
        return bool(_FORMAT_FIELD.search(text))
    return False


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``), capped; None if not said."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    seconds: float | None = None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            seconds = float(millis) / 1000
    except (TypeError, ValueError):
        seconds = None
    value = headers.get("retry-after")
    if seconds is None and value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or seconds != seconds:  # absent, or NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def describe(
    exc: BaseException,
    errors: SDKErrors,
    timeout_s: float | None = None,
    secret: str | Sequence[str] | None = None,
) -> str:
    """One line saying what went wrong, from the status code and the error's type (never the SDK's text)."""
    if isinstance(exc, errors.status):
        status = int(getattr(exc, "status_code", 0))
        try:
            line = f"{status} {HTTPStatus(status).phrase}"
        except ValueError:
            line = f"HTTP {status}"
        detail = _server_message(getattr(exc, "body", None), secret)
        return f"{line} ({detail})" if detail else line
    if isinstance(exc, (errors.timeout, TimeoutError)):
        return f"no answer within {timeout_s:g} s (timeout)" if timeout_s else "timed out"
    if isinstance(exc, errors.connection):
        return "could not connect or the connection was dropped"
    if isinstance(exc, MalformedResponse):
        return f"malformed response ({exc})"
    if isinstance(exc, NotText):
        return str(exc)
    return type(exc).__name__


def server_message(body: Any, secret: str | Sequence[str] | None) -> str:
    """The server's own short explanation in an error body, without anything key-like (``""`` when none)."""
    return _server_message(body, secret)


def _server_message(body: Any, secret: str | Sequence[str] | None) -> str:
    """The server's own short explanation (``{"error": {"type", "message"}}``), with anything key-like removed."""
    error = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    parts = [str(error[k]) for k in ("type", "message") if isinstance(error.get(k), str) and error[k]]
    parts += _fastapi_detail(error.get("detail"))
    text = ": ".join(parts)
    secrets = [secret] if isinstance(secret, str) else list(secret or [])
    if secrets:  # the key, and a password inside base_url
        text = scrub(text, secrets)  # also prefix-less, URL-encoded and base64 forms
    text = _SECRET_LIKE.sub("[redacted]", text)
    text = LONE_SURROGATE.sub("\ufffd", text)  # half a pair (JSON "\ud800") cannot be stored or printed
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _fastapi_detail(detail: Any) -> list[str]:
    """FastAPI's 422 body (``{"detail": [{"loc": [...], "msg": ...}]}``, or a string) as short phrases."""
    if isinstance(detail, str):
        return [detail]
    if not isinstance(detail, list):
        return []
    phrases = []
    for entry in detail[:3]:
        if isinstance(entry, dict) and isinstance(entry.get("msg"), str):
            loc = entry.get("loc")
            where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
            phrases.append(f"{where}: {entry['msg']}" if where else entry["msg"])
    return phrases


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    who: str,
    attempts: int,
    errors: SDKErrors,
    timeout_s: float | None = None,
    secret: str | Sequence[str] | None = None,
    give_up: Callable[[str], bool] | None = None,
) -> T:
    """Await ``attempt()`` until it succeeds, retrying transient failures; at most ``attempts`` calls.

    ``who`` names the endpoint in logs and errors (``model 'local'``). Each attempt is bounded by
    ``timeout_s`` as a whole. Raises ``CallError`` when a failure is not transient or the attempts are
    used up; ``give_up(reason)`` returning True stops retrying a transient failure early (the endpoint
    already failed that way for good). Anything that is not an SDK failure (a bug) propagates unchanged.
    """
    attempts = max(1, attempts)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after(exc) if exc is not None else None
        if asked is not None:
            return asked
        backoff = wait_exponential_jitter(
            multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S, jitter=BACKOFF_JITTER_S
        )
        return float(backoff(state))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = describe(exc, errors, timeout_s, secret) if exc is not None else "?"
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d/%d failed: %s; retrying in %.2f s",
            who,
            state.attempt_number,
            attempts,
            reason,
            pause,
            # The same endpoint failing the same way is one warning on the terminal, with a count.
            extra={"fold_key": ("retry", who, reason), "fold_line": f"{who}: more attempts failed: {reason}"},
        )

    def gives_up(exc: BaseException) -> bool:
        # A 429 is about pacing, not a broken endpoint: it is always waited out as the server asks.
        if give_up is None or getattr(exc, "status_code", None) == 429:
            return False
        return give_up(describe(exc, errors, timeout_s, secret))

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(lambda exc: is_transient(exc, errors) and not gives_up(exc)),
        before_sleep=before_sleep,
        reraise=True,
    )
    tries = 0
    try:
        async for trial in retrying:
            with trial:
                tries = trial.retry_state.attempt_number
                async with asyncio.timeout(timeout_s):
                    return await attempt()
    except Exception as exc:
        known = (errors.status, errors.connection, MalformedResponse, NotText, *_transport_errors())
        if not isinstance(exc, known):
            raise
        reason = describe(exc, errors, timeout_s, secret)
        transient = is_transient(exc, errors)
        suffix = f" after {tries} attempt{'s' if tries != 1 else ''}" if transient else ""
        status = int(getattr(exc, "status_code", 0)) if isinstance(exc, errors.status) else None
        # from None: the SDK's exception holds the request (headers included) and has no place in tracebacks.
        raise CallError(
            f"{who}: {reason}{suffix}",
            reason=reason,
            status=status,
            transient=transient,
            rejects_format=rejects_format(exc, errors),
        ) from None
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - start) * 1000
