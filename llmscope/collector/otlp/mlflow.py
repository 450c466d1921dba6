"""MLflow's own span attributes (``mlflow.*``): MLflow Tracing, autolog and its AI gateway.

MLflow exports spans over OTLP when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, with every
attribute value JSON-encoded (``mlflow.spanType`` is ``"\\"CHAT_MODEL\\""``). A span is an LLM
call when ``mlflow.spanType`` is ``CHAT_MODEL`` or ``LLM``; any other type (``AGENT``, ``TOOL``,
``RETRIEVER``, ``CHAIN``, ``EMBEDDING``...) says it is not one. Read from it:

- ``mlflow.spanInputs`` / ``mlflow.spanOutputs`` in the formats ``mlflow.message.format`` names:
  OpenAI (``messages``; a chat completion or Responses object out), Anthropic (``system`` +
  ``messages``; ``content`` blocks out) and LangChain (lists of serialized messages in;
  ``generations`` out), with tool calls and the names of the tools offered;
- ``mlflow.chat.tokenUsage`` (``input_tokens``, ``output_tokens``), ``mlflow.llm.model``,
  ``mlflow.llm.provider``;
- ``mlflow.linkedPrompts`` (``[{name, version}]``): the first is the record's template;
- ``session.id``, ``user.id`` (or MLflow's ``mlflow.trace.session``/``mlflow.trace.user``) and
  ``mlflow.traceRequestId`` (the tag ``mlflow.request_id``).
"""

from __future__ import annotations

import json
from typing import Any

from llmscope.collector.otlp.attributes import Attrs

LLM_SPAN_TYPES = {"CHAT_MODEL", "LLM"}
_LANGCHAIN_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def decoded(attrs: Attrs, key: str) -> Any:
    """An MLflow attribute's value: JSON-decoded when it is JSON text, else as it came."""
    value = attrs.raw(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "output_text", "input_text")
        ]
        return "".join(texts) if texts else None
    return None


def _tool_call(call: Any) -> dict[str, Any] | None:
    if not isinstance(call, dict):
        return None
    function = call.get("function") if isinstance(call.get("function"), dict) else None
    if function is not None:  # OpenAI
        return {"id": call.get("id"), "name": function.get("name"),
                "arguments": function.get("arguments")}  # fmt: skip
    if call.get("type") == "tool_use":  # Anthropic
        return {"id": call.get("id"), "name": call.get("name"),
                "arguments": json.dumps(call.get("input") or {})}  # fmt: skip
    if "name" in call and "args" in call:  # LangChain
        return {"id": call.get("id"), "name": call.get("name"),
                "arguments": json.dumps(call.get("args") or {})}  # fmt: skip
    return None


def _message(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    role = raw.get("role")
    if role is None and isinstance(raw.get("type"), str):  # a serialized LangChain message
        role = _LANGCHAIN_ROLES.get(raw["type"], raw["type"])
    message: dict[str, Any] = {"role": str(role or "user"), "content": raw.get("content")}
    if isinstance(raw.get("content"), list):
        blocks = raw["content"]
        calls = [c for c in (_tool_call(b) for b in blocks) if c is not None]
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if calls or results:
            message["content"] = _text_of(blocks)
            if calls:
                message["tool_calls"] = _as_openai_calls(calls)
    if raw.get("tool_calls"):
        calls = [c for c in (_tool_call(c) for c in raw["tool_calls"]) if c is not None]
        message["tool_calls"] = _as_openai_calls(calls)
    if raw.get("tool_call_id"):
        message["tool_call_id"] = raw["tool_call_id"]
    return message


def _as_openai_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls
    ]  # fmt: skip


def _input_messages(inputs: Any) -> list[dict[str, Any]] | None:
    raw: Any = None
    system: Any = None
    if isinstance(inputs, dict):
        raw = inputs.get("messages") or inputs.get("input")
        system = inputs.get("system") or inputs.get("instructions")
        if isinstance(raw, str):
            raw = [{"role": "user", "content": raw}]
    elif isinstance(inputs, list):
        raw = inputs[0] if inputs and isinstance(inputs[0], list) else inputs  # LangChain
    if not isinstance(raw, list):
        return None
    messages = [m for m in (_message(item) for item in raw) if m is not None]
    if system:
        text = system if isinstance(system, str) else _text_of(system)
        messages.insert(0, {"role": "system", "content": text})
    return messages or None


def _outputs(outputs: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """(response text, tool calls) of an OpenAI, Anthropic, Responses or LangChain answer."""
    if isinstance(outputs, str):
        return outputs, []
    if not isinstance(outputs, dict):
        return None, []
    if isinstance(outputs.get("choices"), list) and outputs["choices"]:  # OpenAI chat
        first = outputs["choices"][0] if isinstance(outputs["choices"][0], dict) else {}
        message = first.get("message") or {}
        calls = [c for c in (_tool_call(c) for c in message.get("tool_calls") or []) if c]
        return _text_of(message.get("content")) or first.get("text"), calls
    if isinstance(outputs.get("content"), list):  # Anthropic
        blocks = outputs["content"]
        return _text_of(blocks), [c for c in (_tool_call(b) for b in blocks) if c]
    if isinstance(outputs.get("output"), list):  # OpenAI Responses
        texts, calls = [], []
        for item in outputs["output"]:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                texts.append(_text_of(item.get("content")) or "")
            elif item.get("type") == "function_call":
                calls.append({"id": item.get("call_id"), "name": item.get("name"),
                              "arguments": item.get("arguments")})  # fmt: skip
        return ("".join(texts) if texts else None), calls
    generations = outputs.get("generations")  # LangChain LLMResult
    if isinstance(generations, list) and generations and isinstance(generations[0], list):
        first = generations[0][0] if generations[0] else {}
        message = first.get("message") or {}
        if isinstance(message, dict) and isinstance(message.get("kwargs"), dict):
            message = message["kwargs"]  # langchain's dumpd() shape
        calls = [c for c in (_tool_call(c) for c in message.get("tool_calls") or []) if c]
        return _text_of(message.get("content")) or first.get("text"), calls
    return None, []


def _tool_names(attrs: Attrs, inputs: Any) -> list[str] | None:
    tools = decoded(attrs, "mlflow.chat.tools")
    if not isinstance(tools, list) and isinstance(inputs, dict):
        tools = inputs.get("tools")
    if not isinstance(tools, list):
        return None
    names = []
    for tool in tools:
        if isinstance(tool, dict):
            function: dict[str, Any] = (
                tool["function"] if isinstance(tool.get("function"), dict) else tool
            )
            if isinstance(function.get("name"), str):
                names.append(function["name"])
    return names or None


def _usage(attrs: Attrs) -> tuple[int | None, int | None]:
    usage = decoded(attrs, "mlflow.chat.tokenUsage")
    if not isinstance(usage, dict):
        return None, None
    used, made = usage.get("input_tokens"), usage.get("output_tokens")
    valid = [v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
             for v in (used, made)]  # fmt: skip
    return valid[0], valid[1]


def _short(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


class MLflowTracing:
    """MLflow's ``mlflow.*`` span attributes (MLflow Tracing and autolog)."""

    name = "mlflow"

    def verdict(self, attrs: Attrs) -> bool | None:
        kind = decoded(attrs, "mlflow.spanType")
        if kind is None:
            return None
        return str(kind).upper() in LLM_SPAN_TYPES

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        if "mlflow.spanType" not in attrs:
            return {}
        inputs = decoded(attrs, "mlflow.spanInputs")
        response, calls = _outputs(decoded(attrs, "mlflow.spanOutputs"))
        used, made = _usage(attrs)
        model = _short(decoded(attrs, "mlflow.llm.model"))
        if model is None and isinstance(inputs, dict):
            model = _short(inputs.get("model"))
        template = None
        linked = decoded(attrs, "mlflow.linkedPrompts")
        if isinstance(linked, list) and linked and isinstance(linked[0], dict):
            name = _short(linked[0].get("name"))
            if name:
                template = {"name": name, "version": _short(linked[0].get("version"))}
        request_id = _short(decoded(attrs, "mlflow.traceRequestId"))
        fields: dict[str, Any] = {
            "provider": _short(decoded(attrs, "mlflow.llm.provider"))
            or _short(decoded(attrs, "mlflow.message.format")),
            "model": model,
            "input_tokens": used,
            "output_tokens": made,
            "messages": _input_messages(inputs),
            "response": response,
            "template": template,
            "session_id": _short(decoded(attrs, "session.id"))
            or _short(decoded(attrs, "mlflow.trace.session")),
            "user_id": _short(decoded(attrs, "user.id"))
            or _short(decoded(attrs, "mlflow.trace.user")),
            "tags": {"mlflow.request_id": request_id} if request_id else None,
            "tool_calls": calls or None,
            "tools": _tool_names(attrs, inputs),
        }
        return fields
