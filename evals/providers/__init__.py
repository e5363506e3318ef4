"""The one seam between lookingglass and model servers: ``Provider.complete``.

Each provider module builds its SDK client in one function that takes the endpoint (``base_url``,
timeout, key variable) and reads the key from the environment; retries live inside the provider.
"""

from __future__ import annotations

from typing import Protocol

from evals.config import Endpoint
from evals.records import Completion, CompletionRequest


class Provider(Protocol):
    """Something that answers chat completion requests."""

    name: str
    """The endpoint's name in the config, for messages."""
    max_concurrency: int
    """How many calls the runner may have in flight at once."""

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer one request. Raises ``ProviderError`` once retries are exhausted."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def build_provider(name: str, endpoint: Endpoint) -> Provider:
    """The provider for a configured endpoint (``openai`` or ``anthropic``)."""
    if endpoint.provider == "anthropic":
        from evals.providers.anthropic import AnthropicProvider  # only runs that use it pay its import

        return AnthropicProvider(name, endpoint)
    if endpoint.provider == "openai":
        from evals.providers.openai_compat import OpenAIProvider

        return OpenAIProvider(name, endpoint)
    raise ValueError(f"endpoint {name!r} has provider {endpoint.provider!r}, which makes no calls")
