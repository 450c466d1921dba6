"""Reads for the record view: one whole record, its feedback history, its evaluations and its
clusters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

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
        record["clusters"] = [
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
                .limit(20)
            )
        ]
    return record


def record_trace(engine: Engine, trace_id: str) -> dict[str, Any] | None:
    """The trace ``trace_id`` as a tree (``llmscope.db.traces.trace_tree``), or None."""
    with engine.connect() as conn:
        return trace_tree(conn, trace_id)
