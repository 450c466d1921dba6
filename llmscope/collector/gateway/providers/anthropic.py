"""The ``anthropic`` provider: the Messages API, mapped to and from the unified schema.

System messages become ``system``; ``stop`` becomes ``stop_sequences``; ``max_tokens`` (which
Anthropic requires) defaults to 1024; OpenAI's 0-2 temperature is clipped to Anthropic's 0-1.
Tools map both ways: OpenAI function tools become ``tools`` with ``input_schema``, ``tool_choice``
``auto``/``required``/``none``/a named function becomes ``auto``/``any``/``none``/``tool``; an
assistant message's ``tool_calls`` become ``tool_use`` blocks and ``tool`` messages become
``tool_result`` blocks in a user turn; image parts (``image_url``) become ``image`` blocks.
Answers come back OpenAI-shaped (``tool_use`` blocks as ``tool_calls``, arguments as JSON text),
streams as ``chat.completion.chunk``s (``input_json_delta`` as tool-call argument deltas) with a
final usage chunk. Completions are sent as one user message. Embeddings are not offered.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.adapter import TranslatingProvider
from llmscope.collector.gateway.providers.payloads import (
    Choice,
    ChunkEnvelope,
    RequestPayload,
    ResponsePayload,
    Usage,
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
PASSED = ("top_p", "top_k", "metadata")
_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,(.*)$", re.DOTALL)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _blocks(content: Any) -> Any:
    """OpenAI content parts as Anthropic content blocks (text stays a plain string)."""
    if not isinstance(content, list):
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            match = _DATA_URL.match(url)
            if match:
                source = {"type": "base64", "media_type": match.group(1), "data": match.group(2)}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
        elif part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        else:
            blocks.append(part)  # already Anthropic-shaped (document, image...)
    return blocks


def _arguments(text: Any) -> Any:
    if not isinstance(text, str):
        return text if isinstance(text, dict) else {}
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def to_anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages (no system ones) as Messages API turns, tool calls and results included."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _blocks(message.get("content")),
            }
            last = turns[-1] if turns else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)  # parallel tool results share one user turn
            else:
                turns.append({"role": "user", "content": [block]})
            continue
        calls = message.get("tool_calls") if role == "assistant" else None
        if calls:
            content = _blocks(message.get("content"))
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            blocks = [b for b in blocks if b.get("type") != "text" or b.get("text")]
            for call in calls:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": _arguments(function.get("arguments")),
                    }
                )
            turns.append({"role": "assistant", "content": blocks})
            continue
        turns.append({"role": role, "content": _blocks(message.get("content"))})
    return turns


def to_anthropic_tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        if tool.get("type") == "function" and isinstance(function, dict):
            entry: dict[str, Any] = {
                "name": function.get("name"),
                "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
            }
            if function.get("description"):
                entry["description"] = function["description"]
            out.append(entry)
        else:
            out.append(tool)  # an Anthropic tool already (name + input_schema, or a server tool)
    return out


def to_anthropic_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    return choice


def from_anthropic_content(content: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """A Messages API answer's blocks as (text, OpenAI tool_calls)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
    text = "".join(texts)
    return (text if texts or not calls else None), calls


class AnthropicProvider(TranslatingProvider):
    name = "anthropic"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        base = str(self.config.get("anthropic_api_base") or "https://api.anthropic.com/v1")
        self.url = base.rstrip("/") + "/messages"
        self.headers = {
            "x-api-key": str(self.config["anthropic_api_key"]),
            "anthropic-version": str(self.config.get("anthropic_version") or "2023-06-01"),
        }

    def _payload(self, request: RequestPayload) -> dict[str, Any]:
        messages = request.messages
        system = [_text(m.get("content")) for m in messages if m.get("role") == "system"]
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": to_anthropic_messages([m for m in messages if m.get("role") != "system"]),
            "max_tokens": request.get("max_tokens") or 1024,
        }
        if system:
            payload["system"] = "\n".join(system)
        if request.get("temperature") is not None:
            payload["temperature"] = min(float(request.get("temperature")), 1.0)
        if stop := request.stop:
            payload["stop_sequences"] = stop
        for key in PASSED:
            if key in request.body:
                payload[key] = request.body[key]
        if request.get("tools"):
            payload["tools"] = to_anthropic_tools(request.get("tools"))
        if request.get("tool_choice") is not None:
            payload["tool_choice"] = to_anthropic_tool_choice(request.get("tool_choice"))
            if request.get("parallel_tool_calls") is False:
                payload["tool_choice"]["disable_parallel_tool_use"] = True
        return payload

    async def answer(self, request: RequestPayload) -> ResponsePayload:
        """One Messages API call."""
        response = await self.send(self.url, self._payload(request), self.headers)
        answer: dict[str, Any] = response.json()
        usage = answer.get("usage") or {}
        text, calls = from_anthropic_content(answer.get("content"))
        finish = FINISH_REASONS.get(answer.get("stop_reason") or "", "stop")
        return ResponsePayload(
            request.kind,
            answer.get("model") or self.model,
            [Choice(text, calls, finish)],
            Usage.of(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
            id=answer.get("id"),
        )

    async def stream(self, request: RequestPayload) -> AsyncIterator[dict[str, Any]]:
        payload = {**self._payload(request), "stream": True}
        response = await self.send(self.url, payload, self.headers, stream=True)
        return self._chunks(response, request.kind)

    async def _chunks(
        self, response: aiohttp.ClientResponse, kind: str
    ) -> AsyncIterator[dict[str, Any]]:
        out = ChunkEnvelope(kind, self.model)
        input_tokens = output_tokens = 0
        tools_seen = 0  # tool_use blocks so far: their OpenAI tool-call index
        async for event, data in self.sse_data(response):
            kind_of = data.get("type", event) if isinstance(data, dict) else event
            if kind_of == "message_start":
                message = data.get("message") or {}
                out.id = message.get("id") or out.id
                out.model = message.get("model") or out.model
                input_tokens = (message.get("usage") or {}).get("input_tokens", 0)
                if kind == "chat":
                    yield out.piece({"role": "assistant", "content": ""})
            elif kind_of == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use" and kind == "chat":
                    tools_seen += 1
                    call = {
                        "index": tools_seen - 1,
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""},
                    }
                    yield out.piece({"tool_calls": [call]})
            elif kind_of == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "input_json_delta" and kind == "chat":
                    part = {
                        "index": tools_seen - 1,
                        "function": {"arguments": delta.get("partial_json", "")},
                    }
                    yield out.piece({"tool_calls": [part]})
                elif delta.get("text"):
                    yield out.piece({"content": delta["text"]})
            elif kind_of == "message_delta":
                output_tokens = (data.get("usage") or {}).get("output_tokens", output_tokens)
                reason = (data.get("delta") or {}).get("stop_reason")
                yield out.piece({}, FINISH_REASONS.get(reason or "", "stop"))
            elif kind_of == "error":
                yield {"error": data.get("error") or data}
                return
        yield out.usage(Usage.of(input_tokens, output_tokens))
