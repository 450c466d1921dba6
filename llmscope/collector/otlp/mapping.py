"""Spans to records: the adapters' fields merged into one ``RecordIn``, with the span's own facts.

Which families a span carries and what each gives is ``llmscope.collector.otlp.conventions``;
here the verdicts are combined (a call when some family says so and none says otherwise), the
fields merged (earlier adapters win where two set one field; tags are merged), and the span
itself gives the id, timing (the time to first token from OpenInference's first-token span event
when no attribute gave it), status, trace and span ids; the resource's ``service.name`` becomes
the record's ``endpoint``. The result is validated as a ``RecordIn``, like a REST record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llmscope import limits
from llmscope.collector.otlp.attributes import Attrs, BadAttribute, attributes_of
from llmscope.collector.otlp.conventions import ADAPTERS
from llmscope.schema import RecordIn

__all__ = [
    "FIRST_TOKEN_EVENT",
    "SpanIds",
    "is_llm_call",
    "record_id_for",
    "response_id_of",
    "span_error",
    "span_ids",
    "span_record",
]

# OpenInference marks the first streamed token with this span event (its time is the TTFT).
FIRST_TOKEN_EVENT = "First Token Stream Event"

# Record ids of traced calls are derived from trace and span id, so a retried export (same
# spans) yields the same ids and the store keeps one copy.
_RECORD_ID_NAMESPACE = uuid.UUID("6f1d2a0e-5b8c-4c47-9a43-0d6f2b7c8e11")


def record_id_for(trace_id: str, span_id: str) -> str:
    """The record id of the span ``span_id`` of trace ``trace_id`` (both lowercase hex)."""
    return str(uuid.uuid5(_RECORD_ID_NAMESPACE, f"{trace_id}:{span_id}"))


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


def span_error(span: Span, attrs: Attrs, fields: dict[str, Any] | None = None) -> str:
    """Why a failed span failed: its status message, else its exception event's message, else
    the convention's error field or ``error.type``, else "error"."""
    if span.status.message:
        return span.status.message
    for event in span.events:
        if event.name == "exception":
            message = attributes_of(event.attributes).text("exception.message")
            if message:
                return message
    return str((fields or {}).get("error") or attrs.text("error.type") or "error")


def _first_token_ms(span: Span) -> float | None:
    start = int(span.start_time_unix_nano)
    for event in span.events:
        at = int(event.time_unix_nano)
        if event.name == FIRST_TOKEN_EVENT and start > 0 and at >= start:
            return (at - start) / 1e6
    return None


def response_id_of(attrs: Attrs) -> str | None:
    """The provider's id of the answer: ``gen_ai.response.id``, or the ``id`` of the JSON answer
    OpenInference keeps in ``output.value``."""
    found = attrs.text("gen_ai.response.id")
    if found is None and attrs.text("output.mime_type") == "application/json":
        try:
            answer = attrs.structured("output.value")
        except BadAttribute:
            return None
        if isinstance(answer, dict) and isinstance(answer.get("id"), str):
            found = answer["id"]
    return found[: limits.NAME] if found else None


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
    fields["error"] = span_error(span, attrs, fields) if failed else None
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    latency = (end - start) / 1e6 if start > 0 and end >= start else None
    user_id = fields.pop("user_id", None) or attrs.text("user.id") or attrs.text("enduser.id")
    if fields.get("ttft_ms") is None:
        fields["ttft_ms"] = _first_token_ms(span)
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
