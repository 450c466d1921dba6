"""An agent's steps: the spans of a trace that are not LLM calls but say what they are.

A step is a span that a convention names as a **tool** call, a **retriever**, an **agent** or
a **chain** (and a few kin: reranker, embedding, guardrail, evaluator): GenAI's
``gen_ai.operation.name`` (``execute_tool``, ``invoke_agent``, ``create_agent``),
OpenInference's ``openinference.span.kind``, MLflow's ``mlflow.spanType`` and OpenLLMetry's
``traceloop.span.kind`` (a workflow or task is a chain). Other spans (HTTP
requests, database queries) are skipped as before. A step is kept as a row of ``spans`` (trace
and span ids, parent, name, kind, start, duration, status, its error) with its attributes
bounded (:data:`MAX_ATTRIBUTES` keys, strings cut at :data:`MAX_VALUE` characters, lists at
:data:`MAX_ITEMS`); with masking on, the error and the attributes' strings are masked like a
record's content (``collector/masking.py``). Together with the trace's records they make the
trace's tree (``GET /api/v1/traces/{trace_id}``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llmscope import limits
from llmscope.collector.otlp.attributes import Attrs
from llmscope.collector.otlp.mapping import span_error, span_ids
from llmscope.collector.otlp.mlflow import decoded

__all__ = ["MAX_ATTRIBUTES", "MAX_ITEMS", "MAX_VALUE", "step_kind", "step_row"]

MAX_ATTRIBUTES = 64
MAX_VALUE = 2000
MAX_ITEMS = 20

_GENAI = {"execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent"}
# Traceloop's OpenLLMetry: ``traceloop.span.kind``
_TRACELOOP = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
_NAMED = {
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "AGENT": "agent",
    "CHAIN": "chain",
    "RERANKER": "reranker",
    "EMBEDDING": "embedding",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}


def _mlflow_type(attrs: Attrs) -> str | None:
    value = decoded(attrs, "mlflow.spanType")  # MLflow JSON-encodes its attribute values
    return value.upper() if isinstance(value, str) else None


def step_kind(attrs: Attrs) -> str | None:
    """What step a span is (``tool``, ``retriever``, ``agent``, ``chain``, ...), or None."""
    operation = attrs.raw("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _GENAI:
        return _GENAI[operation]
    for value in (attrs.raw("openinference.span.kind"), _mlflow_type(attrs)):
        if isinstance(value, str) and value.upper() in _NAMED:
            return _NAMED[value.upper()]
    traceloop = attrs.raw("traceloop.span.kind")
    if isinstance(traceloop, str) and traceloop in _TRACELOOP:
        return _TRACELOOP[traceloop]
    return None


def _bounded(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + " [...]"
    if isinstance(value, list):
        return [_bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        if depth >= 3:
            return _bounded(json.dumps(value, ensure_ascii=False, default=str), depth)
        return {str(k): _bounded(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def step_row(span: Span, attrs: Attrs) -> dict[str, Any] | None:
    """The ``spans`` row of a step, or None when the span is no step (or has no usable ids or
    start time). Raises ``BadAttribute`` like a record's mapping: the caller rejects that span
    alone."""
    kind = step_kind(attrs)
    if kind is None:
        return None
    ids = span_ids(span)
    start, end = int(span.start_time_unix_nano), int(span.end_time_unix_nano)
    if len(ids.trace_id) != 32 or len(ids.span_id) != 16 or start <= 0:
        return None
    parent = ids.parent_span_id if len(ids.parent_span_id or "") == 16 else None
    failed = span.status.code == Status.STATUS_CODE_ERROR
    keys = sorted(attrs.keys())[:MAX_ATTRIBUTES]
    return {
        "trace_id": ids.trace_id,
        "span_id": ids.span_id,
        "parent_span_id": parent,
        "name": (span.name or kind)[: limits.NAME],
        "kind": kind,
        "start": datetime.fromtimestamp(start / 1e9, UTC),
        "duration_ms": (end - start) / 1e6 if end >= start else None,
        "status": "error" if failed else "ok",
        "error": span_error(span, attrs)[: limits.ERROR_TEXT] if failed else None,
        "attributes": {key: _bounded(attrs.raw(key)) for key in keys} or None,
    }
