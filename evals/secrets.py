"""Secrets out of everything we keep or show: keys echoed by servers, credentials inside URLs.

A key can come back from a server anywhere: in an error body, in the reply's ``model`` field, in the
answer text itself; whole, without its ``sk-`` prefix, or encoded (base64 as in a Basic auth header,
URL-encoded, hex). ``scrub`` replaces every such form of each known secret. ``safe_url`` drops the
``user:password@`` part of a URL, which must never reach a snapshot, a message or a report.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from evals.records import Completion

REDACTED = "[redacted]"
"""What a secret is replaced with."""
MIN_SECRET = 6
"""Shorter strings are not scrubbed: replacing them would mangle ordinary text, and they protect nothing."""

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]*@")
# In free text only ``user:password@`` is a credential; ``ssh://git@host`` is an address, left alone.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#:]*:[^/\s@?#]*@")


def safe_url(url: str | None) -> str | None:
    """``url`` without credentials: ``http://user:pass@host/v1`` becomes ``http://host/v1``."""
    if url is None:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return _URL_USERINFO.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def url_secrets(url: str | None) -> list[str]:
    """The password (and user name, when long enough to be a token) held in ``url``, to scrub."""
    if not url:
        return []
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    found = [urllib.parse.unquote(part) for part in (parts.password, parts.username) if part]
    return [secret for secret in found if len(secret) >= MIN_SECRET]


def _forms(secret: str) -> set[str]:
    """Every form in which ``secret`` may be echoed: as is, prefix-less, URL-encoded, hex and base64."""
    forms = {secret}
    # Prefix-less: "sk-proj-abc..." echoed as "proj-abc..." or "abc...". Long tails only, so that a
    # short fragment common in ordinary text is left alone.
    for match in re.finditer(r"[-_]", secret):
        tail = secret[match.end() :]
        if len(tail) >= max(MIN_SECRET, len(secret) // 2):
            forms.add(tail)
    for form in list(forms):
        forms.add(urllib.parse.quote(form, safe=""))
        forms.add(urllib.parse.quote_plus(form, safe=""))
        raw = form.encode()
        forms.add(raw.hex())
        forms.add(raw.hex().upper())
        forms.update(_base64_cores(raw))
    return {form for form in forms if len(form) >= MIN_SECRET}


def _base64_cores(raw: bytes) -> set[str]:
    """The part of the base64 text of ``raw`` that is the same wherever it sits in a longer string.

    base64 turns 3 bytes into 4 characters, so the characters depend on where ``raw`` starts modulo 3:
    for each of the 3 offsets, the characters that mix in neighbouring bytes are dropped at both ends.
    """
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = 4 if offset else 0
        end = len(encoded) - (4 if (offset + len(raw)) % 3 else 0)
        core = encoded[start:end]
        cores.add(core)
        cores.add(core.translate(str.maketrans("+/", "-_")))  # the URL-safe alphabet
    return cores


class Scrubber:
    """Replaces every form of a set of secrets; built once per endpoint, applied to each reply."""

    def __init__(self, secrets: Iterable[str | None]):
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET:
                forms |= _forms(secret)
        # Longest first, so that a whole key is replaced before its tail is looked for.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every form of the secrets replaced, and any URL's ``user:password@`` removed."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _URL_PASSWORD.sub(r"\1" + REDACTED + "@", text) if "@" in text else text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it scrubbed (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def completion(self, completion: Completion) -> Completion:
        """``completion`` with every text a server sent scrubbed: the reply, its structured data, the
        reported model id, the finish reason and the reasoning."""
        return dataclasses.replace(
            completion,
            text=self.text(completion.text),
            data=self.value(completion.data) if completion.data is not None else None,
            model_id=self.text(completion.model_id) if completion.model_id else completion.model_id,
            finish_reason=(
                self.text(completion.finish_reason) if completion.finish_reason else completion.finish_reason
            ),
            reasoning=self.text(completion.reasoning) if completion.reasoning else completion.reasoning,
        )


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of each secret (whole, prefix-less, URL-encoded, hex, base64) redacted."""
    return Scrubber(secrets).text(text)
