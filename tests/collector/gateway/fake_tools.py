"""Tool calling and the Responses API for the fake provider, as OpenAI and Anthropic do them.

When a request offers tools and the conversation does not end with a tool's result, the fake
calls the first tool with ``{"query": <last user text>}``; after a tool result it answers in
text. The Anthropic side refuses what the real Messages API refuses (OpenAI-only message shapes:
a ``tool`` role, ``tool_calls`` on a message, a tool without ``input_schema``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [p.get("text", "") for p in content or [] if isinstance(p, dict)]
        return "".join(texts)
    return ""


def tool_call_for(body: dict[str, Any]) -> dict[str, Any] | None:
    """The OpenAI tool call the fake makes for a chat request, or None to answer in text."""
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not tools or (messages and messages[-1].get("role") == "tool"):
        return None
    if body.get("tool_choice") == "none":
        return None
    name = tools[0]["function"]["name"]
    arguments = json.dumps({"query": _last_user_text(messages)})
    return {
        "id": "call_fake1",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


# --- Anthropic ----------------------------------------------------------------------------
def anthropic_shape_error(body: dict[str, Any]) -> str | None:
    for i, message in enumerate(body.get("messages") or []):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "tool_calls" in message or "tool_call_id" in message:
            return f"messages.{i}: Extra inputs are not permitted"
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if block.get("type") not in ("text", "image", "tool_use", "tool_result"):
                return f"messages.{i}.content.{j}.type: invalid"
    for i, tool in enumerate(body.get("tools") or []):
        if "input_schema" not in tool or "name" not in tool:
            return f"tools.{i}.input_schema: Field required"
    return None


def anthropic_tool_use(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not tools or (body.get("tool_choice") or {}).get("type") == "none":
        return None
    last = messages[-1].get("content") if messages else None
    if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
        return None
    return {
        "type": "tool_use",
        "id": "toolu_fake1",
        "name": tools[0]["name"],
        "input": {"query": _last_user_text(messages)},
    }


def anthropic_tool_answer(body: dict[str, Any], tool: dict[str, Any]) -> Response:
    message = {"id": "msg_tool1", "type": "message", "role": "assistant", "model": body["model"]}
    usage = {"input_tokens": 30, "output_tokens": 12}
    if not body.get("stream"):
        return JSONResponse(
            {
                **message,
                "content": [{"type": "text", "text": "Let me look."}, tool],
                "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": usage,
            }
        )
    arguments = json.dumps(tool["input"])

    async def events() -> AsyncIterator[str]:
        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        start = {**message, "content": [], "usage": {"input_tokens": 30, "output_tokens": 1}}
        yield event("message_start", {"message": start})
        yield event("content_block_start", {"index": 0, "content_block": {"type": "text"}})
        text_delta = {"type": "text_delta", "text": "Let me look."}
        yield event("content_block_delta", {"index": 0, "delta": text_delta})
        yield event("content_block_stop", {"index": 0})
        block = {**tool, "input": {}}
        yield event("content_block_start", {"index": 1, "content_block": block})
        for piece in (arguments[:4], arguments[4:]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            yield event("content_block_delta", {"index": 1, "delta": delta})
            await asyncio.sleep(0.003)
        yield event("content_block_stop", {"index": 1})
        yield event(
            "message_delta",
            {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
        )
        yield event("message_stop", {})

    return StreamingResponse(events(), media_type="text/event-stream")


# --- OpenAI Responses API -----------------------------------------------------------------
def _responses_input_text(body: dict[str, Any]) -> str:
    raw = body.get("input")
    if isinstance(raw, str):
        return raw
    for item in reversed(raw or []):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [])
    return ""


def responses_answer(body: dict[str, Any]) -> Response:
    """A Response object (or its event stream) for a native ``/v1/responses`` request."""
    text = f"Echo: {_responses_input_text(body)}"
    base = {
        "id": "resp_fake1",
        "object": "response",
        "created_at": 1700000000,
        "model": body["model"],
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice", "auto"),
        "parallel_tool_calls": True,
        "error": None,
        "incomplete_details": None,
        "metadata": {},
    }
    tools = body.get("tools") or []
    if tools:
        arguments = json.dumps({"query": _responses_input_text(body)})
        item = {
            "type": "function_call",
            "id": "fc_fake1",
            "call_id": "call_fake1",
            "name": tools[0]["name"],
            "arguments": arguments,
            "status": "completed",
        }
    else:
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "type": "message",
            "id": "msg_fake1",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
    usage = {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9}
    done = {**base, "status": "completed", "output": [item], "usage": usage}
    if not body.get("stream"):
        return JSONResponse(done)

    async def events() -> AsyncIterator[str]:
        seq = 0

        def event(data: dict[str, Any]) -> str:
            nonlocal seq
            seq += 1
            return (
                f"event: {data['type']}\ndata: {json.dumps({**data, 'sequence_number': seq})}\n\n"
            )

        started = {**base, "status": "in_progress", "output": [], "usage": None}
        yield event({"type": "response.created", "response": started})
        if item["type"] == "message":
            yield event({"type": "response.output_item.added", "output_index": 0, "item": item})
            for piece in text.split(" "):
                yield event(
                    {
                        "type": "response.output_text.delta",
                        "item_id": "msg_fake1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece + " ",
                        "logprobs": [],
                    }
                )
                await asyncio.sleep(0.003)
        yield event({"type": "response.completed", "response": done})

    return StreamingResponse(events(), media_type="text/event-stream")
