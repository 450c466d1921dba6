"""The ``evaluations`` rows: claims before judging, verdicts after, and what is still to do.

One verdict per (record, evaluator, version), whoever judges (``serve``'s online judge,
``llmscope evaluate``, several processes at once): a judge first *claims* it by inserting a
``pending`` row, which the unique constraint lets only one process do, then writes the verdict
into it. A claim carries a short lease (``claimed_until``, ``LLMSCOPE_EVAL_CLAIM_LEASE_S``) that
its holder renews (:func:`renew`) while its judge call runs, so a live judge is never taken
over however slow its judge; a process that dies stops renewing, and once the lease has run out
the next judge takes the claim over (:func:`claim`, :func:`oldest_expired`). A judge that cannot
be reached gives its claim back (the row is deleted), so the record is pending again.

All functions take a session and leave committing to the caller, except where a name says so.
What they write passes the collector's masking rule (``masking.masked``) when the session masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmscope.collector.masking import masked
from llmscope.db.models import Evaluation, Record, analysable
from llmscope.db.record_row import RECORD_ROW, RecordRow, record_row

LEASE = timedelta(seconds=60)


# What evaluators need of a record (loaded once, judged by several evaluators).
Candidate = RecordRow
CANDIDATE_COLUMNS = RECORD_ROW


def candidate_of(row: Row[Any]) -> Candidate:
    return record_row(row._mapping)


def eligible() -> Any:
    """Records any evaluator may look at: the app's own successful calls."""
    return and_(analysable(), Record.status == "ok")


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
    rows = [masked(session, Evaluation, row) for row in rows]
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
        .values(created_at=now, claimed_until=None, **masked(session, Evaluation, values))
    )


def renew(session: Session, row_id: int, now: datetime, lease: timedelta = LEASE) -> bool:
    """Extend a claim still pending to ``now + lease``; False when it is no longer pending."""
    renewed = session.execute(
        update(Evaluation)
        .where(Evaluation.id == row_id, Evaluation.status == "pending")
        .values(claimed_until=now + lease)
        .returning(Evaluation.id)
    ).scalar()
    return renewed is not None


def oldest_expired(session: Session, since: datetime, now: datetime) -> datetime | None:
    """Arrival time of the oldest record since ``since`` whose claim ran out (its holder died);
    None when there is none."""
    return session.scalar(
        select(func.min(Record.received_at))
        .join(Evaluation, Evaluation.record_id == Record.id)
        .where(
            # a claim is younger than its record: this bound lets the created_at index serve
            Evaluation.created_at >= since,
            Evaluation.status == "pending",
            Evaluation.claimed_until < now,
            Record.received_at >= since,
        )
    )


def recorded_calls(session: Session, ids: Sequence[str]) -> dict[str, Any]:
    """The stored records of ``ids`` (judge calls): id -> the row (``status``, ``response``,
    ``input_tokens``, ``output_tokens``, ``model``)."""
    rows = session.execute(
        select(
            Record.id,
            Record.status,
            Record.response,
            Record.input_tokens,
            Record.output_tokens,
            Record.model,
        ).where(Record.id.in_(list(ids)))
    ).all()
    return {row.id: row for row in rows}


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
