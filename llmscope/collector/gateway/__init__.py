"""The gateway: an MLflow AI Gateway- and OpenAI-compatible proxy that records every call.

``config`` reads the YAML, ``providers`` talk to LLMs, ``service`` runs calls and hot reloads,
``routes`` is the HTTP surface; records leave through ``llmscope.collector.ingest``.
"""

from llmscope.collector.gateway.config import ConfigError, GatewayConfig, load_config
from llmscope.collector.gateway.routes import mlflow_router, openai_router
from llmscope.collector.gateway.service import Gateway
from llmscope.collector.gateway.shapes import RECORD_HEADER

__all__ = [
    "RECORD_HEADER",
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "load_config",
    "mlflow_router",
    "openai_router",
]
