"""A conversation: every record of one session, in the order the turns were asked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from llmscope import limits
from llmscope.collector.api.deps import SessionDep
from llmscope.collector.api.routes.records import record_out
from llmscope.db.models import Record
from llmscope.db.queries import feedback_history
from llmscope.schema import RecordOut

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])


class SessionTurns(BaseModel):
    session_id: str
    records: list[RecordOut]
    truncated: bool


@router.get("/{session_id}", response_model=SessionTurns)
def get_session(
    session_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="turns returned, oldest first")] = 200,
) -> SessionTurns:
    """The session's records, oldest first (by the call's timestamp), each with its feedback;
    ``truncated`` says that more turns exist than ``limit``."""
    if len(session_id) > limits.NAME:
        raise HTTPException(400, f"session_id: at most {limits.NAME} characters")
    rows = session.scalars(
        select(Record)
        .where(Record.session_id == session_id)
        .order_by(Record.timestamp, Record.id)
        .limit(limit + 1)
    ).all()
    if not rows:
        raise HTTPException(404, f"no record has session_id {session_id!r}")
    turns = list(rows[:limit])
    feedback = feedback_history(session, [r.id for r in turns])
    return SessionTurns(
        session_id=session_id,
        records=[record_out(r, feedback.get(r.id, [])) for r in turns],
        truncated=len(rows) > limit,
    )
