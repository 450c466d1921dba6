"""Providers that speak OpenAI's wire format at another address, with MLflow's names and keys.

``groq``, ``deepseek``, ``xai``, ``openrouter``, ``ollama`` and ``litellm`` (a LiteLLM proxy)
take ``api_key``/``api_base`` as in MLflow >= 3.6 (``litellm`` also MLflow's
``litellm_auth_config: {api_key, api_base}``); ``togetherai`` and ``mistral`` take their own
``*_api_key`` (and llmscope's ``*_api_base``); ``databricks`` takes ``host`` with ``token`` or an
OAuth service principal (``client_id``/``client_secret``), else ``DATABRICKS_HOST`` and
``DATABRICKS_TOKEN``, and calls the workspace's OpenAI-compatible serving endpoints. All send
``Authorization: Bearer``. Mistral has no completions API: completions are sent as one user
message to its chat API and answered as completions.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llmscope.collector.gateway.providers.openai import OpenAIProvider


class CompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible API at ``DEFAULT_BASE``; key and base from MLflow's keys."""

    DEFAULT_BASE = ""
    KEY = "api_key"
    BASE = "api_base"

    def api_base(self) -> str:
        base = self.config.get(self.BASE) or self.DEFAULT_BASE
        return str(base)

    def api_key(self) -> str | None:
        key = self.config.get(self.KEY)
        return str(key) if key else None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_responses = False


class GroqProvider(CompatibleProvider):
    name = "groq"
    DEFAULT_BASE = "https://api.groq.com/openai/v1"


class DeepSeekProvider(CompatibleProvider):
    name = "deepseek"
    DEFAULT_BASE = "https://api.deepseek.com/v1"


class XAIProvider(CompatibleProvider):
    name = "xai"
    DEFAULT_BASE = "https://api.x.ai/v1"


class OpenRouterProvider(CompatibleProvider):
    name = "openrouter"
    DEFAULT_BASE = "https://openrouter.ai/api/v1"


class OllamaProvider(CompatibleProvider):
    name = "ollama"
    DEFAULT_BASE = "http://localhost:11434/v1"


class LiteLLMProvider(CompatibleProvider):
    name = "litellm"
    DEFAULT_BASE = "http://localhost:4000"

    def _auth(self) -> dict[str, Any]:
        auth = self.config.get("litellm_auth_config")
        return auth if isinstance(auth, dict) else {}

    def api_base(self) -> str:
        return str(self.config.get("api_base") or self._auth().get("api_base") or self.DEFAULT_BASE)

    def api_key(self) -> str | None:
        key = self.config.get("api_key") or self._auth().get("api_key")
        return str(key) if key else None


class TogetherAIProvider(CompatibleProvider):
    name = "togetherai"
    DEFAULT_BASE = "https://api.together.xyz/v1"
    KEY = "togetherai_api_key"
    BASE = "togetherai_api_base"


class MistralProvider(CompatibleProvider):
    name = "mistral"
    DEFAULT_BASE = "https://api.mistral.ai/v1"
    KEY = "mistral_api_key"
    BASE = "mistral_api_base"

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.chat(as_chat(body))
        return chat_as_completion(answer)

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        chunks = await self.chat_stream(as_chat(body))
        return chunks_as_completion(chunks)


class DatabricksProvider(CompatibleProvider):
    """Databricks model serving (``/serving-endpoints``, OpenAI-compatible); ``model.name`` is
    the serving endpoint's name."""

    name = "databricks"
    KEY = "token"

    def api_base(self) -> str:
        host = self.config.get("host") or os.environ.get("DATABRICKS_HOST") or ""
        host = str(host).rstrip("/")
        if host and not host.startswith("http"):
            host = f"https://{host}"
        return f"{host}/serving-endpoints"

    def api_key(self) -> str | None:
        return str(self.config.get("token") or os.environ.get("DATABRICKS_TOKEN") or "") or None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._oauth_until = 0.0
        self._oauth = ""

    async def send(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], *, stream: bool = False
    ) -> Any:
        if self.config.get("client_id") and not self.api_key():
            headers = {**headers, "Authorization": f"Bearer {await self._oauth_token()}"}
        return await super().send(url, payload, headers, stream=stream)

    async def _oauth_token(self) -> str:
        """A service principal's OAuth token (machine-to-machine), refreshed before expiry."""
        if time.monotonic() < self._oauth_until:
            return self._oauth
        host = self.base.removesuffix("/serving-endpoints")
        form = {"grant_type": "client_credentials", "scope": "all-apis"}
        auth = (str(self.config["client_id"]), str(self.config.get("client_secret") or ""))
        try:
            async with self.http.session.post(
                f"{host}/oidc/v1/token",
                data=form,
                auth=aiohttp.BasicAuth(*auth),
                timeout=self.timeout,
            ) as response:
                content = await response.read()
                if response.status >= 400:
                    raise self._error_from(
                        response.status, response.reason, response.headers, content
                    )
                token = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._transport_error(exc) from None
        self._oauth = str(token.get("access_token", ""))
        self._oauth_until = time.monotonic() + float(token.get("expires_in", 3600)) - 60
        return self._oauth

    def secrets(self) -> list[str]:
        found = [self.config.get("token"), self.config.get("client_secret")]
        return [s for s in found if isinstance(s, str)] + super().secrets()


# --- completions over a chat API ----------------------------------------------------------
def as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A completions request as a chat request with the prompt as one user message."""
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else "".join(map(str, prompt or []))
    chat = {k: v for k, v in body.items() if k not in ("prompt", "echo", "suffix", "logprobs")}
    chat["messages"] = [{"role": "user", "content": text}]
    return chat


def chat_as_completion(answer: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        choices.append(
            {
                "index": choice.get("index", 0),
                "text": message.get("content") or "",
                "finish_reason": choice.get("finish_reason"),
            }
        )
    return {**answer, "object": "text_completion", "choices": choices}


async def chunks_as_completion(
    chunks: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    async for chunk in chunks:
        choices = [
            {
                "index": c.get("index", 0),
                "text": (c.get("delta") or {}).get("content") or "",
                "finish_reason": c.get("finish_reason"),
            }
            for c in chunk.get("choices") or []
        ]
        yield {**chunk, "object": "text_completion", "choices": choices}


__all__ = [
    "CompatibleProvider",
    "DatabricksProvider",
    "DeepSeekProvider",
    "GroqProvider",
    "LiteLLMProvider",
    "MistralProvider",
    "OllamaProvider",
    "OpenRouterProvider",
    "TogetherAIProvider",
    "XAIProvider",
]
