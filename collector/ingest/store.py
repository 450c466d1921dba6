"""The store side of the write path: the records insert (idempotent by id) and record lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmscope.db.models import Record


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
