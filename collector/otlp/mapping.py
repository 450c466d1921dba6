"""Spans to records: one adapter per convention family, merged into one ``RecordIn``.

The families a span may carry (several at once, e.g. OpenLLMetry sends deprecated GenAI
attributes plus ``traceloop.*``):

- ``GenAI``: the current OpenTelemetry GenAI conventions (``gen_ai.operation.name``,
  ``gen_ai.provider.name``, ``gen_ai.input.messages``, ...);
- ``GenAIDeprecated``: the older GenAI names still widely emitted (``gen_ai.system``,
  ``gen_ai.usage.prompt_tokens``, indexed ``gen_ai.prompt.{i}.*``);
- ``OpenInference``: ``openinference.span.kind``, ``llm.*``, ``session.id``, ``tag.tags``, ...;
- ``Traceloop``: OpenLLMetry's ``traceloop.prompt.*`` templates and association properties;
- ``MLflowTracing`` (``otlp/mlflow.py``): MLflow Tracing and autolog's ``mlflow.*`` attributes.

Each adapter gives a verdict (this span is an LLM call, is not one, or carries none of my
attributes) and the record fields it found; earlier adapters win where two set one field. The
span itself gives the id, timing, status, trace and span ids; the resource's ``service.name``
becomes the record's ``endpoint``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llmscope.collector.otlp.attributes import Attrs, BadAttribute, attributes_of
from llmscope.collector.otlp.mlflow import MLflowTracing
from llmscope.schema import RecordIn

# Record ids of traced calls are derived from trace and span id, so a retried export (same
# spans) yields the same ids and the store keeps one copy.
_RECORD_ID_NAMESPACE = uuid.UUID("6f1d2a0e-5b8c-4c47-9a43-0d6f2b7c8e11")
_TAG_VALUE_LIMIT = 1024
# GenAI operations that are a model call; agents, tools and embeddings are not records.
_LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
_OPENLLMETRY_LLM_TYPES = {"chat", "completion"}


def record_id_for(trace_id: str, span_id: str) -> str:
    """The record id of the span ``span_id`` of trace ``trace_id`` (both lowercase hex)."""
    return str(uuid.uuid5(_RECORD_ID_NAMESPACE, f"{trace_id}:{span_id}"))


def template_name_for(text: str) -> str:
    """A stable name for a template that came without one (OpenInference has no name field)."""
    return "template-" + hashlib.sha256(text.encode()).hexdigest()[:12]


class Adapter(Protocol):
    name: str

    def verdict(self, attrs: Attrs) -> bool | None:
        """True: an LLM call; False: this family says it is not one; None: not this family."""

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        """The record fields this family's attributes give (``RecordIn`` names)."""


# --- message shapes --------------------------------------------------------------------------


def _part_texts(parts: Any, key: str) -> tuple[str | None, list[dict[str, Any]]]:
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
        text, others = _part_texts(raw["parts"], key)
        message["content"] = text
        if others:
            message["parts"] = others
    elif isinstance(raw.get("content"), str):  # the older {role, content} shape
        message["content"] = raw["content"]
    return message


def _genai_messages(attrs: Attrs, key: str, default_role: str) -> list[dict[str, Any]] | None:
    value = attrs.structured(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadAttribute(key, f"expected a list of messages, got {type(value).__name__}")
    return [_genai_message(m, key, default_role) for m in value]


def _first_text(messages: list[dict[str, Any]] | None) -> str | None:
    for message in messages or []:
        if isinstance(message.get("content"), str):
            return str(message["content"])
    return None


def _model(attrs: Attrs) -> str | None:
    # The requested model groups calls the way the app chose them; the response model (a
    # dated snapshot) is the fallback when the request did not say.
    return attrs.text("gen_ai.request.model") or attrs.text("gen_ai.response.model")


def _template(name: str | None, version: str | None, text: str | None, variables: Any) -> Any:
    if name is None and text is None:
        return None
    return {
        "name": name or template_name_for(text or ""),
        "version": version,
        "text": text,
        "variables": variables or None,
    }


def _tag_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:_TAG_VALUE_LIMIT]


# --- the adapters ----------------------------------------------------------------------------


class GenAI:
    """The current OpenTelemetry GenAI semantic conventions."""

    name = "gen_ai"
    markers = (
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.request.model",
    )

    def verdict(self, attrs: Attrs) -> bool | None:
        operation = attrs.text("gen_ai.operation.name")
        if operation is not None:
            return operation.lower() in _LLM_OPERATIONS
        return True if attrs.has_any(*self.markers) else None

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        system = attrs.structured("gen_ai.system_instructions")
        messages = _genai_messages(attrs, "gen_ai.input.messages", "user")
        if system is not None:
            text, _ = _part_texts(system, "gen_ai.system_instructions")
            messages = [{"role": "system", "content": text}, *(messages or [])]
        output = _genai_messages(attrs, "gen_ai.output.messages", "assistant")
        ttft = attrs.number("gen_ai.response.time_to_first_chunk")
        return {
            "provider": attrs.text("gen_ai.provider.name"),
            "model": _model(attrs),
            "input_tokens": attrs.integer("gen_ai.usage.input_tokens"),
            "output_tokens": attrs.integer("gen_ai.usage.output_tokens"),
            "messages": messages,
            "response": _first_text(output),
            "template": _template(
                attrs.text("gen_ai.prompt.name"),
                attrs.text("gen_ai.prompt.version"),
                None,
                attrs.under("gen_ai.prompt.variable"),
            ),
            "session_id": attrs.text("gen_ai.conversation.id"),
            "ttft_ms": ttft * 1000.0 if ttft is not None else None,
            "error": attrs.text("error.type"),
        }


class GenAIDeprecated:
    """The older GenAI names: ``gen_ai.system``, prompt/completion tokens, indexed messages."""

    name = "gen_ai_deprecated"
    markers = (
        "gen_ai.system",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.request.type",
    )

    def verdict(self, attrs: Attrs) -> bool | None:
        request_type = attrs.text("llm.request.type")  # OpenLLMetry's operation name
        if request_type is not None:
            return request_type.lower() in _OPENLLMETRY_LLM_TYPES
        if attrs.has_any(*self.markers):
            return True
        indexed = attrs.has_prefix("gen_ai.prompt.0.") or attrs.has_prefix("gen_ai.completion.0.")
        return True if indexed else None

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        messages = [self._message(m, "gen_ai.prompt") for m in self._indexed(attrs, "prompt")]
        output = [self._message(m, "gen_ai.completion") for m in self._indexed(attrs, "completion")]
        return {
            "provider": attrs.text("gen_ai.system"),
            "model": _model(attrs),
            "input_tokens": attrs.integer("gen_ai.usage.prompt_tokens"),
            "output_tokens": attrs.integer("gen_ai.usage.completion_tokens"),
            "messages": messages or None,
            "response": _first_text(output),
        }

    @staticmethod
    def _indexed(attrs: Attrs, kind: str) -> list[Attrs]:
        return attrs.indexed(f"gen_ai.{kind}", flat_only=True)

    @staticmethod
    def _message(item: Attrs, prefix: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": item.text("role") or "user"}
        content = item.raw("content")
        if content is not None:
            message["content"] = content if isinstance(content, str) else _tag_text(content)
        return message


class OpenInference:
    """Arize OpenInference: ``openinference.span.kind``, ``llm.*``, sessions, tags, metadata."""

    name = "openinference"
    markers = ("llm.model_name", "llm.token_count.prompt", "llm.token_count.completion")

    def verdict(self, attrs: Attrs) -> bool | None:
        kind = attrs.text("openinference.span.kind")
        if kind is not None:
            return kind.upper() == "LLM"
        if attrs.has_any(*self.markers) or attrs.has_prefix("llm.input_messages"):
            return True
        return None

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        messages = [self._message(m) for m in attrs.indexed("llm.input_messages")]
        output = [self._message(m) for m in attrs.indexed("llm.output_messages")]
        prompt_tokens = attrs.integer("llm.token_count.prompt")
        completion_tokens = attrs.integer("llm.token_count.completion")
        total = attrs.integer("llm.token_count.total")
        if total is not None and prompt_tokens is None and completion_tokens is not None:
            prompt_tokens = max(total - completion_tokens, 0)
        if total is not None and completion_tokens is None and prompt_tokens is not None:
            completion_tokens = max(total - prompt_tokens, 0)
        template_text = attrs.text("llm.prompt_template.template")
        return {
            "provider": attrs.text("llm.provider") or attrs.text("llm.system"),
            "model": attrs.text("llm.model_name") or attrs.text("llm.request.model_name"),
            "input_tokens": prompt_tokens,
            "output_tokens": completion_tokens,
            "messages": messages or None,
            "prompt": None if messages else attrs.text("input.value"),
            "response": _first_text(output) or attrs.text("output.value"),
            "template": _template(
                None,
                attrs.text("llm.prompt_template.version"),
                template_text,
                attrs.mapping("llm.prompt_template.variables"),
            ),
            "session_id": attrs.text("session.id"),
            "tags": self._tags(attrs),
        }

    @staticmethod
    def _message(item: Attrs) -> dict[str, Any]:
        message: dict[str, Any] = {"role": item.text("message.role") or "user"}
        content = item.text("message.content")
        if content is None:
            texts = [
                part.text("message_content.text")
                for part in item.indexed("message.contents")
                if part.text("message_content.type") in (None, "text")
            ]
            content = "\n".join(t for t in texts if t) or None
        message["content"] = content
        calls = [
            {
                "name": call.text("tool_call.function.name"),
                "arguments": call.text("tool_call.function.arguments"),
            }
            for call in item.indexed("message.tool_calls")
        ]
        if calls:
            message["tool_calls"] = calls
        return message

    @staticmethod
    def _tags(attrs: Attrs) -> dict[str, str] | None:
        tags: dict[str, str] = {}
        names = attrs.structured("tag.tags")
        if names is not None:
            if not isinstance(names, list):
                raise BadAttribute("tag.tags", "expected a list of strings")
            tags.update({str(name)[:256]: "true" for name in names})
        for key, value in (attrs.mapping("metadata") or {}).items():
            tags[key[:256]] = _tag_text(value)
        return tags or None


class Traceloop:
    """OpenLLMetry's ``traceloop.*``: prompt templates, association properties, span kinds."""

    name = "traceloop"
    _ASSOCIATION = "traceloop.association.properties"

    def verdict(self, attrs: Attrs) -> bool | None:
        # Workflow, task, agent and tool spans of the Traceloop SDK wrap LLM calls; not calls.
        return False if attrs.text("traceloop.span.kind") is not None else None

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        properties = attrs.under(self._ASSOCIATION)
        association = Attrs(properties)
        tags = {
            key[:256]: _tag_text(value)
            for key, value in properties.items()
            if key not in {"user_id", "session_id"}
        }
        return {
            "template": _template(
                attrs.text("traceloop.prompt.key"),
                attrs.text("traceloop.prompt.version"),
                attrs.text("traceloop.prompt.template"),
                attrs.mapping("traceloop.prompt.template_variables"),
            ),
            "user_id": association.text("user_id"),
            "session_id": association.text("session_id"),
            "tags": tags or None,
        }


# MLflow first: its values are JSON text, which another family reading ``session.id`` or
# ``user.id`` would keep quoted; on spans without ``mlflow.*`` attributes it gives nothing.
ADAPTERS: tuple[Adapter, ...] = (
    MLflowTracing(),
    GenAI(),
    GenAIDeprecated(),
    OpenInference(),
    Traceloop(),
)


# --- a span to a record ----------------------------------------------------------------------


@dataclass(frozen=True)
class SpanIds:
    trace_id: str
    span_id: str
    parent_span_id: str | None


def span_ids(span: Span) -> SpanIds:
    return SpanIds(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
    )


def is_llm_call(attrs: Attrs) -> bool:
    """An LLM call: some family says so and none says it is something else (agent, tool...)."""
    verdicts = [adapter.verdict(attrs) for adapter in ADAPTERS]
    return True in verdicts and False not in verdicts


def _merged_fields(attrs: Attrs) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for adapter in ADAPTERS:
        for key, value in adapter.fields(attrs).items():
            if key == "tags":
                tags = {**(value or {}), **tags}
            elif value is not None and merged.get(key) is None:
                merged[key] = value
    if tags:
        merged["tags"] = tags
    return merged


def _time(nanos: int) -> datetime | None:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos > 0 else None


def _error_text(span: Span, attrs: Attrs, fields: dict[str, Any]) -> str | None:
    if span.status.message:
        return span.status.message
    for event in span.events:
        if event.name == "exception":
            message = attributes_of(event.attributes).text("exception.message")
            if message:
                return message
    return fields.get("error") or attrs.text("error.type") or "error"


def span_record(span: Span, attrs: Attrs, service_name: str | None) -> RecordIn | None:
    """The record of ``span``, or None when it is not an LLM call.

    Raises ``BadAttribute`` or pydantic's ``ValidationError`` for a span whose attributes do
    not fit their convention; the caller rejects that span alone.
    """
    if not is_llm_call(attrs):
        return None
    ids = span_ids(span)
    if len(ids.trace_id) != 32 or len(ids.span_id) != 16:
        raise BadAttribute("span", "a span needs a 16-byte trace id and an 8-byte span id")
    fields = _merged_fields(attrs)
    failed = span.status.code == Status.STATUS_CODE_ERROR
    fields["error"] = _error_text(span, attrs, fields) if failed else None
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    latency = (end - start) / 1e6 if start > 0 and end >= start else None
    user_id = fields.pop("user_id", None) or attrs.text("user.id") or attrs.text("enduser.id")
    return RecordIn.model_validate(
        {
            **fields,
            "id": record_id_for(ids.trace_id, ids.span_id),
            "timestamp": _time(start),
            "endpoint": service_name,
            "latency_ms": latency,
            "status": "error" if failed else "ok",
            "user_id": user_id,
            "trace_id": ids.trace_id,
            "span_id": ids.span_id,
        }
    )
