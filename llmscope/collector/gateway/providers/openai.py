"""The ``openai`` provider: OpenAI and any OpenAI-compatible server (vLLM, Ollama, Azure).

``openai_api_base`` points it elsewhere; ``openai_api_type: azure`` (or ``azuread``) uses Azure
OpenAI's deployment URLs with ``openai_deployment_name`` and ``openai_api_version``. Bodies pass
through as they are, with ``model`` set to the endpoint's model; streams ask for the final usage
chunk (``stream_options.include_usage``). A whole answer comes back as a
:class:`~llmscope.collector.gateway.providers.base.RelayedAnswer`: relayed as the server sent
it where the gateway passes it through unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool, StreamedAnswer
from llmscope.collector.gateway.providers.base import (
    Provider,
    ProviderError,
    RelayedAnswer,
    answer_object,
)


class OpenAIProvider(Provider):
    name = "openai"
    lean_streams = True  # its streams are server-sent events, read by sse_data alone

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        self.api_type = str(self.config.get("openai_api_type") or "openai").lower()
        self.base = self.api_base().rstrip("/")
        key = self.api_key()
        if self.api_type == "azure":
            self.headers = {"api-key": key or ""}
        else:
            self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.has_responses = self.api_type == "openai"  # Azure's Responses API differs
        self.usage_option = True  # ask streams for a final usage chunk while the server accepts it
        if self.config.get("openai_organization"):
            self.headers["OpenAI-Organization"] = str(self.config["openai_organization"])

    def api_base(self) -> str:
        return str(self.config.get("openai_api_base") or "https://api.openai.com/v1")

    def api_key(self) -> str | None:
        return str(self.config["openai_api_key"])

    def _url(self, path: str) -> str:
        if self.api_type in {"azure", "azuread"}:
            deployment = self.config.get("openai_deployment_name") or self.model
            version = self.config.get("openai_api_version") or "2024-06-01"
            return f"{self.base}/openai/deployments/{deployment}/{path}?api-version={version}"
        return f"{self.base}/{path}"

    def _payload(self, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        payload = {**body, "model": self.model}
        if stream:
            payload["stream"] = True
            if not self.usage_option:
                payload.pop("stream_options", None)
                return payload
            payload["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        return payload

    async def _json(self, path: str, body: dict[str, Any], items: str) -> dict[str, Any]:
        response = await self.send(self._url(path), self._payload(body, stream=False), self.headers)
        return RelayedAnswer(answer_object(response.json(), items), response.body)

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = self._payload(body, stream=True)
        try:
            response = await self.send(self._url(path), payload, self.headers, stream=True)
        except ProviderError as exc:
            # Older OpenAI-compatible servers refuse stream_options: stream without usage then.
            if exc.status != 400 or "stream_options" not in exc.message or not self.usage_option:
                raise
            self.usage_option = False
            payload = self._payload(body, stream=True)
            response = await self.send(self._url(path), payload, self.headers, stream=True)
        return self._chunks(response)

    async def _chunks(
        self, response: aiohttp.ClientResponse | StreamedAnswer
    ) -> AsyncIterator[dict[str, Any]]:
        async for _event, data in self.sse_data(response):
            if isinstance(data, dict):
                yield data

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("chat/completions", body, "choices")

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return await self._stream("chat/completions", body)

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("completions", body, "choices")

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return await self._stream("completions", body)

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("embeddings", body, "data")

    async def responses(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = {**body, "model": self.model, "stream": False}
        response = await self.send(self._url("responses"), payload, self.headers)
        answer: dict[str, Any] = response.json()
        return answer

    async def responses_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = {**body, "model": self.model, "stream": True}
        response = await self.send(self._url("responses"), payload, self.headers, stream=True)
        return self._chunks(response)
