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
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.base import Provider, stop_sequences

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
            "messages": to_anthropic_messages([m for m in messages if m.get("role") != "system"]),
            "max_tokens": body.get("max_tokens") or 1024,
        }
        if system:
            payload["system"] = "\n".join(system)
        if body.get("temperature") is not None:
            payload["temperature"] = min(float(body["temperature"]), 1.0)
        if stop := stop_sequences(body):
            payload["stop_sequences"] = stop
        for key in PASSED:
            if key in body:
                payload[key] = body[key]
        if body.get("tools"):
            payload["tools"] = to_anthropic_tools(body["tools"])
        if body.get("tool_choice") is not None:
            payload["tool_choice"] = to_anthropic_tool_choice(body["tool_choice"])
            if body.get("parallel_tool_calls") is False:
                payload["tool_choice"]["disable_parallel_tool_use"] = True
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
        text, calls = from_anthropic_content(answer.get("content"))
        choice: dict[str, Any] = {"index": 0}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": text}
            if calls:
                choice["message"]["tool_calls"] = calls
        else:
            choice["text"] = text or ""
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
        tools_seen = 0  # tool_use blocks so far: their OpenAI tool-call index
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
                    yield chunk({"delta": {"tool_calls": [call]}, "finish_reason": None})
            elif kind_of == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "input_json_delta" and kind == "chat":
                    part = {
                        "index": tools_seen - 1,
                        "function": {"arguments": delta.get("partial_json", "")},
                    }
                    yield chunk({"delta": {"tool_calls": [part]}, "finish_reason": None})
                elif delta.get("text"):
                    yield piece(delta["text"], None)
            elif kind_of == "message_delta":
                output_tokens = (data.get("usage") or {}).get("output_tokens", output_tokens)
                reason = (data.get("delta") or {}).get("stop_reason")
                yield piece(None, FINISH_REASONS.get(reason or "", "stop"))
            elif kind_of == "error":
                yield {"error": data.get("error") or data}
                return
        yield chunk(None, usage=self._usage(input_tokens, output_tokens))
