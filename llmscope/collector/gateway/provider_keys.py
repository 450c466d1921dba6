"""Which providers exist and the ``model.config`` keys each takes, with MLflow's names.

The keys are MLflow AI Gateway's (``mistral_api_key``, ``hf_server_url``, ``aws_config``, the
OpenAI-compatible family's ``api_key``/``api_base``...). llmscope adds a base-URL key where
MLflow has none (``mistral_api_base``, ``cohere_api_base``, ``gemini_api_base``,
``togetherai_api_base``, ``vertex_api_base``, ``bedrock_endpoint_url``), for proxies, private
deployments and tests. ``True`` marks a secret: it may be a ``$ENV_VAR`` reference and never
leaves the gateway. Nested secrets (inside ``aws_config`` and ``litellm_auth_config``) are
listed in :data:`NESTED_SECRETS`.
"""

from __future__ import annotations

_COMPATIBLE = {"api_key": True, "api_base": False}

PROVIDER_KEYS: dict[str, dict[str, bool]] = {
    "openai": {
        "openai_api_key": True,
        "openai_api_base": False,
        "openai_api_type": False,
        "openai_api_version": False,
        "openai_deployment_name": False,
        "openai_organization": False,
    },
    "anthropic": {
        "anthropic_api_key": True,
        "anthropic_version": False,
        "anthropic_api_base": False,
    },
    "offline": {"latency_ms": False, "embedding_dim": False},
    # the OpenAI-compatible family (MLflow >= 3.6)
    "groq": _COMPATIBLE,
    "deepseek": _COMPATIBLE,
    "xai": _COMPATIBLE,
    "openrouter": _COMPATIBLE,
    "ollama": _COMPATIBLE,
    "litellm": {**_COMPATIBLE, "litellm_provider": False, "litellm_auth_config": False},
    "togetherai": {"togetherai_api_key": True, "togetherai_api_base": False},
    "mistral": {"mistral_api_key": True, "mistral_api_base": False},
    "databricks": {"host": False, "token": True, "client_id": False, "client_secret": True},
    "cohere": {"cohere_api_key": True, "cohere_api_base": False},
    "gemini": {"gemini_api_key": True, "gemini_api_base": False},
    "vertex_ai": {
        "vertex_project": False,
        "vertex_location": False,
        "vertex_credentials": True,
        "vertex_api_base": False,
    },
    "huggingface-text-generation-inference": {"hf_server_url": False},
    "mlflow-model-serving": {"model_server_url": False},
    "bedrock": {"aws_config": False, "bedrock_endpoint_url": False},
}
ALIASES = {"amazon-bedrock": "bedrock", "databricks-model-serving": "databricks"}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("openai_api_key",),
    "anthropic": ("anthropic_api_key",),
    "groq": ("api_key",),
    "deepseek": ("api_key",),
    "xai": ("api_key",),
    "openrouter": ("api_key",),
    "togetherai": ("togetherai_api_key",),
    "mistral": ("mistral_api_key",),
    "cohere": ("cohere_api_key",),
    "gemini": ("gemini_api_key",),
    "vertex_ai": ("vertex_project",),
    "huggingface-text-generation-inference": ("hf_server_url",),
    "mlflow-model-serving": ("model_server_url",),
    "bedrock": ("aws_config",),
}
NESTED_SECRETS = {
    "aws_config": ("aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                   "aws_bearer_token"),
    "litellm_auth_config": ("api_key",),
}  # fmt: skip
AWS_KEYS = {
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_role_arn",
    "session_length_seconds",
    "aws_bearer_token",
}
# (provider, endpoint type) pairs the provider's API cannot serve.
UNSUPPORTED = {
    ("anthropic", "llm/v1/embeddings"),
    ("huggingface-text-generation-inference", "llm/v1/embeddings"),
    ("groq", "llm/v1/embeddings"),
    ("xai", "llm/v1/embeddings"),
    ("deepseek", "llm/v1/embeddings"),
}


def unknown_provider_message(name: str) -> str:
    known = ", ".join(sorted([*PROVIDER_KEYS, *ALIASES]))
    return (
        f"unknown provider {name!r}; known: {known}. Any OpenAI-compatible server works as "
        "provider: openai with openai_api_base"
    )
