"""The one seam between lookingglass and model servers: ``Provider.complete``.

Each provider module builds its SDK client in one function that takes the endpoint (``base_url``,
timeout, key variable) and reads the key from the environment; retries live inside the provider.
"""

from __future__ import annotations

from typing import Protocol

from evals.config import Endpoint
from evals.errors import ConfigError
from evals.outbound.providers.health import FAIL_AFTER
from evals.records import Completion, CompletionRequest


class Provider(Protocol):
    """Something that answers chat completion requests."""

    name: str
    """The endpoint's name in the config, for messages."""
    max_concurrency: int
    """How many calls the runner may have in flight at once."""

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer one request. Raises ``ProviderError`` once retries are exhausted, and
        ``EndpointFailing`` (which stops the run) when the endpoint's first calls all failed the same way."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def build_provider(name: str, endpoint: Endpoint, fail_after: int = FAIL_AFTER) -> Provider:
    """The provider for a configured endpoint (``openai`` or ``anthropic``); the key is checked here.

    ``fail_after``: the run stops when this many first calls all fail with the same error (0: never).
    """
    if endpoint.provider == "anthropic":
        from evals.outbound.providers.anthropic import (
            AnthropicProvider,  # only runs that use it pay its import
        )

        return AnthropicProvider(name, endpoint, fail_after)
    if endpoint.provider == "openai":
        from evals.outbound.providers.openai_compat import OpenAIProvider

        return OpenAIProvider(name, endpoint, fail_after)
    raise ConfigError(
        f"{name!r} has provider {endpoint.provider!r}, which makes no calls (it can only be a judge): "
        "use 'openai' (any OpenAI-compatible server) or 'anthropic' in evals.yaml"
    )
