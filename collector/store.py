"""Writes of the collector: records (idempotent by id) and feedback events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmscope.db.models import Feedback, Record
from llmscope.schema import FeedbackIn


def insert_records(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``records``; a row whose id is already stored is skipped.

    That makes a retried batch (same client-given ids) store nothing twice, on SQLite and
    PostgreSQL alike. The caller commits.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    # Core insert on the table: the ORM's bulk path costs a third more per row for nothing here.
    table = Record.__table__
    assert isinstance(table, Table)
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported stores
        raise RuntimeError(f"unsupported database dialect: {dialect}")
    session.execute(statement, list(rows))


def find_record_id(session: Session, ref: str) -> str | None:
    """The id of the record ``ref`` names: a record id, or the span id of a traced call."""
    found = session.scalar(select(Record.id).where(Record.id == ref))
    if found is None and len(ref) == 16:
        found = session.scalar(
            select(Record.id)
            .where(Record.span_id == ref.lower())
            .order_by(Record.timestamp.desc())
            .limit(1)
        )
    return found


def add_feedback(session: Session, record_ref: str, feedback: FeedbackIn) -> Feedback | None:
    """Append a feedback event to the record ``record_ref`` names; None if there is none."""
    record_id = find_record_id(session, record_ref)
    if record_id is None:
        return None
    if isinstance(feedback.value, str):
        thumb, score = feedback.value, (1.0 if feedback.value == "up" else 0.0)
    else:
        thumb, score = None, float(feedback.value)
    event = Feedback(
        record_id=record_id,
        thumb=thumb,
        score=score,
        tags=list(feedback.tags),
        comment=feedback.comment,
        source=feedback.source,
    )
    session.add(event)
    session.flush()
    return event
