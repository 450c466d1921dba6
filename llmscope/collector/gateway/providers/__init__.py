"""Providers the gateway can call, by the name used in ``model.provider`` (MLflow's names)."""

from __future__ import annotations

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.anthropic import AnthropicProvider
from llmscope.collector.gateway.providers.base import Provider, ProviderError
from llmscope.collector.gateway.providers.bedrock import BedrockProvider
from llmscope.collector.gateway.providers.cohere import CohereProvider
from llmscope.collector.gateway.providers.compatible import (
    DatabricksProvider,
    DeepSeekProvider,
    GroqProvider,
    LiteLLMProvider,
    MistralProvider,
    OllamaProvider,
    OpenRouterProvider,
    TogetherAIProvider,
    XAIProvider,
)
from llmscope.collector.gateway.providers.gemini import GeminiProvider, VertexAIProvider
from llmscope.collector.gateway.providers.offline import OfflineProvider
from llmscope.collector.gateway.providers.openai import OpenAIProvider
from llmscope.collector.gateway.providers.serving import MlflowServingProvider, TGIProvider

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "offline": OfflineProvider,
    "groq": GroqProvider,
    "deepseek": DeepSeekProvider,
    "xai": XAIProvider,
    "openrouter": OpenRouterProvider,
    "ollama": OllamaProvider,
    "litellm": LiteLLMProvider,
    "togetherai": TogetherAIProvider,
    "mistral": MistralProvider,
    "databricks": DatabricksProvider,
    "cohere": CohereProvider,
    "gemini": GeminiProvider,
    "vertex_ai": VertexAIProvider,
    "huggingface-text-generation-inference": TGIProvider,
    "mlflow-model-serving": MlflowServingProvider,
    "bedrock": BedrockProvider,
}

__all__ = ["PROVIDERS", "Provider", "ProviderError", "make_provider"]


def make_provider(endpoint: Endpoint, http: HttpPool) -> Provider:
    return PROVIDERS[endpoint.model.provider](endpoint, http)
