"""Hand-made OTLP spans and export requests for the mapping and receiver tests."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(
            KeyValue(key=k, value=any_value(v)) for k, v in value.items()
        )
        return out
    raise TypeError(f"no AnyValue for {value!r}")


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def make_span(
    attributes: dict[str, Any],
    *,
    name: str = "llm call",
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    duration_ms: float = 250.0,
    error: str | None = None,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> Span:
    span = Span(
        trace_id=trace_id or os.urandom(16),
        span_id=span_id or os.urandom(8),
        parent_span_id=parent_span_id,
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=START_NS,
        end_time_unix_nano=START_NS + int(duration_ms * 1_000_000),
        attributes=key_values(attributes),
    )
    if error is not None:
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = error
    for i, (event_name, event_attributes) in enumerate(events):
        span.events.add(
            name=event_name,
            time_unix_nano=START_NS + (i + 1) * 1_000_000,
            attributes=key_values(event_attributes),
        )
    return span


def export_request(spans: list[Span], service: str = "support-bot") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": service}))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "tests"
    scope.spans.extend(spans)
    return request


def otlp_json(request: ExportTraceServiceRequest, *, extra_field: bool = True) -> bytes:
    """OTLP/JSON as the spec writes it: hex ids (protobuf JSON would use base64)."""
    document = json_format.MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        if extra_field:
            resource_spans["someFutureField"] = {"ignored": True}
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
    return json.dumps(document).encode()


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()
