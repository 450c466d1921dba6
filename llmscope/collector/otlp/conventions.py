"""The span conventions llmscope reads, one adapter per family, each giving record fields.

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
attributes) and the record fields it found (``RecordIn`` names); :data:`ADAPTERS` is their
order of precedence. Tag keys and values are cut to their limits here, since a span's metadata
may be anything; every other field is validated as it is (``llmscope.collector.otlp.mapping``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from llmscope import limits
from llmscope.collector.otlp.attributes import Attrs, BadAttribute
from llmscope.collector.otlp.messages import (
    answer_tool_calls,
    first_text,
    genai_messages,
    openai_tool_call,
    part_texts,
    tool_names,
)
from llmscope.collector.otlp.mlflow import MLflowTracing

__all__ = ["ADAPTERS", "Adapter", "template_name_for"]

# GenAI operations that are a model call; agents, tools and embeddings are not records.
_LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
_OPENLLMETRY_LLM_TYPES = {"chat", "completion"}


def template_name_for(text: str) -> str:
    """A stable name for a template that came without one (OpenInference has no name field)."""
    return "template-" + hashlib.sha256(text.encode()).hexdigest()[:12]


class Adapter(Protocol):
    name: str

    def verdict(self, attrs: Attrs) -> bool | None:
        """True: an LLM call; False: this family says it is not one; None: not this family."""

    def fields(self, attrs: Attrs) -> dict[str, Any]:
        """The record fields this family's attributes give (``RecordIn`` names)."""


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
    return text[: limits.TAG_VALUE]


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
        messages = genai_messages(attrs, "gen_ai.input.messages", "user")
        if system is not None:
            text, _ = part_texts(system, "gen_ai.system_instructions")
            messages = [{"role": "system", "content": text}, *(messages or [])]
        output = genai_messages(attrs, "gen_ai.output.messages", "assistant")
        ttft = attrs.number("gen_ai.response.time_to_first_chunk")
        return {
            "provider": attrs.text("gen_ai.provider.name"),
            "model": _model(attrs),
            "input_tokens": attrs.integer("gen_ai.usage.input_tokens"),
            "output_tokens": attrs.integer("gen_ai.usage.output_tokens"),
            "messages": messages,
            "response": first_text(output),
            "tool_calls": answer_tool_calls(output),
            "tools": tool_names(
                attrs.structured("gen_ai.tool.definitions"), "gen_ai.tool.definitions"
            ),
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
            "response": first_text(output),
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
            "response": first_text(output) if output else self._output_value(attrs),
            "tool_calls": answer_tool_calls(output),
            "tools": self._tools(attrs),
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
            openai_tool_call(
                call.text("tool_call.id"),
                call.text("tool_call.function.name"),
                call.text("tool_call.function.arguments"),
            )
            for call in item.indexed("message.tool_calls")
        ]
        if calls:
            message["tool_calls"] = calls
        call_id = item.text("message.tool_call_id")
        if call_id is not None:
            message["tool_call_id"] = call_id
        return message

    @staticmethod
    def _tools(attrs: Attrs) -> list[str] | None:
        schemas = []
        for i, tool in enumerate(attrs.indexed("llm.tools")):
            schema = Attrs({"s": tool.raw("tool.json_schema")}).structured("s")
            if not isinstance(schema, dict):
                raise BadAttribute(f"llm.tools.{i}.tool.json_schema", "expected a JSON object")
            schemas.append(schema)
        return tool_names(schemas, "llm.tools") if schemas else None

    @staticmethod
    def _output_value(attrs: Attrs) -> str | None:
        """``output.value`` as the answer when no output message says it: the text, or the
        first choice's text of an OpenAI answer kept as JSON (never the JSON itself)."""
        value = attrs.text("output.value")
        if value is None or attrs.text("output.mime_type") != "application/json":
            return value
        try:
            answer = attrs.structured("output.value")
        except BadAttribute:
            return None
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
            content = message.get("content") if isinstance(message, dict) else None
            text = choices[0].get("text")
            return content if isinstance(content, str) else text if isinstance(text, str) else None
        return None

    @staticmethod
    def _tags(attrs: Attrs) -> dict[str, str] | None:
        tags: dict[str, str] = {}
        names = attrs.structured("tag.tags")
        if names is not None:
            if not isinstance(names, list):
                raise BadAttribute("tag.tags", "expected a list of strings")
            tags.update({str(name)[: limits.NAME]: "true" for name in names})
        for key, value in (attrs.mapping("metadata") or {}).items():
            tags[key[: limits.NAME]] = _tag_text(value)
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
            key[: limits.NAME]: _tag_text(value)
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
