"""Providers the gateway can call, by the name used in ``model.provider``."""

from __future__ import annotations

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.anthropic import AnthropicProvider
from llmscope.collector.gateway.providers.base import Provider, ProviderError
from llmscope.collector.gateway.providers.offline import OfflineProvider
from llmscope.collector.gateway.providers.openai import OpenAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "offline": OfflineProvider,
}

__all__ = ["PROVIDERS", "Provider", "ProviderError", "make_provider"]


def make_provider(endpoint: Endpoint, http: HttpPool) -> Provider:
    return PROVIDERS[endpoint.model.provider](endpoint, http)
