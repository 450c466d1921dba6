"""The one feedback writer: feedback from the REST API and from traces becomes ``feedback`` rows.

A :class:`FeedbackEvent` names its record by id or by the span id of a traced call (with a span
id to fall back on, for an evaluator's span whose own record does not exist). The writer cuts
tags, source and comment to their limits, masks the comment and tags when PII redaction is on,
and appends the event to the record's history (the newest event counts). An event with its own
time (``created_at``, as traces carry it) is stored once: a retried export with the same event
adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope import limits
from llmscope.collector.ingest.redaction import redact_text
from llmscope.collector.ingest.store import find_record_id
from llmscope.db.models import Feedback, utcnow
from llmscope.schema import FeedbackIn

__all__ = ["FeedbackEvent", "write_feedback"]


@dataclass(frozen=True)
class FeedbackEvent:
    """One feedback event on the record ``record_ref`` names (a record id or a span id)."""

    record_ref: str
    thumb: str | None
    score: float | None
    tags: list[str] = field(default_factory=list)
    comment: str | None = None
    source: str = "user"
    created_at: datetime | None = None
    """When it was given; None: now. An event with a time is stored at most once."""
    span_id: str | None = None
    """Where to look when ``record_ref`` names no record (the span the feedback is about)."""

    @classmethod
    def from_input(cls, record_ref: str, body: FeedbackIn) -> FeedbackEvent:
        """The event of a ``POST .../feedback`` body: a thumb scores 1 or 0, a number is a score."""
        if isinstance(body.value, str):
            thumb, score = body.value, (1.0 if body.value == "up" else 0.0)
        else:
            thumb, score = None, float(body.value)
        return cls(record_ref, thumb, score, list(body.tags), body.comment, body.source)


def _fitted(event: FeedbackEvent, redact_pii: bool) -> tuple[list[str], str | None, str]:
    tags = [t[: limits.FEEDBACK_TAG] for t in event.tags[: limits.FEEDBACK_TAGS]]
    comment = event.comment[: limits.FEEDBACK_COMMENT] if event.comment is not None else None
    if redact_pii:
        tags = [redact_text(t) for t in tags]
        comment = redact_text(comment) if comment is not None else None
    return tags, comment, event.source[: limits.FEEDBACK_SOURCE]


def _already_stored(
    session: Session,
    record_id: str,
    at: datetime,
    source: str,
    tags: list[str],
    comment: str | None,
) -> bool:
    rows = session.scalars(
        select(Feedback).where(
            Feedback.record_id == record_id,
            Feedback.created_at == at,
            Feedback.source == source,
        )
    ).all()
    return any(list(row.tags or []) == tags and row.comment == comment for row in rows)


def write_feedback(
    session: Session, events: Sequence[FeedbackEvent], *, redact_pii: bool
) -> list[Feedback | None]:
    """Add ``events``; for each, its new row, or None (no such record, or stored before).

    Runs in the caller's transaction: the caller commits.
    """
    written: list[Feedback | None] = []
    for event in events:
        record_id = find_record_id(session, event.record_ref)
        if record_id is None and event.span_id is not None:
            record_id = find_record_id(session, event.span_id)
        tags, comment, source = _fitted(event, redact_pii)
        if record_id is None or (
            event.created_at is not None
            and _already_stored(session, record_id, event.created_at, source, tags, comment)
        ):
            written.append(None)
            continue
        row = Feedback(
            record_id=record_id,
            created_at=event.created_at or utcnow(),
            thumb=event.thumb,
            score=event.score,
            tags=tags,
            comment=comment,
            source=source,
        )
        session.add(row)
        session.flush()
        written.append(row)
    return written
