"""What the user asked: the one reading of a record's (or a request's) text that every part shares.

A record holds what was asked in up to three places: a template's ``variables``, a plain
``prompt`` (completions), or chat ``messages`` whose ``content`` is a string or a list of
OpenAI-style content parts. The analysis embeds and summarises :func:`user_text`, the offline
provider answers :func:`last_user_text`, the dashboard shows :func:`conversation_text`; all
read message contents through :func:`content_text`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["content_text", "conversation_text", "last_user_text", "user_text"]


def content_text(content: Any) -> str:
    """The text of one message's ``content``: a string as it is, content parts' texts joined."""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def last_user_text(messages: Iterable[Any] | None) -> str:
    """The content of the last ``user`` message, or ``""`` when there is none."""
    for message in reversed(list(messages or [])):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def user_text(
    prompt: str | None,
    messages: Iterable[Any] | None,
    variables: Mapping[str, Any] | None = None,
) -> str:
    """What the user asked: a template's variables, else the prompt, else the last user turn.

    The arguments are a record's ``prompt``, ``messages`` and ``template_variables``. For a
    templated prompt the fixed template text is the same for every call, so only the variable
    part says what this call was about.
    """
    if variables:
        parts = [v if isinstance(v, str) else json.dumps(v) for _, v in sorted(variables.items())]
        return "\n".join(parts).strip()
    if prompt:
        return str(prompt).strip()
    return last_user_text(messages).strip()


def conversation_text(prompt: str | None, messages: Iterable[Mapping[str, Any]] | None) -> str:
    """The prompt, or the whole chat as ``role: content`` lines (for reading, not analysis)."""
    if prompt:
        return prompt
    return "\n".join(
        f"{message.get('role', '?')}: {content_text(message.get('content'))}"
        for message in messages or []
    )
