"""Where an endpoint stands: outside the team's perimeter or not, and whether it is a frontier vendor's.

An endpoint is external unless it says otherwise (``external: false``), its base URL's host is loopback
(127.0.0.0/8, ::1, ``localhost``), or the host is listed in ``internal_hosts`` in evals.yaml (an exact host,
or ``*.corp.example`` for every host under that domain). No base URL means the SDK's default: the vendor's
cloud, external. The offline judge makes no calls and is never external.

A frontier vendor's endpoint (Anthropic's, OpenAI's, Google's, xAI's: ``frontier_vendor``) serves closed
models whose terms forbid training other models on their outputs; ``open_weights: true`` is refused on one
(``evals.config``), and the references and answers it wrote never become training data (``evals export weak``).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and its usual aliases) and any loopback address."""
    host = host.strip("[]").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_listed(host: str, internal_hosts: Iterable[str]) -> bool:
    """True when ``host`` is one of ``internal_hosts``: an exact name, or under a ``*.domain`` entry."""
    host = host.strip("[]").lower().rstrip(".")
    for entry in internal_hosts:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry.strip("[]"):
            return True
    return False


def is_external(
    provider: str, base_url: str | None, explicit: bool | None, internal_hosts: Iterable[str] = ()
) -> bool:
    """Whether calls to this endpoint leave the perimeter: ``explicit`` when set, else by its host."""
    if provider == "offline":
        return False
    if explicit is not None:
        return explicit
    if base_url is None:
        return True  # the SDK's default: the vendor's API
    host = urllib.parse.urlsplit(base_url).hostname or ""
    return not (is_loopback(host) or host_listed(host, internal_hosts))


# -- Frontier vendors: whose text may never become a training target (the training-terms guard) ------------

VENDOR_HOSTS = {
    "api.openai.com": "OpenAI", "*.openai.com": "OpenAI", "*.openai.azure.com": "OpenAI (Azure OpenAI)",
    "api.anthropic.com": "Anthropic", "*.anthropic.com": "Anthropic",
    "generativelanguage.googleapis.com": "Google (the Gemini API)", "api.x.ai": "xAI",
}  # fmt: skip
"""The vendors' own API hosts: whatever model a call there names, the vendor's terms apply to its text."""

CLOSED_FAMILIES = (
    ("Anthropic", r"claude(?![a-z])"),
    # gpt-3.5, gpt-35 (Azure), gpt-4o, gpt-4.1, gpt-5, and undashed aliases (gpt4o, gpt5); not gpt-2, gpt-j,
    # gpt-oss, gpt4all (GPT4All's open models)
    ("OpenAI", r"gpt[-_]?(?:[3-9]|[1-9]\d)(?!\d*all)"),
    ("OpenAI", r"gpt[-_](?:realtime|audio|image)"),
    ("OpenAI", r"chatgpt(?![a-z])"),
    ("OpenAI", r"o\d+(?![a-z\d])"),  # o1, o3-mini, o4-mini
    ("OpenAI", r"(?:text-|code-)?(?:davinci|babbage|curie|ada)-\d"),
    ("OpenAI", r"codex-mini|computer-use-preview"),
    ("Google", r"gemini(?![a-z])"),  # not gemma, an open release
    ("Google", r"learnlm(?![a-z])"),
    ("Google", r"(?:text|chat|code|codechat)-(?:bison|unicorn)"),  # PaLM
    ("xAI", r"grok-(?:[3-9]|[1-9]\d|beta|vision)"),  # not grok-1 or grok-2, whose weights are open
)
"""Closed model families as (vendor, pattern), matched case-insensitively at the start of any part of a
model's own name: the name after its last ``/`` (what comes before names an organisation or a route:
``openai/``, ``models/``, ``O1-OPEN/``), split at ``. : @`` and spaces (``openai/gpt-4o``,
``anthropic.claude-3-haiku``, ``ft:gpt-4o-mini:org::id``, ``claude-3-5-sonnet@20240620``). Any Unicode dash
counts as ``-``. Open releases that share a vendor's prefix (``gpt-oss``, ``gpt-2``, ``gpt-j``, ``gpt4all``,
``gemma``, ``grok-1``) match none of them; a name that starts like a closed one (``o1-open``) does."""
_FAMILIES = [(vendor, re.compile(pattern)) for vendor, pattern in CLOSED_FAMILIES]
_PARTS = re.compile(r"[.:@\s]+")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")


def closed_model(name: str | None) -> str | None:
    """Which closed family the model name ``name`` belongs to (``model 'gpt-4o' is of OpenAI's closed gpt-4* family``), or None."""
    if not name:
        return None
    plain = _DASHES.sub("-", unicodedata.normalize("NFKC", name).casefold())
    own = plain.strip().strip("/").rsplit("/", 1)[-1]
    for part in _PARTS.split(own):
        for vendor, pattern in _FAMILIES:
            if (found := pattern.match(part)) is not None:
                return f"model {name!r} is of {vendor}'s closed {found.group(0)}* family"
    return None


def vendor_host(base_url: str) -> str | None:
    """The vendor whose own API ``base_url`` points at, or None."""
    host = unicodedata.normalize("NFKC", urllib.parse.urlsplit(base_url).hostname or "").casefold()
    host = host.strip("[]").rstrip(".")
    return next((v for entry, v in VENDOR_HOSTS.items() if host_listed(host, [entry])), None)


def frontier_vendor(provider: str | None, base_url: str | None, model: str | None) -> str | None:
    """Why an endpoint is a frontier vendor's (the rule that matched, for a message), or None.

    A vendor's endpoint is provider ``anthropic`` (whatever its ``base_url``: a proxy's address does not tell
    whose model answers), ``openai`` with no ``base_url`` (the SDK's default, OpenAI's own API) or any
    provider at a vendor's own host (``VENDOR_HOSTS``), or a model name of a closed family
    (``closed_model``). ``provider`` None (a run recorded before providers were) is judged by its host and model name.
    """
    if provider == "anthropic":
        return "provider 'anthropic' is Anthropic's API"
    if provider == "openai" and base_url is None:
        return "provider 'openai' without base_url is OpenAI's own API (api.openai.com)"
    if base_url is not None and (vendor := vendor_host(base_url)) is not None:
        return f"base_url is {vendor}'s own API"
    return closed_model(model)
