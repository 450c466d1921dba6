"""One export request to what gets written: record rows, evaluations, feedback, and the spans
left out.

Every span is judged alone: a span whose attributes break their convention is rejected (and
named in ``partial_success``) while the rest of its batch is stored; a span that is not an LLM
call is kept as a step when a convention says what it is (a tool, a retriever, an agent, a
chain: ``steps.py``); any other span (an HTTP request) is skipped, counted but not stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from llmscope import limits
from llmscope.collector.ingest import ExternalEvaluation, FeedbackEvent, RecordWriter
from llmscope.collector.otlp.attributes import BadAttribute, attributes_of
from llmscope.collector.otlp.feedback import Target, verdicts_of
from llmscope.collector.otlp.mapping import record_id_for, response_id_of, span_ids, span_record
from llmscope.collector.otlp.steps import step_row
from llmscope.schema import record_row

_ERRORS_SHOWN = 5
log = logging.getLogger("llmscope.collector.otlp")


@dataclass
class ExportBatch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[FeedbackEvent] = field(default_factory=list)
    evaluations: list[ExternalEvaluation] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)  # ``spans`` rows (steps.py)
    spans: int = 0
    skipped: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def error_message(self) -> str:
        """The ``partial_success.error_message``: the first few rejected spans and why."""
        text = "; ".join(self.errors[:_ERRORS_SHOWN])
        if len(self.errors) > _ERRORS_SHOWN:
            text += f"; and {len(self.errors) - _ERRORS_SHOWN} more"
        return text


def _validation_text(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        location = ".".join(str(part) for part in error["loc"]) or "record"
        problems.append(f"{location}: {error['msg']}")
    return ", ".join(problems)


def _service_name(request_resource: Any) -> str | None:
    try:
        name = attributes_of(request_resource.attributes).text("service.name")
    except BadAttribute:
        return None
    return name[: limits.NAME] if name else None


def map_export(request: ExportTraceServiceRequest, writer: RecordWriter) -> ExportBatch:
    """The rows (finished by ``writer``), evaluations and feedback of ``request``;
    ``source="otlp"``."""
    batch = ExportBatch()
    seen: set[str] = set()
    kept: set[tuple[str, str]] = set()
    for resource_spans in request.resource_spans:
        service = _service_name(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                batch.spans += 1
                ids = span_ids(span)
                try:
                    attrs = attributes_of(span.attributes)
                    record = span_record(span, attrs, service)
                    # Verdicts on a span that is no call belong to the call it evaluates.
                    target = ids.span_id if record else ids.parent_span_id
                    evaluations, feedback = verdicts_of(
                        span,
                        attrs,
                        Target(
                            record_id_for(ids.trace_id, target) if target else None,
                            target,
                        ),
                        own=record is not None,
                    )
                    response_id = response_id_of(attrs) if record else None
                    step = step_row(span, attrs) if record is None else None
                except BadAttribute as exc:
                    batch.rejected += 1
                    batch.errors.append(f"span {ids.span_id or '?'}: {exc}")
                    continue
                except ValidationError as exc:
                    batch.rejected += 1
                    batch.errors.append(f"span {ids.span_id or '?'}: {_validation_text(exc)}")
                    continue
                except Exception:  # e.g. JSON nested past the recursion limit: this span only
                    log.warning("otlp span %s could not be mapped", ids.span_id, exc_info=True)
                    batch.rejected += 1
                    batch.errors.append(f"span {ids.span_id or '?'}: attributes could not be read")
                    continue
                batch.feedback.extend(feedback)
                batch.evaluations.extend(evaluations)
                if record is None:
                    if step is not None and (step["trace_id"], step["span_id"]) not in kept:
                        kept.add((step["trace_id"], step["span_id"]))
                        batch.steps.append(step)
                    else:
                        batch.skipped += 1
                    continue
                parent = ids.parent_span_id if len(ids.parent_span_id or "") == 16 else None
                row = writer.finish(
                    {
                        **record_row(record, source="otlp"),
                        "response_id": response_id,
                        "parent_span_id": parent,  # how nested calls are found (nesting.py)
                    }
                )
                if row["id"] in seen:  # the same span twice in one export is one record
                    batch.skipped += 1
                    continue
                seen.add(row["id"])
                batch.rows.append(row)
    return batch
