"""Chat messages as the OpenTelemetry GenAI conventions write them, read into record messages.

A GenAI message is ``{role, parts: [{type, content}, ...]}`` (or the older ``{role, content}``);
a record message keeps ``role`` and the joined text ``content``, and keeps the parts that are not
text (tool calls, media) under ``parts``. A shape that breaks the convention raises
``BadAttribute`` naming the attribute.
"""

from __future__ import annotations

from typing import Any

from llmscope.collector.otlp.attributes import Attrs, BadAttribute

__all__ = ["first_text", "genai_messages", "part_texts"]


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
        if others:
            message["parts"] = others
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
