"""Reads for the record view: one whole record, its feedback history, its evaluations and its
clusters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, select

from llmscope.db.models import AnalysisRun, Evaluation, Feedback, Record, RunAssignment
from llmscope.db.queries import FEEDBACK_OLDEST_FIRST, NEWEST_RUN_FIRST
from llmscope.db.traces import trace_tree


def record_detail(engine: Engine, record_id: str) -> dict[str, Any] | None:
    """The record ``record_id`` with ``feedback`` (oldest first; the last one counts),
    ``evaluations`` (every evaluator's verdicts, oldest first) and ``clusters`` (its cluster in
    each of the newest runs); None if there is no such record."""
    with engine.connect() as conn:
        row = conn.execute(select(Record).where(Record.id == record_id)).first()
        if row is None:
            return None
        record = {c.key: getattr(row, c.key) for c in Record.__table__.columns}
        record["feedback"] = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    Feedback.id,
                    Feedback.created_at,
                    Feedback.thumb,
                    Feedback.score,
                    Feedback.tags,
                    Feedback.comment,
                    Feedback.source,
                )
                .where(Feedback.record_id == record_id)
                .order_by(*FEEDBACK_OLDEST_FIRST)
            )
        ]
        record["evaluations"] = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    Evaluation.evaluator,
                    Evaluation.version,
                    Evaluation.status,
                    Evaluation.score,
                    Evaluation.passed,
                    Evaluation.justification,
                    Evaluation.judge_model,
                    Evaluation.input_tokens,
                    Evaluation.output_tokens,
                    Evaluation.error,
                    Evaluation.created_at,
                )
                .where(Evaluation.record_id == record_id)
                .order_by(Evaluation.created_at, Evaluation.id)
            )
        ]
        record["clusters"] = record_clusters(conn, record_id)
    return record


def record_clusters(conn: Connection, record_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The cluster (and window) of the record ``record_id`` in each of the newest ``limit``
    runs that analysed it, newest run first."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(
                RunAssignment.run_id,
                RunAssignment.cluster_id,
                RunAssignment.window,
                AnalysisRun.created_at,
            )
            .join(AnalysisRun, AnalysisRun.id == RunAssignment.run_id)
            .where(RunAssignment.record_id == record_id)
            .order_by(*NEWEST_RUN_FIRST)
            .limit(limit)
        )
    ]


def record_trace(engine: Engine, trace_id: str) -> dict[str, Any] | None:
    """The trace ``trace_id`` as a tree (``llmscope.db.traces.trace_tree``), or None."""
    with engine.connect() as conn:
        return trace_tree(conn, trace_id)
