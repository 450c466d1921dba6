"""What an answer said, choice by choice: text, tool calls and finish reason.

A whole answer (:func:`answer_choices`) and a stream of chunks (:class:`StreamAssembler`) give
the same list of :class:`ChoiceSummary`, one per choice index, so a streamed call is recorded
exactly as the same call without ``stream``. Tool calls are ``{"id", "name", "arguments"}`` with
the arguments as the model sent them (a JSON string, never re-encoded); streamed tool-call
deltas are joined per ``(choice, tool index)``. :func:`offered_tools` names the tools a request
offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChoiceSummary:
    """One choice of an answer."""

    index: int
    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "text": self.text}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        out["finish_reason"] = self.finish_reason
        return out


def _content_text(content: Any) -> str | None:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def _tool_call(call: Any) -> dict[str, Any] | None:
    if not isinstance(call, dict):
        return None
    function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
    name = function.get("name")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = None if arguments is None else str(arguments)
    return {"id": call.get("id"), "name": name, "arguments": arguments}


def answer_choices(answer: dict[str, Any], kind: str) -> list[ChoiceSummary]:
    """Every choice of a whole (non-streamed) chat or completions answer, by index."""
    if kind == "embeddings":
        return []
    summaries = []
    for position, choice in enumerate(answer.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        summary = ChoiceSummary(index if isinstance(index, int) else position)
        summary.finish_reason = choice.get("finish_reason")
        if kind == "chat":
            message = choice.get("message") or {}
            summary.text = _content_text(message.get("content"))
            calls = (_tool_call(c) for c in message.get("tool_calls") or [])
            summary.tool_calls = [c for c in calls if c is not None]
        else:
            text = choice.get("text")
            summary.text = text if isinstance(text, str) else None
        summaries.append(summary)
    return sorted(summaries, key=lambda s: s.index)


class StreamAssembler:
    """Joins ``chat.completion.chunk`` / ``text_completion`` chunks into choice summaries."""

    def __init__(self) -> None:
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}
        self._finish: dict[int, str | None] = {}
        self._seen = False  # any content yet (for the time to first token)

    def feed(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; True when it is the first to carry content (text or a tool call)."""
        carried = False
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            texts = self._texts.setdefault(index, [])
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str) and text:
                carried = True
                texts.append(text)
            if isinstance(delta, dict):
                for call in delta.get("tool_calls") or []:
                    carried = self._feed_call(index, call) or carried
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
        first = carried and not self._seen
        self._seen = self._seen or carried
        return first

    def _feed_call(self, index: int, call: Any) -> bool:
        if not isinstance(call, dict):
            return False
        calls = self._calls.setdefault(index, {})
        position = call.get("index", len(calls))
        slot = calls.setdefault(position, {"id": None, "name": None, "arguments": ""})
        if call.get("id"):
            slot["id"] = call["id"]
        function: dict[str, Any] = (
            call["function"] if isinstance(call.get("function"), dict) else {}
        )
        if function.get("name"):
            slot["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            slot["arguments"] += function["arguments"]
        return True

    def choices(self) -> list[ChoiceSummary]:
        indexes = sorted(set(self._texts) | set(self._calls) | set(self._finish))
        summaries = []
        for index in indexes:
            parts = self._texts.get(index) or []
            calls = self._calls.get(index) or {}
            summaries.append(
                ChoiceSummary(
                    index,
                    "".join(parts) if parts or not calls else None,
                    [calls[k] for k in sorted(calls)],
                    self._finish.get(index),
                )
            )
        return summaries


def offered_tools(body: dict[str, Any]) -> list[str] | None:
    """The names of the tools a chat request offered (function tools and others by type)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    offered = (tool_name(tool) for tool in tools if isinstance(tool, dict))
    names = [name for name in offered if name is not None]
    return names or None


def tool_name(tool: dict[str, Any]) -> str | None:
    """What a tool definition is called: its function's name (OpenAI's ``{type, function:
    {name}}``), else its own ``name`` (GenAI's ``{type, name}``), else its type (a built-in
    tool such as ``web_search``)."""
    function = tool.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return str(function["name"])
    for key in ("name", "type"):
        if isinstance(tool.get(key), str):
            return str(tool[key])
    return None
