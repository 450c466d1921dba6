"""Retention: delete the records older than a cutoff, with everything hanging off them.

What goes, for a cutoff (``LLMSCOPE_RETENTION_DAYS`` or ``llmscope prune --older-than``):

- **records** whose ``timestamp`` is before the cutoff. A call traced at several levels is one
  record and the rows merged into it (``merged_into``, ``collector/ingest/nesting.py``): they
  go with it and stay with it, decided by the surviving record's timestamp; a merged row whose
  record is gone goes by its own timestamp (merged rows name their survivor directly, one level
  deep, as the nesting makes them);
- what names those records: their ``feedback``, ``evaluations``, ``trace_spans`` rows and their
  places in analysis runs (``run_assignments``: a run's clusters would otherwise list records
  that no longer exist);
- agent **spans** (``spans``) that started before the cutoff, whether or not their trace has a
  record, and the later spans of a trace whose every record went;
- **pending_evaluations** received before the cutoff (their record never came).

What stays: analysis runs with their reports, clusters and summaries, alerts, experiments, API
keys and the embedding cache (vectors keyed by a text's hash, no text).

Deletion runs in batches of :data:`BATCH` records, one transaction each (feedback and the rest
of a batch go in the transaction of their records), so a long prune never holds the store for
long and a prune stopped half-way leaves whole calls, never a record without its feedback or
the reverse. ``dry_run`` counts the same rows with the same conditions and changes nothing.
The same statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, or_, select, union
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from llmscope.db.models import (
    Evaluation,
    Feedback,
    PendingEvaluation,
    Record,
    RunAssignment,
    StoredSpan,
    TraceSpan,
)

__all__ = ["BATCH", "TABLES", "Pruned", "cutoff_before", "prune"]

BATCH = 1000
"""Records (with the rows merged into them) deleted per transaction."""

TABLES = (
    "records",
    "feedback",
    "evaluations",
    "trace_spans",
    "run_assignments",
    "spans",
    "pending_evaluations",
)
"""The tables a prune deletes from, in the order it reports them."""

# The tables whose rows name a record by ``record_id``: they go in the record's transaction.
_BY_RECORD: tuple[tuple[str, Any], ...] = (
    ("feedback", Feedback),
    ("evaluations", Evaluation),
    ("trace_spans", TraceSpan),
    ("run_assignments", RunAssignment),
)


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted (or, a dry run, would delete): rows per table, in :data:`TABLES`
    order."""

    cutoff: datetime
    rows: dict[str, int]
    dry_run: bool

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def cutoff_before(days: float, now: datetime | None = None) -> datetime:
    """The moment ``days`` days before ``now`` (default: the current time, UTC)."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


def _calls(cutoff: datetime) -> ColumnElement[bool]:
    """The records a prune starts from: older than the cutoff and not merged into a record
    that stays (merged into none, or into one no longer stored)."""
    survivor = aliased(Record)
    kept_apart = or_(
        Record.merged_into.is_(None),
        ~exists().where(survivor.id == Record.merged_into),
    )
    return and_(Record.timestamp < cutoff, kept_apart)


def prune(engine: Engine, cutoff: datetime, *, dry_run: bool = False, batch: int = BATCH) -> Pruned:
    """Delete (``dry_run``: count) what the retention removes at ``cutoff`` (module docstring)."""
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=UTC)
    rows = _count(engine, cutoff) if dry_run else _delete(engine, cutoff, batch)
    return Pruned(cutoff=cutoff, rows={t: rows.get(t, 0) for t in TABLES}, dry_run=dry_run)


def _count(engine: Engine, cutoff: datetime) -> dict[str, int]:
    calls = select(Record.id).where(_calls(cutoff))
    doomed = union(calls, select(Record.id).where(Record.merged_into.in_(calls))).subquery()
    ids = select(doomed.c.id)
    other = aliased(Record)
    orphaned_trace = and_(
        StoredSpan.trace_id.in_(select(Record.trace_id).where(Record.id.in_(ids))),
        ~exists().where(other.trace_id == StoredSpan.trace_id, other.id.not_in(ids)),
    )
    counts = {"records": select(func.count()).select_from(doomed)}
    for name, model in _BY_RECORD:
        counts[name] = select(func.count()).select_from(model).where(model.record_id.in_(ids))
    counts["spans"] = (
        select(func.count())
        .select_from(StoredSpan)
        .where(or_(StoredSpan.start < cutoff, orphaned_trace))
    )
    counts["pending_evaluations"] = (
        select(func.count())
        .select_from(PendingEvaluation)
        .where(PendingEvaluation.received_at < cutoff)
    )
    with engine.connect() as conn:
        return {name: int(conn.scalar(query) or 0) for name, query in counts.items()}


def _delete(engine: Engine, cutoff: datetime, batch: int) -> dict[str, int]:
    done = dict.fromkeys(TABLES, 0)
    while True:
        with engine.begin() as conn:
            calls = list(
                conn.scalars(
                    select(Record.id)
                    .where(_calls(cutoff))
                    .order_by(Record.timestamp, Record.id)
                    .limit(batch)
                )
            )
            if not calls:
                break
            merged = conn.scalars(select(Record.id).where(Record.merged_into.in_(calls)))
            ids = sorted({*calls, *merged})
            traces = list(
                conn.scalars(
                    select(Record.trace_id)
                    .where(Record.id.in_(ids), Record.trace_id.is_not(None))
                    .distinct()
                )
            )
            for name, model in _BY_RECORD:
                done[name] += conn.execute(delete(model).where(model.record_id.in_(ids))).rowcount
            done["records"] += conn.execute(delete(Record).where(Record.id.in_(ids))).rowcount
            if traces:  # a trace's later spans go with its last record
                done["spans"] += conn.execute(
                    delete(StoredSpan).where(
                        StoredSpan.trace_id.in_(traces),
                        ~exists().where(Record.trace_id == StoredSpan.trace_id),
                    )
                ).rowcount
    while True:  # spans that started before the cutoff, a batch of traces at a time
        with engine.begin() as conn:
            traces = list(
                conn.scalars(
                    select(StoredSpan.trace_id)
                    .where(StoredSpan.start < cutoff)
                    .distinct()
                    .limit(batch)
                )
            )
            if not traces:
                break
            done["spans"] += conn.execute(
                delete(StoredSpan).where(StoredSpan.trace_id.in_(traces), StoredSpan.start < cutoff)
            ).rowcount
    while True:
        with engine.begin() as conn:
            pending = list(
                conn.scalars(
                    select(PendingEvaluation.id)
                    .where(PendingEvaluation.received_at < cutoff)
                    .limit(batch)
                )
            )
            if not pending:
                break
            done["pending_evaluations"] += conn.execute(
                delete(PendingEvaluation).where(PendingEvaluation.id.in_(pending))
            ).rowcount
    return done
