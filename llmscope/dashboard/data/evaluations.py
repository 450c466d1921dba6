"""Reads for the evaluation views: each evaluator's volume, versions and cost, its fail rate per
day, and one cluster's failing answers with the judge's justification.

Counts and sums grouped by the database; the statistics (per-cluster tests, agreement with the
users) come from the run report as they are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, case, func, select

from llmscope.dashboard.data.common import record_text, time_bucket
from llmscope.db.models import Evaluation, ExperimentItem, Record, RunAssignment

JUDGED_SAMPLE = 20_000


def evaluator_versions(engine: Engine) -> list[dict[str, Any]]:
    """Per evaluator and version: verdicts, failures, errors, pending claims, judge tokens, the
    judge model and the first and last verdict's time; newest version first per evaluator."""
    query = (
        select(
            Evaluation.evaluator,
            Evaluation.version,
            func.sum(case((Evaluation.status == "done", 1), else_=0)).label("evaluated"),
            func.sum(case((Evaluation.passed.is_(False), 1), else_=0)).label("failed"),
            func.sum(case((Evaluation.status == "error", 1), else_=0)).label("errors"),
            func.sum(case((Evaluation.status == "pending", 1), else_=0)).label("pending"),
            func.coalesce(
                func.sum(
                    func.coalesce(Evaluation.input_tokens, 0)
                    + func.coalesce(Evaluation.output_tokens, 0)
                ),
                0,
            ).label("tokens"),
            func.max(Evaluation.judge_model).label("judge_model"),
            func.min(Evaluation.created_at).label("first"),
            func.max(Evaluation.created_at).label("last"),
        )
        .group_by(Evaluation.evaluator, Evaluation.version)
        .order_by(Evaluation.evaluator, func.max(Evaluation.created_at).desc())
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        for key in ("evaluated", "failed", "errors", "pending", "tokens"):
            row[key] = int(row[key] or 0)
        row["fail_rate"] = row["failed"] / row["evaluated"] if row["evaluated"] else None
    return rows


def fail_rate_by_day(engine: Engine) -> list[dict[str, Any]]:
    """Per evaluator and UTC day of the record: verdicts and failures (every version)."""
    with engine.connect() as conn:
        bucket = time_bucket(conn.dialect.name, "day").label("bucket")
        query = (
            select(
                Evaluation.evaluator,
                bucket,
                func.count().label("evaluated"),
                func.sum(case((Evaluation.passed.is_(False), 1), else_=0)).label("failed"),
            )
            .join(Record, Record.id == Evaluation.record_id)
            .where(Evaluation.status == "done")
            .group_by(Evaluation.evaluator, bucket)
            .order_by(Evaluation.evaluator, bucket)
        )
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["failed"] = int(row["failed"] or 0)
        row["fail_rate"] = row["failed"] / row["evaluated"] if row["evaluated"] else None
    return rows


def failing_examples(
    engine: Engine, run_id: str, cluster_id: int, limit: int = 8
) -> list[dict[str, Any]]:
    """Answers of the cluster (in this run) an evaluator failed, newest first, with the
    evaluator's justification."""
    query = (
        select(
            Record.id,
            Record.prompt,
            Record.messages,
            Record.response,
            Evaluation.evaluator,
            Evaluation.score,
            Evaluation.justification,
        )
        .join(RunAssignment, RunAssignment.record_id == Record.id)
        .join(Evaluation, Evaluation.record_id == Record.id)
        .where(
            RunAssignment.run_id == run_id,
            RunAssignment.cluster_id == cluster_id,
            Evaluation.passed.is_(False),
        )
        .order_by(Record.timestamp.desc(), Record.id, Evaluation.evaluator)
        .limit(limit)
    )
    with engine.connect() as conn:
        out = []
        for row in conn.execute(query):
            item = dict(row._mapping)
            item["text"] = record_text(item.pop("prompt"), item.pop("messages"))
            out.append(item)
    return out


def experiment_judges(engine: Engine, limit: int = JUDGED_SAMPLE) -> dict[str, int]:
    """Per evaluator: how many experiment answers it judged (of the newest ``limit`` answers):
    evaluators can be configured and working in experiments while live traffic is not judged
    (``sample_rate: 0``)."""
    query = (
        select(ExperimentItem.verdicts)
        .where(ExperimentItem.verdicts.is_not(None))
        .order_by(ExperimentItem.id.desc())
        .limit(limit)
    )
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for (verdicts,) in conn.execute(query):
            for name in verdicts or {}:
                counts[str(name)] = counts.get(str(name), 0) + 1
    return counts
