"""Chat messages as the OpenTelemetry GenAI conventions write them, read into record messages.

A GenAI message is ``{role, parts: [{type, content}, ...]}`` (or the older ``{role, content}``);
a record message keeps ``role`` and the joined text ``content`` and, as the gateway records an
OpenAI request, the ``tool_call`` parts as ``tool_calls`` (``{id, type: function, function:
{name, arguments}}``, arguments as JSON text) and a ``tool_call_response`` part as
``tool_call_id`` with its response as the content; other parts that are not text (media) stay
under ``parts``. :func:`answer_tool_calls` gives the record's ``tool_calls`` (the first answer's,
``{id, name, arguments}``) and :func:`tool_names` the names of the tools offered. A shape that
breaks the convention raises ``BadAttribute`` naming the attribute.
"""

from __future__ import annotations

import json
from typing import Any

from llmscope.collector.gateway.choices import tool_name
from llmscope.collector.otlp.attributes import Attrs, BadAttribute

__all__ = [
    "answer_tool_calls",
    "first_text",
    "genai_messages",
    "openai_tool_call",
    "part_texts",
    "tool_names",
]


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def openai_tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A tool call as an OpenAI request message holds it (the gateway's ``messages``)."""
    return {
        "id": call_id if isinstance(call_id, str) else None,
        "type": "function",
        "function": {"name": str(name or ""), "arguments": _json_text(arguments)},
    }


def answer_tool_calls(messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The record's ``tool_calls``: the first answer's, ``{id, name, arguments}``."""
    for message in messages or []:
        calls = message.get("tool_calls")
        if calls:
            return [
                {"id": c.get("id"), "name": c["function"]["name"],
                 "arguments": c["function"]["arguments"]}
                for c in calls
            ]  # fmt: skip
        return None
    return None


def tool_names(definitions: Any, key: str) -> list[str] | None:
    """The names of the tools a request offered, from their definitions (GenAI's
    ``{type, name, ...}`` or OpenAI's ``{type, function: {name, ...}}``)."""
    if definitions is None:
        return None
    if not isinstance(definitions, list):
        raise BadAttribute(key, "expected a list of tool definitions")
    if not all(isinstance(tool, dict) for tool in definitions):
        raise BadAttribute(key, "expected tool definitions to be objects")
    offered = (tool_name(tool) for tool in definitions)
    names = [name for name in offered if name is not None]
    return names or None


def part_texts(parts: Any, key: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The joined text of GenAI message parts, and the parts that are not text."""
    if isinstance(parts, str):
        return parts, []
    if not isinstance(parts, list):
        raise BadAttribute(key, "expected a list of message parts")
    texts, others = [], []
    for part in parts:
        if not isinstance(part, dict):
            raise BadAttribute(key, "expected message parts to be objects")
        if part.get("type", "text") == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        else:
            others.append(part)
    return ("\n".join(texts) if texts else None), others


def _genai_message(raw: Any, key: str, default_role: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadAttribute(key, "expected message objects")
    message: dict[str, Any] = {"role": str(raw.get("role") or default_role)}
    if "parts" in raw:
        text, others = part_texts(raw["parts"], key)
        message["content"] = text
        calls, kept = [], []
        for part in others:
            kind = part.get("type")
            if kind == "tool_call":
                calls.append(
                    openai_tool_call(part.get("id"), part.get("name"), part.get("arguments"))
                )
            elif kind == "tool_call_response":
                if isinstance(part.get("id"), str):
                    message["tool_call_id"] = part["id"]
                if message["content"] is None:
                    message["content"] = _json_text(part.get("response"))
            else:
                kept.append(part)
        if calls:
            message["tool_calls"] = calls
        if kept:
            message["parts"] = kept
    elif isinstance(raw.get("content"), str):  # the older {role, content} shape
        message["content"] = raw["content"]
    return message


def genai_messages(attrs: Attrs, key: str, default_role: str) -> list[dict[str, Any]] | None:
    value = attrs.structured(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadAttribute(key, f"expected a list of messages, got {type(value).__name__}")
    return [_genai_message(m, key, default_role) for m in value]


def first_text(messages: list[dict[str, Any]] | None) -> str | None:
    for message in messages or []:
        if isinstance(message.get("content"), str):
            return str(message["content"])
    return None
