"""Records and their feedback: ingest, read one, list with filters, attach feedback and
evaluations computed elsewhere."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Discriminator, Field, Tag
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from llmscope.collector.api.deps import SessionDep, SettingsDep, WriterDep, encodable_body
from llmscope.collector.ingest import ExternalEvaluation, FeedbackEvent
from llmscope.db.models import Evaluation, Feedback, Record
from llmscope.db.queries import feedback_history, resolve_run_id, turn_flags
from llmscope.schema import (
    EvaluationIn,
    EvaluationOut,
    FeedbackIn,
    FeedbackOut,
    RecordBatch,
    RecordDetail,
    RecordIn,
    RecordOut,
)

router = APIRouter(prefix="/api/v1/records", tags=["records"])


def _ingest_kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "records" in value else "record"


IngestBody = Annotated[
    Annotated[RecordBatch, Tag("batch")] | Annotated[RecordIn, Tag("record")],
    Discriminator(_ingest_kind),
]


class IngestResult(BaseModel):
    ids: list[str] = Field(description="The stored ids, in the order the records were sent.")


class RecordPage(BaseModel):
    records: list[RecordOut]
    next_cursor: str | None


class FeedbackCreated(BaseModel):
    id: int
    record_id: str


@router.post(
    "", status_code=201, response_model=IngestResult, dependencies=[Depends(encodable_body)]
)
def ingest_records(
    body: IngestBody, session: SessionDep, settings: SettingsDep, writer: WriterDep
) -> IngestResult:
    """Store one record, or a batch of records all together; 201 means committed."""
    records = body.records if isinstance(body, RecordBatch) else [body]
    if len(records) > settings.max_batch_records:
        message = f"a batch holds at most {settings.max_batch_records} records"
        raise RequestValidationError(
            [{"loc": ("body", "records"), "msg": message, "type": "too_long"}]
        )
    rows = [writer.row(record, source="api") for record in records]
    stored = writer.store(session, rows)
    session.commit()
    writer.accepted(stored)
    return IngestResult(ids=[row["id"] for row in rows])


@router.get("/{record_id}", response_model=RecordDetail)
def get_record(record_id: str, session: SessionDep) -> RecordDetail:
    """One record with its feedback history, its evaluations and its latest run's turn flags."""
    out = read_record(session, record_id)
    if out is None:
        raise HTTPException(404, f"no record with id {record_id!r}")
    return out


def read_record(session: Session, record_id: str) -> RecordDetail | None:
    """The record ``record_id`` as the API shows it, with its feedback history, its
    evaluations (oldest first) and whether the latest analysis run found it rephrased or
    regenerated; None if there is no such record."""
    record = session.get(Record, record_id)
    if record is None:
        return None
    out = record_out(record, feedback_history(session, [record_id]).get(record_id, []))
    rows = session.scalars(
        select(Evaluation)
        .where(Evaluation.record_id == record_id)
        .order_by(Evaluation.created_at, Evaluation.id)
    ).all()
    out.evaluations = [EvaluationOut.model_validate(row) for row in rows]
    run_id = resolve_run_id(session)
    flags = turn_flags(session, run_id, record_id) if run_id is not None else {}
    return RecordDetail(
        **dict(out), rephrased="rephrased" in flags, regenerated="regenerated" in flags
    )


@router.get("", response_model=RecordPage)
def list_records(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    endpoint: str | None = None,
    model: str | None = None,
    template: Annotated[str | None, Query(description="NAME or NAME@VERSION")] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339, exclusive")] = None,
) -> RecordPage:
    """Records, newest first, with filters and cursor pagination."""
    query = select(Record).where(Record.merged_into.is_(None))  # one record per call
    if endpoint is not None:
        query = query.where(Record.endpoint == endpoint)
    if model is not None:
        query = query.where(Record.model == model)
    if template is not None:
        name, _, version = template.partition("@")
        query = query.where(Record.template_name == name)
        if version:
            query = query.where(Record.template_version == version)
    if since is not None:
        query = query.where(Record.timestamp >= since)
    if until is not None:
        query = query.where(Record.timestamp < until)
    if cursor is not None:
        after_ts, after_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Record.timestamp < after_ts,
                and_(Record.timestamp == after_ts, Record.id < after_id),
            )
        )
    rows = session.scalars(
        query.order_by(Record.timestamp.desc(), Record.id.desc()).limit(limit + 1)
    ).all()
    page = list(rows[:limit])
    feedback = feedback_history(session, [r.id for r in page])
    next_cursor = _encode_cursor(page[-1]) if len(rows) > limit else None
    return RecordPage(
        records=[record_out(r, feedback.get(r.id, [])) for r in page], next_cursor=next_cursor
    )


@router.post(
    "/{record_id}/feedback",
    status_code=201,
    response_model=FeedbackCreated,
    dependencies=[Depends(encodable_body)],
)
def post_feedback(
    record_id: str, body: FeedbackIn, session: SessionDep, writer: WriterDep, request: Request
) -> FeedbackCreated:
    """Attach feedback to a record (by record id or by the span id of a traced call)."""
    [event] = writer.feedback(session, [FeedbackEvent.from_input(record_id, body)])
    if event is None:
        raise HTTPException(404, f"no record with id {record_id!r}")
    endpoint = session.scalar(select(Record.endpoint).where(Record.id == event.record_id))
    session.commit()
    request.app.state.metrics.feedback(endpoint, event.thumb)
    return FeedbackCreated(id=event.id, record_id=event.record_id)


@router.post(
    "/{record_id}/evaluations",
    status_code=201,
    response_model=EvaluationOut,
    dependencies=[Depends(encodable_body)],
)
def post_evaluation(
    record_id: str, body: EvaluationIn, session: SessionDep, writer: WriterDep
) -> EvaluationOut:
    """Attach an evaluation computed elsewhere (version ``external``; replaces the evaluator's
    earlier one on this record)."""
    item = ExternalEvaluation(
        evaluator=body.evaluator,
        record_ref=record_id,
        score=body.score,
        passed=body.passed,
        label=body.label,
        justification=body.justification,
    )
    [row] = writer.evaluations(session, [item])
    if row is None:
        raise HTTPException(404, f"no record with id {record_id!r}")
    out = EvaluationOut.model_validate(row)
    session.commit()
    return out


def _encode_cursor(record: Record) -> str:
    raw = json.dumps([record.timestamp.isoformat(), record.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, record_id = json.loads(raw)
        return datetime.fromisoformat(stamp), str(record_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, "cursor: not a cursor this API gave out") from exc


def feedback_out(event: Feedback) -> FeedbackOut:
    value: str | float = event.thumb if event.thumb is not None else (event.score or 0.0)
    return FeedbackOut(
        id=event.id,
        record_id=event.record_id,
        created_at=event.created_at,
        value=value,
        tags=list(event.tags or []),
        comment=event.comment,
        source=event.source,
    )


def record_out(record: Record, events: list[Feedback]) -> RecordOut:
    history = [feedback_out(e) for e in events]
    template = None
    if record.template_name is not None:
        template = {
            "name": record.template_name,
            "version": record.template_version,
            "text": record.template_text,
            "variables": record.template_variables,
        }
    return RecordOut(
        id=record.id,
        timestamp=record.timestamp,
        received_at=record.received_at,
        source=record.source,
        endpoint=record.endpoint,
        provider=record.provider,
        model=record.model,
        prompt=record.prompt,
        messages=record.messages,
        response=record.response,
        template=template,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        latency_ms=record.latency_ms,
        ttft_ms=record.ttft_ms,
        status=record.status,
        error=record.error,
        user_id=record.user_id,
        session_id=record.session_id,
        tags=record.tags,
        trace_id=record.trace_id,
        span_id=record.span_id,
        internal=record.internal,
        cost_usd=record.cost_usd,
        tool_calls=record.tool_calls,
        tools=record.tools,
        choices=record.choices,
        route=record.route,
        response_id=record.response_id,
        parent_span_id=record.parent_span_id,
        links=record.links,
        merged_into=record.merged_into,
        feedback=history,
        latest_feedback=history[-1] if history else None,
    )
