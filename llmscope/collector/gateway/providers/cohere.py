"""``cohere``: Cohere's v2 Chat and Embed APIs, mapped to and from the unified schema.

Chat messages keep their roles (``tool`` results carry ``tool_call_id``; an assistant's
``tool_calls`` are sent as Cohere's, which share OpenAI's shape); ``max_tokens``,
``temperature``, ``top_p`` (``p``), ``top_k`` (``k``), ``stop`` (``stop_sequences``) and
function ``tools`` are passed on. Answers come back OpenAI-shaped (``finish_reason``
``COMPLETE``/``MAX_TOKENS``/``TOOL_CALL`` as ``stop``/``length``/``tool_calls``; usage from
``usage.tokens``); the stream's ``content-delta``, ``tool-call-start``/``-delta`` and
``message-end`` events become chunks. Completions are one user message. Embeddings use
``/v2/embed`` with ``input_type: search_document`` and float vectors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.adapter import TranslatingProvider
from llmscope.collector.gateway.providers.base import embeddings_answer
from llmscope.collector.gateway.providers.payloads import (
    Choice,
    ChunkEnvelope,
    RequestPayload,
    ResponsePayload,
    Usage,
)

FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
}


def _usage(usage: Any) -> Usage:
    tokens = (usage or {}).get("tokens") or (usage or {}).get("billed_units") or {}
    return Usage.of(int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0))


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        role = message.get("role")
        entry: dict[str, Any] = {"role": "system" if role == "developer" else role}
        content = message.get("content")
        if isinstance(content, list):
            content = [
                {"type": "text", "text": p.get("text", "")}
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
        if content is not None:
            entry["content"] = content
        if role == "tool":
            entry["tool_call_id"] = message.get("tool_call_id")
        if message.get("tool_calls"):
            entry["tool_calls"] = message["tool_calls"]
        out.append(entry)
    return out


class CohereProvider(TranslatingProvider):
    name = "cohere"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        base = str(self.config.get("cohere_api_base") or "https://api.cohere.com").rstrip("/")
        self.base = base
        self.headers = {"Authorization": f"Bearer {self.config['cohere_api_key']}"}

    def _payload(self, request: RequestPayload) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": _messages(request.messages)}
        payload |= request.renamed(
            (
                ("max_tokens", "max_tokens"),
                ("temperature", "temperature"),
                ("top_p", "p"),
                ("top_k", "k"),
                ("seed", "seed"),
                ("frequency_penalty", "frequency_penalty"),
                ("presence_penalty", "presence_penalty"),
                ("tools", "tools"),
            ),
        )
        if stop := request.stop:
            payload["stop_sequences"] = stop
        choice = request.get("tool_choice")
        if choice in ("required", "none"):
            payload["tool_choice"] = choice.upper()
        return payload

    async def answer(self, request: RequestPayload) -> ResponsePayload:
        reply = await self.send(f"{self.base}/v2/chat", self._payload(request), self.headers)
        answer: dict[str, Any] = reply.json()
        message = answer.get("message") or {}
        texts = [p.get("text", "") for p in message.get("content") or [] if p.get("type") == "text"]
        calls = [
            {"id": c.get("id"), "type": "function", "function": c.get("function")}
            for c in message.get("tool_calls") or []
        ]
        text = "".join(texts) if texts or not calls else None
        finish = FINISH.get(answer.get("finish_reason") or "", "stop")
        return ResponsePayload(
            request.kind,
            self.model,
            [Choice(text, calls, finish)],
            _usage(answer.get("usage")),
            id=answer.get("id"),
        )

    async def stream(self, request: RequestPayload) -> AsyncIterator[dict[str, Any]]:
        payload = {**self._payload(request), "stream": True}
        response = await self.send(f"{self.base}/v2/chat", payload, self.headers, stream=True)
        return self._chunks(response, request.kind)

    async def _chunks(self, response: Any, kind: str) -> AsyncIterator[dict[str, Any]]:
        out = ChunkEnvelope(kind, self.model)
        async for event, data in self.sse_data(response):
            kind_of = data.get("type", event) if isinstance(data, dict) else event
            delta = (data.get("delta") or {}) if isinstance(data, dict) else {}
            message = delta.get("message") or {}
            if kind_of == "message-start":
                out.id = data.get("id") or out.id
            elif kind_of == "content-delta":
                text = (message.get("content") or {}).get("text")
                if text:
                    yield out.piece({"content": text})
            elif kind_of == "tool-call-start" and kind == "chat":
                call = message.get("tool_calls") or {}
                head = {
                    "index": data.get("index", 0),
                    "id": call.get("id"),
                    "type": "function",
                    "function": {
                        "name": (call.get("function") or {}).get("name"),
                        "arguments": (call.get("function") or {}).get("arguments", ""),
                    },
                }
                yield out.piece({"tool_calls": [head]})
            elif kind_of == "tool-call-delta" and kind == "chat":
                arguments = ((message.get("tool_calls") or {}).get("function") or {}).get(
                    "arguments", ""
                )
                part = {"index": data.get("index", 0), "function": {"arguments": arguments}}
                yield out.piece({"tool_calls": [part]})
            elif kind_of == "message-end":
                yield out.piece({}, FINISH.get(delta.get("finish_reason") or "", "stop"))
                yield out.usage(_usage(delta.get("usage")))
            elif kind_of == "error" or (
                isinstance(data, dict) and "message" in data and not kind_of
            ):
                yield {"error": data}
                return

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw or []]
        payload = {
            "model": self.model,
            "texts": texts,
            "input_type": body.get("input_type", "search_document"),
            "embedding_types": ["float"],
        }
        answer = (await self.send(f"{self.base}/v2/embed", payload, self.headers)).json()
        vectors = (answer.get("embeddings") or {}).get("float") or []
        billed = ((answer.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0
        return embeddings_answer(vectors, self.model, billed)
