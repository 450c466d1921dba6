"""Whole conversations for ``scope: session`` judges: which sessions have gone idle, and what
the judge reads of one.

A session is the records sharing a ``session_id`` (the app's own calls, not llmscope's). It is
*idle* once its newest record arrived (``received_at``) ``idle_seconds`` ago; then it is judged
once per judge version, and the verdict is stored on its *first* record (the earliest
``timestamp``): so it is claimed, kept and counted like any record's verdict, and the analysis
tests it in the cluster of the session's first question. A turn that arrives after the verdict
does not reopen the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from llmscope.db.models import Record
from llmscope.db.record_row import RECORD_ROW
from llmscope.evaluate.evaluations.judge import last_question, transcript
from llmscope.evaluate.evaluations.store import Candidate, candidate_of

PAGE = 500
MAX_TURNS = 200  # turns of one session read for its transcript (the newest are kept)


@dataclass(frozen=True)
class IdleSession:
    session_id: str
    first: Candidate  # the session's first record: where the verdict is stored


def _own() -> ColumnElement[bool]:
    return Record.internal.is_(False)


def idle_between(session: Session, after: datetime, before: datetime) -> list[str]:
    """Sessions whose newest record arrived in ``[after, before)``: those that went idle
    between two sweeps when ``before`` is now minus the idle time."""
    recent = (
        select(Record.session_id)
        .where(_own(), Record.session_id.is_not(None), Record.received_at >= after)
        .where(Record.received_at < before)
        .distinct()
    )
    ids = [sid for sid in session.scalars(recent) if sid is not None]
    out: list[str] = []
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        out += [
            sid
            for sid in session.scalars(
                select(Record.session_id)
                .where(_own(), Record.session_id.in_(chunk))
                .group_by(Record.session_id)
                .having(func.max(Record.received_at) < before)
            )
            if sid is not None
        ]
    return sorted(out)


def idle_started(
    session: Session,
    before: datetime,
    since: datetime | None,
    until: datetime | None,
    after_id: str | None,
) -> list[str]:
    """A page of sessions (by id) whose first record's ``timestamp`` is in ``[since, until)``
    and whose newest record arrived before ``before``."""
    query = (
        select(Record.session_id)
        .where(_own(), Record.session_id.is_not(None))
        .group_by(Record.session_id)
        .having(func.max(Record.received_at) < before)
        .order_by(Record.session_id)
        .limit(PAGE)
    )
    if since is not None:
        query = query.having(func.min(Record.timestamp) >= since)
    if until is not None:
        query = query.having(func.min(Record.timestamp) < until)
    if after_id is not None:
        query = query.where(Record.session_id > after_id)
    return [sid for sid in session.scalars(query) if sid is not None]


def first_records(session: Session, session_ids: Sequence[str]) -> list[IdleSession]:
    """Each session's first record (earliest ``timestamp``, then id), in ``session_ids``'
    order."""
    firsts: dict[str, Candidate] = {}
    for start in range(0, len(session_ids), PAGE):
        chunk = list(session_ids[start : start + PAGE])
        # the turns' ids first (light), then only the first turns' whole rows
        first_id: dict[str, str] = {}
        for sid, record_id in session.execute(
            select(Record.session_id, Record.id)
            .where(_own(), Record.session_id.in_(chunk))
            .order_by(Record.session_id, Record.timestamp, Record.id)
        ):
            if sid is not None:
                first_id.setdefault(sid, record_id)
        owner = {record_id: sid for sid, record_id in first_id.items()}
        rows: Any = session.execute(select(*RECORD_ROW).where(Record.id.in_(list(owner))))
        for row in rows:
            firsts[owner[row.id]] = candidate_of(row)
    return [IdleSession(sid, firsts[sid]) for sid in session_ids if sid in firsts]


def session_transcript(session: Session, session_id: str) -> str:
    """The conversation as the judge reads it (:func:`judge.transcript`), from its newest
    ``MAX_TURNS`` turns; an error turn shows its error as the answer."""
    rows = session.execute(
        select(Record.prompt, Record.messages, Record.response, Record.status, Record.error)
        .where(_own(), Record.session_id == session_id)
        .order_by(Record.timestamp.desc(), Record.id.desc())
        .limit(MAX_TURNS)
    ).all()
    turns = [
        (
            last_question(r.prompt, r.messages),
            r.response if r.status == "ok" else f"(the call failed: {r.error or 'error'})",
        )
        for r in reversed(rows)
    ]
    return transcript(turns)
