"""OpenAI's Responses API (``POST /v1/responses``) over any chat endpoint.

Providers that have the API (``openai``) get the request as it came; for every other provider
the request is translated to a chat completion (:func:`to_chat`) and the answer back into a
Response object (:func:`from_chat`) or, streamed, into the Responses event stream
(:class:`ResponsesStream`: ``response.created`` ... ``response.output_text.delta`` ...
``response.function_call_arguments.delta`` ... ``response.completed``). Supported: ``input``
as text or a list of messages (``input_text``/``input_image`` parts), ``function_call`` and
``function_call_output`` items, ``instructions``, function ``tools``, ``tool_choice``,
``max_output_tokens``, ``temperature``, ``top_p``, ``text.format`` (JSON schema) and
``stream``. :func:`response_choices` reads what a native answer said, for the record.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llmscope.collector.gateway.choices import ChoiceSummary

PASSED = ("temperature", "top_p", "user", "parallel_tool_calls", "stream")


class NotTranslatable(ValueError):
    """A Responses request this gateway cannot express as a chat call (400 naming the field)."""


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise NotTranslatable(f"{where}: must be an object")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise NotTranslatable(f"{where}.image_url: only image URLs (or data URLs) translate")
        return {
            "type": "image_url",
            "image_url": {"url": url, "detail": part.get("detail", "auto")},
        }
    raise NotTranslatable(f"{where}.type: {kind!r} parts cannot be sent to this endpoint")


def _content(content: Any, where: str) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    if not isinstance(content, list):
        raise NotTranslatable(f"{where}: must be text or a list of parts")
    parts = [_part(p, f"{where}[{i}]") for i, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(items: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise NotTranslatable(f"{where}: must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            role = "system" if role == "developer" else role
            messages.append({"role": role, "content": _content(item.get("content"), where)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # a reasoning model's trace: nothing a chat API takes
        else:
            raise NotTranslatable(f"{where}.type: {kind!r} items cannot be sent to this endpoint")
    return messages


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise NotTranslatable(f"tools[{i}].type: only function tools translate, not {kind!r}")
        function = {"name": tool.get("name"), "parameters": tool.get("parameters") or {}}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request as a chat completion request; NotTranslatable names what cannot be."""
    raw = body.get("input")
    if isinstance(raw, str):
        messages = [{"role": "user", "content": raw}]
    elif isinstance(raw, list) and raw:
        messages = _messages(raw)
    else:
        raise NotTranslatable("input: text or a non-empty list of items is required")
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    chat: dict[str, Any] = {"messages": messages}
    for key in PASSED:
        if key in body:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        chat["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt.items() if k != "type"}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    return chat


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    used, made = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return {
        "input_tokens": used,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": made,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used + made,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(item_id: str, call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "name": call.get("name"),
        "arguments": call.get("arguments") or "",
    }


def envelope(body: dict[str, Any], response_id: str, model: str, created: int) -> dict[str, Any]:
    """A Response object without output: what ``response.created`` carries."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "metadata": body.get("metadata") or {},
        "usage": None,
    }


def from_chat(answer: dict[str, Any], body: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion answer as a completed Response object (first choice)."""
    response = envelope(body, f"resp_{uuid.uuid4().hex}", model, int(time.time()))
    choices = answer.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    output: list[dict[str, Any]] = []
    if content:
        output.append(_message_item(f"msg_{uuid.uuid4().hex}", content))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        flat = {"id": call.get("id"), **function}
        output.append(_call_item(f"fc_{uuid.uuid4().hex}", flat))
    response["output"] = output
    response["usage"] = _usage(answer.get("usage"))
    if first.get("finish_reason") == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        response["status"] = "completed"
    return response


def response_choices(response: dict[str, Any]) -> list[ChoiceSummary]:
    """A Response object's output as one choice: its text and its function calls."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(part.get("text", ""))
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments"),
                }
            )
    finish = "tool_calls" if calls else "stop"
    if response.get("status") == "incomplete":
        finish = "length"
    return [ChoiceSummary(0, "".join(texts) if texts or not calls else None, calls, finish)]


def response_usage(response: dict[str, Any]) -> dict[str, Any] | None:
    """A Response object's usage in chat terms (``prompt_tokens``, ``completion_tokens``)."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    return {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
    }


class ResponsesStream:
    """Turns chat completion chunks into Responses API server-sent events, in order."""

    def __init__(self, body: dict[str, Any], model: str) -> None:
        self.response = envelope(body, f"resp_{uuid.uuid4().hex}", model, int(time.time()))
        self._seq = 0
        self._text_item: dict[str, Any] | None = None
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # tool index -> function_call item
        self._output: list[dict[str, Any]] = []
        self._finish: str | None = None

    def _event(self, kind: str, **data: Any) -> str:
        payload = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"

    def start(self) -> list[str]:
        return [
            self._event("response.created", response=dict(self.response)),
            self._event("response.in_progress", response=dict(self.response)),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[str]:
        events: list[str] = []
        if chunk.get("usage"):
            self.response["usage"] = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _text_delta(self, text: str) -> list[str]:
        events = []
        if self._text_item is None:
            self._text_item = _message_item(f"msg_{uuid.uuid4().hex}", "", "in_progress")
            self._text_item["content"] = []
            self._output.append(self._text_item)
            where = {"output_index": len(self._output) - 1}
            events.append(self._event("response.output_item.added", item=self._text_item, **where))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._text_item["id"],
                    content_index=0,
                    part=part,
                    **where,
                )
            )
        self._text.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._text_item["id"],
                output_index=self._output.index(self._text_item),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[str]:
        position = call.get("index", 0)
        function = call.get("function") or {}
        events = []
        item = self._calls.get(position)
        if item is None:
            flat = {"id": call.get("id"), "name": function.get("name"), "arguments": ""}
            item = _call_item(f"fc_{uuid.uuid4().hex}", flat, "in_progress")
            self._calls[position] = item
            self._output.append(item)
            events.append(
                self._event(
                    "response.output_item.added", output_index=len(self._output) - 1, item=item
                )
            )
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            item["arguments"] += piece
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._output.index(item),
                    delta=piece,
                )
            )
        return events

    def finish(self) -> list[str]:
        events = []
        for index, item in enumerate(self._output):
            if item is self._text_item:
                text = "".join(self._text)
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                item["content"] = [part]
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                events.append(
                    self._event("response.output_text.done", text=text, logprobs=[], **where)
                )
                events.append(self._event("response.content_part.done", part=part, **where))
            else:
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                )
            item["status"] = "completed"
            events.append(self._event("response.output_item.done", output_index=index, item=item))
        self.response["output"] = self._output
        if self._finish == "length":
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            events.append(self._event("response.incomplete", response=self.response))
        else:
            self.response["status"] = "completed"
            events.append(self._event("response.completed", response=self.response))
        return events

    def fail(self, message: str) -> list[str]:
        self.response["status"] = "failed"
        self.response["error"] = {"code": "server_error", "message": message}
        return [self._event("response.failed", response=self.response)]
