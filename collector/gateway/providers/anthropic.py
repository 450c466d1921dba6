"""The ``anthropic`` provider: the Messages API, mapped to and from the unified schema.

System messages become ``system``; ``stop`` becomes ``stop_sequences``; ``max_tokens`` (which
Anthropic requires) defaults to 1024; OpenAI's 0-2 temperature is clipped to Anthropic's 0-1.
Answers come back OpenAI-shaped, streams as ``chat.completion.chunk``s with a final usage chunk.
Completions are sent as one user message. Embeddings are not offered (the config refuses them).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.base import Provider

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
PASSED = ("top_p", "top_k", "metadata", "tools", "tool_choice")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_message(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else "".join(map(str, prompt or []))
    return {"role": "user", "content": text}


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        base = str(self.config.get("anthropic_api_base") or "https://api.anthropic.com/v1")
        self.url = base.rstrip("/") + "/messages"
        self.headers = {
            "x-api-key": str(self.config["anthropic_api_key"]),
            "anthropic-version": str(self.config.get("anthropic_version") or "2023-06-01"),
        }

    def _payload(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        system = [_text(m.get("content")) for m in messages if m.get("role") == "system"]
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": m.get("role"), "content": m.get("content") or ""}
                for m in messages
                if m.get("role") != "system"
            ],
            "max_tokens": body.get("max_tokens") or 1024,
        }
        if system:
            payload["system"] = "\n".join(system)
        if body.get("temperature") is not None:
            payload["temperature"] = min(float(body["temperature"]), 1.0)
        stop = body.get("stop")
        if stop:
            payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        for key in PASSED:
            if key in body:
                payload[key] = body[key]
        return payload

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }

    async def _message(
        self, body: dict[str, Any], messages: list[dict[str, Any]], kind: str
    ) -> dict[str, Any]:
        """One Messages API call, answered OpenAI-shaped as ``kind`` (chat or completions)."""
        response = await self.send(self.url, self._payload(body, messages), self.headers)
        answer: dict[str, Any] = response.json()
        usage = answer.get("usage") or {}
        text = _text(answer.get("content"))
        choice: dict[str, Any] = {"index": 0}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choice["finish_reason"] = FINISH_REASONS.get(answer.get("stop_reason") or "", "stop")
        return {
            "id": answer.get("id") or f"msg-{uuid.uuid4().hex}",
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": answer.get("model") or self.model,
            "choices": [choice],
            "usage": self._usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        }

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._message(body, list(body.get("messages") or []), "chat")

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._message(body, [_prompt_message(body)], "completions")

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = {**self._payload(body, list(body.get("messages") or [])), "stream": True}
        response = await self.send(self.url, payload, self.headers, stream=True)
        return self._chunks(response, "chat")

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = {**self._payload(body, [_prompt_message(body)]), "stream": True}
        response = await self.send(self.url, payload, self.headers, stream=True)
        return self._chunks(response, "completions")

    async def _chunks(
        self, response: aiohttp.ClientResponse, kind: str
    ) -> AsyncIterator[dict[str, Any]]:
        chunk_id, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), self.model
        input_tokens = output_tokens = 0
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def chunk(choice: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
            choices = [] if choice is None else [{"index": 0, **choice}]
            return {
                "id": chunk_id,
                "object": obj,
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }

        def piece(text: str | None, finish: str | None) -> dict[str, Any]:
            if kind == "chat":
                delta = {"content": text} if text is not None else {}
                return chunk({"delta": delta, "finish_reason": finish})
            return chunk({"text": text or "", "finish_reason": finish})

        async for event, data in self.sse_data(response):
            kind_of = data.get("type", event) if isinstance(data, dict) else event
            if kind_of == "message_start":
                message = data.get("message") or {}
                chunk_id = message.get("id") or chunk_id
                model = message.get("model") or model
                input_tokens = (message.get("usage") or {}).get("input_tokens", 0)
                if kind == "chat":
                    yield chunk(
                        {"delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    )
            elif kind_of == "content_block_delta":
                text = (data.get("delta") or {}).get("text")
                if text:
                    yield piece(text, None)
            elif kind_of == "message_delta":
                output_tokens = (data.get("usage") or {}).get("output_tokens", output_tokens)
                reason = (data.get("delta") or {}).get("stop_reason")
                yield piece(None, FINISH_REASONS.get(reason or "", "stop"))
            elif kind_of == "error":
                yield {"error": data.get("error") or data}
                return
        yield chunk(None, usage=self._usage(input_tokens, output_tokens))
