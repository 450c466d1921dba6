"""Feedback carried in traces: ``gen_ai.evaluation.result`` events and OpenInference annotations.

Each becomes a ``feedback`` row on the record of the span it belongs to: the span's own record,
or, when that span is not an LLM call (an evaluator span), the record of its parent span. A
label such as ``pass``/``fail`` or ``correct``/``incorrect`` becomes a thumb, a numeric score is
kept as the score; the evaluation's name and label become tags, its explanation the comment.
The event time is the feedback time, which also makes a retried export store nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.collector.otlp.attributes import Attrs, attributes_of
from llmscope.collector.store import find_record_id
from llmscope.db.models import Feedback, Record

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


@dataclass(frozen=True)
class TraceFeedback:
    """One feedback event found in a trace, addressed to the record of ``span_id``."""

    record_id: str
    span_id: str
    thumb: str | None
    score: float | None
    tags: list[str]
    comment: str | None
    source: str
    created_at: datetime


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
) -> TraceFeedback | None:
    name = attrs.text(f"{prefix}name")
    label = attrs.text(f"{prefix}score.label") or attrs.text(f"{prefix}label")
    score = attrs.number(f"{prefix}score.value")
    if score is None:  # OpenInference's annotation.score is the number itself
        score = attrs.number(f"{prefix}score")
    thumb = thumb_for(label)
    if thumb is None and score is None:
        return None  # nothing the analysis can count (an unknown label alone)
    kind = attrs.text(f"{prefix}annotator_kind")
    return TraceFeedback(
        record_id=record_id,
        span_id=span_id,
        thumb=thumb,
        score=score if score is not None else (1.0 if thumb == "up" else 0.0),
        tags=[t[:128] for t in (name, label) if t],
        comment=attrs.text(f"{prefix}explanation"),
        source=(kind.lower() if kind else default_source)[:64],
        created_at=at,
    )


def _time(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos > 0 else datetime.now(UTC)


def feedback_of(span: Span, attrs: Attrs, *, record_id: str, span_id: str) -> list[TraceFeedback]:
    """The feedback events in ``span``, addressed to ``record_id`` (found by ``span_id``)."""
    found: list[TraceFeedback | None] = []
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


def _already_stored(session: Session, record_id: str, item: TraceFeedback) -> bool:
    rows = session.scalars(
        select(Feedback).where(
            Feedback.record_id == record_id,
            Feedback.created_at == item.created_at,
            Feedback.source == item.source,
        )
    ).all()
    return any(list(row.tags or []) == item.tags and row.comment == item.comment for row in rows)


def store_feedback(session: Session, items: list[TraceFeedback]) -> list[Feedback]:
    """Add ``items`` whose record exists (same export or stored before); returns those added."""
    stored: list[Feedback] = []
    for item in items:
        record_id = (
            item.record_id
            if session.get(Record, item.record_id) is not None
            else find_record_id(session, item.span_id)
        )
        if record_id is None or _already_stored(session, record_id, item):
            continue
        event = Feedback(
            record_id=record_id,
            created_at=item.created_at,
            thumb=item.thumb,
            score=item.score,
            tags=item.tags,
            comment=item.comment,
            source=item.source,
        )
        session.add(event)
        session.flush()
        stored.append(event)
    return stored
