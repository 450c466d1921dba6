"""The store side of the write path: the records insert (idempotent by id), the agents' steps
insert (idempotent by trace and span id) and record lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmscope.collector.ingest.redaction import redact_value
from llmscope.db.models import Record, StoredSpan


def insert_records(session: Session, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert ``rows`` into ``records``; a row whose id is already stored is skipped.

    That makes a retried batch (same client-given ids) store nothing twice, on SQLite and
    PostgreSQL alike. Returns the rows this call stored (the first of each new id, in order),
    so what is counted (metrics, budgets) counts once per record however often it is sent.
    The caller commits.
    """
    if not rows:
        return []
    # One statement for the batch needs one set of columns: a row journaled by an earlier
    # version (before a column existed) gets None for the columns it lacks.
    columns = set().union(*rows)
    if any(len(row) != len(columns) for row in rows):
        empty = dict.fromkeys(columns)
        rows = [{**empty, **row} for row in rows]
    dialect = session.get_bind().dialect.name
    # Core insert on the table: the ORM's bulk path costs a third more per row for nothing here.
    table = Record.__table__
    assert isinstance(table, Table)
    ids = table.c.id
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
        session.execute(statement, list(rows))
        # Which ids this transaction inserted: their row's inserting transaction (``xmin``) is
        # ours. Exact even when another request stores the same ids at the same moment, and
        # cheap (one indexed lookup), where ``RETURNING`` through SQLAlchemy's executemany made
        # a 1,000-row batch six times slower.
        stored = set(
            session.scalars(
                select(ids).where(
                    ids.in_({row["id"] for row in rows}),
                    text("xmin = pg_current_xact_id()::xid"),
                )
            )
        )
    elif dialect == "sqlite":
        # SQLite serialises writers, and RETURNING costs nothing measurable here.
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
        stored = set(session.scalars(statement.returning(ids), list(rows)))
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported stores
        raise RuntimeError(f"unsupported database dialect: {dialect}")
    new = []
    for row in rows:
        if row["id"] in stored:
            stored.discard(row["id"])  # a second row with the same id in the batch was skipped
            new.append(row)
    return new


def find_record_id(session: Session, ref: str) -> str | None:
    """The id of the record ``ref`` names: a record id, or the span id of a traced call.

    A record merged into another of the same call (``collector/ingest/nesting.py``) names the
    one that survived: feedback and evaluations on the call land there.
    """
    found = session.execute(select(Record.id, Record.merged_into).where(Record.id == ref)).first()
    if found is None and len(ref) == 16:
        found = session.execute(
            select(Record.id, Record.merged_into)
            .where(Record.span_id == ref.lower())
            .order_by(Record.timestamp.desc())
            .limit(1)
        ).first()
    if found is None:
        return None
    record_id, merged_into = found
    return str(merged_into or record_id)


STEP_CONTENT = ("error", "attributes")  # what a step's span holds that someone wrote


def insert_steps(session: Session, rows: Sequence[dict[str, Any]], *, redact_pii: bool) -> None:
    """Insert agents' steps (``spans`` rows); a step already stored is skipped (a retried
    export). With ``redact_pii`` the error and every string of the attributes are masked, as a
    record's content is. The caller commits."""
    if not rows:
        return
    if redact_pii:
        rows = [
            {**row, **{c: redact_value(row[c]) for c in STEP_CONTENT if row.get(c) is not None}}
            for row in rows
        ]
    table = StoredSpan.__table__
    assert isinstance(table, Table)
    keys = ["trace_id", "span_id"]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    session.execute(insert.on_conflict_do_nothing(index_elements=keys), list(rows))
