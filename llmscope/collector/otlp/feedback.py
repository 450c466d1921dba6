"""Feedback carried in traces: ``gen_ai.evaluation.result`` events and OpenInference annotations.

Each becomes a :class:`~llmscope.collector.ingest.FeedbackEvent` on the record of the span it
belongs to: the span's own record, or, when that span is not an LLM call (an evaluator span),
the record of its parent span; the write path stores it. A
label such as ``pass``/``fail`` or ``correct``/``incorrect`` becomes a thumb, a numeric score is
kept as the score; the evaluation's name and label become tags, its explanation the comment.
The event time is the feedback time, which also makes a retried export store nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmscope.collector.ingest import FeedbackEvent
from llmscope.collector.otlp.attributes import Attrs, attributes_of

EVALUATION_EVENT = "gen_ai.evaluation.result"
_UP_LABELS = {
    "pass", "passed", "correct", "relevant", "good", "up", "thumbs_up", "yes", "true",
    "positive", "helpful", "factual", "accurate", "safe",
}  # fmt: skip
_DOWN_LABELS = {
    "fail", "failed", "incorrect", "not_relevant", "irrelevant", "bad", "down", "thumbs_down",
    "no", "false", "negative", "unhelpful", "hallucinated", "inaccurate", "unsafe", "toxic",
}  # fmt: skip
# OpenInference annotation lists (span scope only: trace and session scopes name no span).
_ANNOTATION_LISTS = (("annotations", "annotation"), ("evaluations", "evaluation"))


def thumb_for(label: str | None) -> str | None:
    if label is None:
        return None
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return "up" if key in _UP_LABELS else "down" if key in _DOWN_LABELS else None


def _event(
    attrs: Attrs,
    prefix: str,
    *,
    record_id: str,
    span_id: str,
    at: datetime,
    default_source: str,
) -> FeedbackEvent | None:
    name = attrs.text(f"{prefix}name")
    label = attrs.text(f"{prefix}score.label") or attrs.text(f"{prefix}label")
    score = attrs.number(f"{prefix}score.value")
    if score is None:  # OpenInference's annotation.score is the number itself
        score = attrs.number(f"{prefix}score")
    thumb = thumb_for(label)
    if thumb is None and score is None:
        return None  # nothing the analysis can count (an unknown label alone)
    kind = attrs.text(f"{prefix}annotator_kind")
    return FeedbackEvent(
        record_ref=record_id,
        span_id=span_id,
        thumb=thumb,
        score=score if score is not None else (1.0 if thumb == "up" else 0.0),
        tags=[t for t in (name, label) if t],
        comment=attrs.text(f"{prefix}explanation"),
        source=kind.lower() if kind else default_source,
        created_at=at,
    )


def _time(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos > 0 else datetime.now(UTC)


def feedback_of(span: Span, attrs: Attrs, *, record_id: str, span_id: str) -> list[FeedbackEvent]:
    """The feedback events in ``span``, addressed to ``record_id`` (found by ``span_id``)."""
    found: list[FeedbackEvent | None] = []
    for event in span.events:
        if event.name == EVALUATION_EVENT:
            found.append(
                _event(
                    attributes_of(event.attributes),
                    "gen_ai.evaluation.",
                    record_id=record_id,
                    span_id=span_id,
                    at=_time(event.time_unix_nano),
                    default_source="evaluator",
                )
            )
    span_end = _time(span.end_time_unix_nano or span.start_time_unix_nano)
    for list_name, item_name in _ANNOTATION_LISTS:
        for item in attrs.indexed(list_name, flat_only=True):
            found.append(
                _event(
                    item,
                    f"{item_name}.",
                    record_id=record_id,
                    span_id=span_id,
                    at=span_end,
                    default_source="annotation",
                )
            )
    return [f for f in found if f is not None]
