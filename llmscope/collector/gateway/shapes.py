"""Response JSON as each client expects it: MLflow's unified schema and OpenAI's errors.

MLflow >= 2.9 answers are OpenAI-shaped but carry only the fields below; :func:`for_mlflow`
keeps exactly those, so ``mlflow.deployments`` clients see what MLflow's own server sends.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

RECORD_HEADER = "X-LLMScope-Record-Id"  # on every gateway answer: the id of its record

# As OpenAI's API words them: (type, code) by status.
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(flavor: str, status: int, message: str) -> dict[str, Any]:
    """An error as OpenAI clients (``{"error": {...}}``) or MLflow clients (``detail``) read it."""
    if flavor != "mlflow":  # openai and responses
        kind, code = _ERROR_TYPES.get(status, ("api_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"detail": message, "message": message}


def first_text(answer: dict[str, Any], kind: str) -> str | None:
    """The answer's text (first choice), or None for embeddings and tool calls."""
    if kind == "embeddings":
        return None
    choices = answer.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    if kind == "chat":
        content = (choices[0].get("message") or {}).get("content")
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else None
    text = choices[0].get("text")
    return text if isinstance(text, str) else None


def _usage(answer: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    usage = answer.get("usage") or {}
    return {key: usage.get(key) for key in keys}


def for_mlflow(answer: dict[str, Any], kind: str, provider: str | None = None) -> dict[str, Any]:
    """``answer`` (OpenAI-shaped) reduced to MLflow's response payload for ``kind``; a chat
    answer names the ``provider`` that answered, as MLflow's server does."""
    if kind == "embeddings":
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "embedding": d.get("embedding"), "index": d.get("index", i)}
                for i, d in enumerate(answer.get("data") or [])
            ],
            "model": answer.get("model"),
            "usage": _usage(answer, ("prompt_tokens", "total_tokens")),
        }
    choices = []
    for i, choice in enumerate(answer.get("choices") or []):
        out: dict[str, Any] = {"index": choice.get("index", i)}
        if kind == "chat":
            message = choice.get("message") or {}
            out["message"] = {
                "role": message.get("role", "assistant"),
                "content": message.get("content"),
            }
            if message.get("tool_calls"):
                # MLflow's ResponseMessage carries them: agents (ChatMlflow.bind_tools) need them
                out["message"]["tool_calls"] = [
                    {
                        "id": c.get("id"),
                        "type": c.get("type", "function"),
                        "function": c.get("function"),
                    }
                    for c in message["tool_calls"]
                    if isinstance(c, dict)
                ]
        else:
            out["text"] = choice.get("text")
        out["finish_reason"] = choice.get("finish_reason")
        choices.append(out)
    shaped = {
        "id": answer.get("id") or f"{kind}-{uuid.uuid4().hex}",
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": answer.get("created") or int(time.time()),
        "model": answer.get("model"),
        "choices": choices,
        "usage": _usage(answer, ("prompt_tokens", "completion_tokens", "total_tokens")),
    }
    if kind == "chat":
        shaped["provider"] = provider
    return shaped
