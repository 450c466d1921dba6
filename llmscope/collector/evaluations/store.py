"""The ``evaluations`` rows: claims before judging, verdicts after, and what is still to do.

Nothing is judged twice, whoever judges (``serve``'s online judge, ``llmscope evaluate``,
several processes at once): a judge first *claims* a (record, evaluator, version) by inserting a
``pending`` row, which the unique constraint lets only one process do, then writes the verdict
into it. A claim carries a lease (``claimed_until``); a process that dies mid-judgement leaves a
pending row whose lease runs out, and the next judge takes it over. A judge that cannot be
reached gives its claim back (the row is deleted), so the record is pending again.

All functions take a session and leave committing to the caller, except where a name says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmscope.db.models import Evaluation, Record

LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class Candidate:
    """What evaluators need of a record (loaded once, judged by several evaluators)."""

    id: str
    endpoint: str | None
    model: str | None
    template_name: str | None
    template_version: str | None
    prompt: str | None
    messages: list[dict[str, Any]] | None
    response: str | None
    latency_ms: float | None
    timestamp: datetime
    received_at: datetime


CANDIDATE_COLUMNS = (
    Record.id,
    Record.endpoint,
    Record.model,
    Record.template_name,
    Record.template_version,
    Record.prompt,
    Record.messages,
    Record.response,
    Record.latency_ms,
    Record.timestamp,
    Record.received_at,
)


def candidate_of(row: Any) -> Candidate:
    return Candidate(*row)


def eligible() -> Any:
    """Records any evaluator may look at: the app's own successful calls."""
    return and_(Record.internal.is_(False), Record.status == "ok")


def _insert(session: Session) -> Any:
    table = Evaluation.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def settled(
    session: Session, evaluator: str, version: str, record_ids: Sequence[str], now: datetime
) -> set[str]:
    """Of ``record_ids``, those with a verdict or a live claim for this evaluator version."""
    if not record_ids:
        return set()
    rows = session.execute(
        select(Evaluation.record_id, Evaluation.status, Evaluation.claimed_until).where(
            Evaluation.evaluator == evaluator,
            Evaluation.version == version,
            Evaluation.record_id.in_(list(record_ids)),
        )
    ).all()
    return {
        r.record_id
        for r in rows
        if r.status != "pending" or (r.claimed_until is not None and r.claimed_until > now)
    }


def store_verdicts(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert finished verdicts (built-in checks); a row already there is left alone."""
    rows = list(rows)
    if not rows:
        return 0
    statement = _insert(session).on_conflict_do_nothing(
        index_elements=["record_id", "evaluator", "version"]
    )
    result: Any = session.execute(statement, rows)
    return int(result.rowcount or 0)


def claim(
    session: Session,
    record_id: str,
    evaluator: str,
    version: str,
    now: datetime,
    lease: timedelta = LEASE,
) -> int | None:
    """Claim one (record, evaluator, version) for judging; the row id, or None if taken."""
    statement = (
        _insert(session)
        .values(
            record_id=record_id,
            evaluator=evaluator,
            version=version,
            status="pending",
            created_at=now,
            claimed_until=now + lease,
        )
        .on_conflict_do_nothing(index_elements=["record_id", "evaluator", "version"])
        .returning(Evaluation.id)
    )
    inserted = session.execute(statement).scalar()
    if inserted is not None:
        return int(inserted)
    # Taken: by a live judge, a verdict, or a claim whose holder died (lease over).
    taken_over = session.execute(
        update(Evaluation)
        .where(
            Evaluation.record_id == record_id,
            Evaluation.evaluator == evaluator,
            Evaluation.version == version,
            Evaluation.status == "pending",
            Evaluation.claimed_until < now,
        )
        .values(claimed_until=now + lease, created_at=now)
        .returning(Evaluation.id)
    ).scalar()
    return None if taken_over is None else int(taken_over)


def finish(session: Session, row_id: int, now: datetime, **values: Any) -> None:
    """Write a verdict (``status`` done or error) into a claimed row."""
    session.execute(
        update(Evaluation)
        .where(Evaluation.id == row_id)
        .values(created_at=now, claimed_until=None, **values)
    )


def release(session: Session, row_id: int) -> None:
    """Give a claim back: the record is pending again for this evaluator version."""
    session.execute(
        delete(Evaluation).where(Evaluation.id == row_id, Evaluation.status == "pending")
    )


def tokens_since(session: Session, since: datetime) -> int:
    """Judge tokens (prompt + answer) spent on verdicts written since ``since``."""
    total = session.scalar(
        select(
            func.coalesce(
                func.sum(
                    func.coalesce(Evaluation.input_tokens, 0)
                    + func.coalesce(Evaluation.output_tokens, 0)
                ),
                0,
            )
        ).where(Evaluation.created_at >= since)
    )
    return int(total or 0)


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: the token budget is per UTC day."""
    now = now.astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
