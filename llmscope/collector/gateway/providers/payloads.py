"""The typed payloads between the gateway and its translating providers, and the OpenAI envelope.

The gateway speaks OpenAI's wire format (MLflow's unified schema) to every provider. A provider
whose API is another one (Anthropic, Bedrock, Cohere, Gemini, TGI, MLflow serving) reads the
call as a :class:`RequestPayload` (the request, with the readings every translation needs:
its messages, its stop list, its function tools) and answers with a :class:`ResponsePayload`
(what was said: choices and usage) or, for a stream, with chunks a :class:`ChunkEnvelope`
builds. This module alone knows the envelope around them (``id``, ``object``, ``created``,
``model``, ``choices``, ``usage``): the keys, their order, and the ``None`` an unknown count is.

Plain dataclasses rather than pydantic models, as a choice: nothing here is parsed from a
client (the gateway checked the request before; a provider's foreign answer is read by its
own translation), so a model's validation would only cost time on every stream chunk; and the
envelope is written out by hand in :meth:`ResponsePayload.wire` and :meth:`ChunkEnvelope.chunk`
so the dicts sent stay exactly what OpenAI clients read, key order and nulls included.

Example::

    request = RequestPayload("completions", {"prompt": "Hi", "stop": "."})
    request.messages  # [{"role": "user", "content": "Hi"}]
    request.stop      # ["."]
    answer = ResponsePayload("chat", "m", [Choice(text="Hello")], Usage.of(3, 1))
    answer.wire()["usage"]  # {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["chat", "completions"]


def _new_id(kind: str) -> str:
    # OpenAI's own prefixes: a client that logs ids sees the kind it asked for
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class RequestPayload:
    """A chat or completions call as a provider that translates it reads it."""

    kind: Kind
    body: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages; a completions ``prompt`` as one user message (chat-only APIs)."""
        if self.kind == "chat":
            return list(self.body.get("messages") or [])
        prompt = self.body.get("prompt")
        text = prompt if isinstance(prompt, str) else "".join(map(str, prompt or []))
        return [{"role": "user", "content": text}]

    @property
    def stop(self) -> list[Any] | None:
        """``stop`` as a list (OpenAI also takes one string), or None when not given."""
        stop = self.body.get("stop")
        if not stop:
            return None
        return [stop] if isinstance(stop, str) else list(stop)

    @property
    def function_tools(self) -> list[dict[str, Any]]:
        """The ``function`` of each OpenAI tool of the request (other kinds are left out)."""
        tools = self.body.get("tools") or []
        return [t["function"] for t in tools if isinstance(t.get("function"), dict)]

    def renamed(self, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """``{theirs: body[ours]}`` for each pair whose value is given (a later pair naming the
        same key wins, as for two of ours mapping to one of theirs)."""
        return {
            theirs: self.body[ours] for ours, theirs in pairs if self.body.get(ours) is not None
        }


@dataclass(frozen=True)
class Usage:
    """Token counts; None where the provider does not say."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        """Both counts known: the total is their sum."""
        return cls(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)

    def wire(self) -> dict[str, int | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Choice:
    """One answer: its text (None when it only calls tools), OpenAI-shaped tool calls."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    index: int = 0

    def wire(self, kind: str) -> dict[str, Any]:
        if kind != "chat":
            return {
                "index": self.index,
                "text": self.text or "",
                "finish_reason": self.finish_reason,
            }
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return {"index": self.index, "message": message, "finish_reason": self.finish_reason}


@dataclass(frozen=True)
class ResponsePayload:
    """A whole answer; :meth:`wire` is the ``chat.completion`` / ``text_completion`` sent."""

    kind: str
    model: str
    choices: list[Choice]
    usage: Usage
    id: str | None = None  # the provider's own id; a new one when it gives none
    created: int | None = None  # seconds since the epoch; now when not given

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id or _new_id(self.kind),
            "object": "chat.completion" if self.kind == "chat" else "text_completion",
            "created": int(time.time()) if self.created is None else self.created,
            "model": self.model,
            "choices": [choice.wire(self.kind) for choice in self.choices],
            "usage": self.usage.wire(),
        }


@dataclass
class ChunkEnvelope:
    """Builds one stream's ``chat.completion.chunk`` / ``text_completion`` chunks.

    Every chunk of a stream shares the id, ``created`` and model; a provider that learns its
    own id or model from the first event sets them here before the next chunk.
    """

    kind: str
    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = self.id or _new_id(self.kind)

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.kind == "chat" else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def choice(
        self, delta: dict[str, Any], finish: str | None = None, index: int = 0
    ) -> dict[str, Any]:
        """A streamed choice: chat keeps the delta; completions keep its ``content`` as text."""
        if self.kind == "chat":
            return {"index": index, "delta": delta, "finish_reason": finish}
        return {"index": index, "text": delta.get("content") or "", "finish_reason": finish}

    def piece(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        """A chunk with one choice (index 0), the shape most streams send."""
        return self.chunk([self.choice(delta, finish)])

    def usage(self, usage: Usage) -> dict[str, Any]:
        """The closing chunk: no choices, the call's usage."""
        return self.chunk([], usage=usage.wire())
