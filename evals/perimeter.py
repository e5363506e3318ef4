"""Which endpoints are outside the team's perimeter: the one answer to "is this endpoint external".

An endpoint is external unless it says otherwise (``external: false``), its base URL's host is loopback
(127.0.0.0/8, ::1, ``localhost``), or the host is listed in ``internal_hosts`` in evals.yaml (an exact host,
or ``*.corp.example`` for every host under that domain). No base URL means the SDK's default: the vendor's
cloud, external. The offline judge makes no calls and is never external.
"""

from __future__ import annotations

import ipaddress
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
