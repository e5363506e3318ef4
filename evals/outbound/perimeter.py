"""What a run may send where: the restricted-data refusal and the redactors of its external endpoints,
decided once before the run exists, and recorded in its config snapshot."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evals.config import Endpoint, RedactionSettings
from evals.outbound.providers import Provider
from evals.outbound.providers.redacting import RedactingProvider
from evals.outbound.redaction import CustomPattern, Redactor
from evals.outbound.sensitivity import Destination, check_restricted
from evals.records import Item

log = logging.getLogger("evals.outbound.perimeter")


@dataclass(frozen=True)
class Perimeter:
    """A run's endpoints, which of them are external, and the redaction their calls go through."""

    destinations: tuple[Destination, ...]
    settings: RedactionSettings
    redactor: Redactor | None
    """The redactor of the external endpoints; None when none is external or redaction is disabled."""

    def external(self, role: str) -> bool:
        return any(d.external for d in self.destinations if d.role == role)

    def judge_redactor(self) -> Redactor | None:
        return self.redactor if self.external("judge") else None

    def redactor_for(self, endpoint: Endpoint) -> Redactor | None:
        """The redactor of a judge (or a panel's member) at ``endpoint``: the run's, when it is external."""
        return self.redactor if endpoint.is_external() else None

    def model_provider(self, provider: Provider) -> Provider:
        """The model's provider, redacting when the model endpoint is external."""
        if self.redactor is not None and self.external("model"):
            return RedactingProvider(provider, self.redactor)
        return provider

    def check(self, items: Sequence[Item]) -> None:
        """Refuse restricted items bound for an external endpoint (``ConfigError``), before any call."""
        check_restricted(items, self.destinations)

    def snapshot(self) -> dict[str, Any]:
        """``redaction`` in the run's config snapshot: where text went, and how it was redacted."""
        data: dict[str, Any] = {
            "model_external": self.external("model"),
            "judge_external": self.external("judge"),
            "enabled": self.settings.enabled,
        }
        if any(d.external for d in self.destinations):
            data["status"] = "redacted" if self.redactor is not None else "not redacted"
        else:
            data["status"] = "not needed"
        if self.redactor is not None:
            data.update(self.redactor.snapshot())
        return data


def plan_perimeter(
    model: tuple[str, Endpoint],
    judge: tuple[str, Endpoint],
    settings: RedactionSettings | None = None,
    patterns: Sequence[CustomPattern] = (),
) -> Perimeter:
    """The perimeter of a run of ``model`` graded by ``judge`` (name and endpoint each)."""
    settings = settings or RedactionSettings()
    destinations = (
        Destination("model", model[0], model[1].is_external()),
        Destination("judge", judge[0], _judge_external(judge[1])),
    )
    redactor = None
    if settings.enabled and any(d.external for d in destinations):
        redactor = Redactor(patterns, settings.ner_model)
        if redactor.note:
            log.warning("redaction: %s", redactor.note)
    elif any(d.external for d in destinations):
        log.warning(
            "redaction is disabled (redaction: {enabled: false}): external endpoints get text as written"
        )
    return Perimeter(destinations, settings, redactor)


def outside_redactor(
    endpoint: Endpoint, settings: RedactionSettings | None, patterns: Sequence[CustomPattern] = ()
) -> Redactor | None:
    """The redactor for calls to ``endpoint`` made outside a run (calibration, probes, generation,
    references): one when the endpoint is external and redaction is on, else None."""
    settings = settings or RedactionSettings()
    if endpoint.is_external() and settings.enabled:
        return Redactor(patterns, settings.ner_model)
    return None


def outbound_provider(
    name: str, endpoint: Endpoint, settings: RedactionSettings | None, patterns: Sequence[CustomPattern] = ()
) -> Provider:
    """The provider of ``endpoint``, redacting what it sends when the endpoint is external (``outside_redactor``)."""
    from evals.outbound.providers import build_provider

    provider = build_provider(name, endpoint)
    redactor = outside_redactor(endpoint, settings, patterns)
    return provider if redactor is None else RedactingProvider(provider, redactor)


def _judge_external(endpoint: Endpoint) -> bool:
    """A judge is external when its endpoint is; a panel, when any of its members is."""
    panel = getattr(endpoint, "panel", None)
    if panel is not None:
        return any(member.is_external() for member in panel.endpoints().values())
    return endpoint.is_external()
