"""Fail fast on an endpoint that will not work: the first calls all failing the same way stop the run.

A misconfigured endpoint (a model name the server does not serve, a key that is refused, a server that
rejects the request's fields, nothing listening at the URL) fails every call the same way. Retrying
each item for minutes and ending with N identical errors wastes the run; instead, when the first
``limit`` calls to one endpoint all fail with the same reason, ``EndpointFailing`` stops the run, which
keeps what it stored and can be resumed once the cause is fixed. Once a call has succeeded (or the first
``limit`` calls did not all agree) the watch steps aside: failures later in a run are per-item data.

While the watch is armed and a call has already failed for good, later calls failing the same way are not
retried: a dead endpoint then ends the run after one call's retries, not ``limit`` of them.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from evals.config import Endpoint
from evals.errors import EvalsError
from evals.outbound.providers.retry import TOOL_CALL, CallError

log = logging.getLogger("evals.outbound.providers")

FAIL_AFTER = 8
"""Default number of first calls that, all failing with the same error, stop the run (0: never)."""


class EndpointFailing(EvalsError):
    """The first calls to an endpoint all failed the same way; the message says what to change."""


class FailFast:
    """Watches the first calls to one endpoint (see the module docstring)."""

    def __init__(self, who: str, name: str, endpoint: Endpoint, limit: int = FAIL_AFTER):
        self.who = who
        self.name = name
        self.endpoint = endpoint
        self.limit = limit
        self._reasons: list[str | None] = []  # one per finished call: None for a success
        self._shown: set[str] = set()

    @property
    def armed(self) -> bool:
        """True while every finished call failed and fewer than ``limit`` have finished."""
        return 0 < self.limit and len(self._reasons) < self.limit and None not in self._reasons

    def gives_up(self, reason: str) -> bool:
        """True when a call failing with ``reason`` need not be retried: an earlier one already failed so."""
        return self.armed and reason in self._reasons

    def succeeded(self) -> None:
        """Record a successful call (the watch then steps aside)."""
        if self.armed:
            self._reasons.append(None)

    def failed(self, error: CallError) -> None:
        """Record a call that failed for good; raises ``EndpointFailing`` when the first calls all failed so."""
        if not error.transient and error.reason not in self._shown:
            # A retried failure has shown its retry lines; a refusal is shown here, once per reason.
            self._shown.add(error.reason)
            log.warning(
                "%s: %s (not retried: asking again would get the same answer)", self.who, error.reason
            )
        if not self.armed:
            return
        self._reasons.append(error.reason)
        if len(self._reasons) == self.limit and len(set(self._reasons)) == 1:
            raise EndpointFailing(
                f"{self.who}: the first {self.limit} calls all failed with the same error: {error.reason}. "
                f"{self.fix(error)}."
            )

    def fix(self, error: CallError) -> str:
        """What to change, from the kind of failure (one sentence, without its full stop)."""
        endpoint, name = self.endpoint, self.name
        where = _without_credentials(endpoint.base_url) if endpoint.base_url else "the provider's default URL"
        if error.rejects_format:
            return (
                f"The server does not accept this structured-output request: set 'structured: text' "
                f"(or 'auto') for {name!r} in evals.yaml"
            )
        if error.reason == TOOL_CALL:
            return (
                f"{name!r} answers with tool calls though none are offered: turn the server's tool-call "
                "parsing off (vLLM: --enable-auto-tool-choice) or serve a model or chat template that answers "
                "in text"
            )
        if error.status in (401, 403):
            return f"The key was refused: check the variable {endpoint.key_env} (api_key_env of {name!r})"
        if error.status == 404:
            return f"Check 'model: {endpoint.model}' of {name!r} (a model the server serves) and its base_url {where}"
        if error.status == 429:
            return f"The server keeps rate-limiting: lower max_concurrency of {name!r} or wait"
        if error.status is not None and error.status < 500:
            return f"The server refuses the request: check the settings of {name!r} in evals.yaml"
        if error.status is None and "timeout" in error.reason:
            return (
                f"Is the server at {where} overloaded? Raise timeout_s of {name!r} or lower max_concurrency"
            )
        if error.status is None:
            return f"Check that the server at {where} is up and is the right base_url for {name!r}"
        return f"Check the server at {where} (its log says more)"


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part, which must not reach a message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured base_url"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="[credentials]@" + parts.netloc.rsplit("@", 1)[1]))
