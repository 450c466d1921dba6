"""Verdicts carried in traces: ``gen_ai.evaluation.result`` events and OpenInference annotations.

An evaluation event (``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``,
``.explanation``) and an OpenInference annotation or evaluation made by an LLM or by code
(``annotator_kind`` ``LLM``/``CODE``, or none) become an
:class:`~llmscope.collector.ingest.ExternalEvaluation` (version ``external``); an annotation
made by a person (``annotator_kind`` ``HUMAN``) is a user's rating and becomes a
:class:`~llmscope.collector.ingest.FeedbackEvent`, a pass/fail label becoming a thumb.

Which record they judge (:class:`Target`): the span's own record when the span is an LLM call;
otherwise the call named by ``gen_ai.response.id`` (on the event or the span), else the record
of the parent span (an evaluator span under the call it judged). A record not stored yet is
waited for (``pending_evaluations``). The event time is the verdict's time, so a retried export
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmscope.collector.ingest import ExternalEvaluation, FeedbackEvent
from llmscope.collector.ingest.evaluations import passed_for
from llmscope.collector.otlp.attributes import Attrs, attributes_of

__all__ = ["EVALUATION_EVENT", "Target", "thumb_for", "verdicts_of"]

EVALUATION_EVENT = "gen_ai.evaluation.result"
# OpenInference annotation lists (span scope only: trace and session scopes name no span).
_ANNOTATION_LISTS = (("annotations", "annotation"), ("evaluations", "evaluation"))
_RESPONSE_ID = "gen_ai.response.id"


def thumb_for(label: str | None) -> str | None:
    passed = passed_for(label)
    return None if passed is None else "up" if passed else "down"


@dataclass(frozen=True)
class Target:
    """The record a span's verdicts judge: by record id and span id, or by response id."""

    record_id: str | None
    span_id: str | None
    response_id: str | None = None

    def with_response(self, response_id: str | None) -> Target:
        if response_id is None or self.response_id is not None:
            return self
        return Target(None, None, response_id)


def _time(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos > 0 else datetime.now(UTC)


def _evaluation(
    attrs: Attrs, prefix: str, target: Target, at: datetime
) -> ExternalEvaluation | None:
    name = attrs.text(f"{prefix}name")
    label = attrs.text(f"{prefix}score.label") or attrs.text(f"{prefix}label")
    score = attrs.number(f"{prefix}score.value")
    if score is None:  # OpenInference's annotation.score is the number itself
        score = attrs.number(f"{prefix}score")
    if name is None or (score is None and label is None):
        return None  # nothing to key it by, or nothing it says
    return ExternalEvaluation(
        evaluator=name,
        record_ref=target.record_id,
        span_id=target.span_id,
        response_id=target.response_id,
        score=score,
        label=label,
        justification=attrs.text(f"{prefix}explanation"),
        created_at=at,
    )


def _human_feedback(
    attrs: Attrs, prefix: str, target: Target, at: datetime
) -> FeedbackEvent | None:
    if target.record_id is None:
        return None
    name = attrs.text(f"{prefix}name")
    label = attrs.text(f"{prefix}score.label") or attrs.text(f"{prefix}label")
    score = attrs.number(f"{prefix}score")
    thumb = thumb_for(label)
    if thumb is None and score is None:
        return None  # nothing the analysis can count (an unknown label alone)
    return FeedbackEvent(
        record_ref=target.record_id,
        span_id=target.span_id,
        thumb=thumb,
        score=score if score is not None else (1.0 if thumb == "up" else 0.0),
        tags=[t for t in (name, label) if t],
        comment=attrs.text(f"{prefix}explanation"),
        source="human",
        created_at=at,
    )


def verdicts_of(
    span: Span, attrs: Attrs, target: Target, *, own: bool
) -> tuple[list[ExternalEvaluation], list[FeedbackEvent]]:
    """The evaluations and the people's feedback in ``span``, addressed to ``target``.

    ``own``: the span is the call itself (its own record), so a response id does not redirect.
    """
    evaluations: list[ExternalEvaluation | None] = []
    feedback: list[FeedbackEvent | None] = []
    span_target = target if own else target.with_response(attrs.text(_RESPONSE_ID))
    for event in span.events:
        if event.name == EVALUATION_EVENT:
            event_attrs = attributes_of(event.attributes)
            aimed = (
                span_target if own else span_target.with_response(event_attrs.text(_RESPONSE_ID))
            )
            evaluations.append(
                _evaluation(event_attrs, "gen_ai.evaluation.", aimed, _time(event.time_unix_nano))
            )
    span_end = _time(span.end_time_unix_nano or span.start_time_unix_nano)
    for list_name, item_name in _ANNOTATION_LISTS:
        for item in attrs.indexed(list_name, flat_only=True):
            prefix = f"{item_name}."
            kind = (item.text(f"{prefix}annotator_kind") or "").upper()
            if kind == "HUMAN":
                feedback.append(_human_feedback(item, prefix, span_target, span_end))
            else:
                evaluations.append(_evaluation(item, prefix, span_target, span_end))
    return (
        [e for e in evaluations if e is not None and _aimed(e)],
        [f for f in feedback if f is not None],
    )


def _aimed(item: ExternalEvaluation) -> bool:
    return bool(item.record_ref or item.span_id or item.response_id)
