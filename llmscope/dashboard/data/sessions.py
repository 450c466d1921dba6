"""Reads for the session view: a conversation's turns in order, each with what the user said of
its answer, the evaluators' verdicts and its cluster in the run being looked at; and, for a
cluster's page, the sessions the analysis kept as examples of those that ended badly in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from llmscope.dashboard.data.common import LATEST_FEEDBACK, THUMB, record_text, with_feedback
from llmscope.db.models import AnalysisRun, Evaluation, Record, RunAssignment, RunCluster
from llmscope.db.queries import pick_run

TURN_LIMIT = 500


def ended_badly(engine: Engine, run_id: str, cluster_id: int) -> list[str]:
    """Ids of a few sessions that ended badly in the cluster, newest first, as the run stored
    them (``run_clusters.stats["sessions"]["examples"]``; none in runs from before it)."""
    with engine.connect() as conn:
        stats = conn.scalar(
            select(RunCluster.stats).where(
                RunCluster.run_id == run_id, RunCluster.cluster_id == cluster_id
            )
        )
    return [str(s) for s in ((stats or {}).get("sessions") or {}).get("examples", [])]


@dataclass
class Turn:
    """One call of the session."""

    record_id: str
    timestamp: datetime
    asked: str
    response: str | None
    status: str
    endpoint: str | None
    thumb: str | None
    tags: list[str]
    comment: str | None
    cluster_id: int | None  # None: the run did not look at this record
    failed: list[str] = field(default_factory=list)  # evaluators whose newest verdict failed
    passed: list[str] = field(default_factory=list)


@dataclass
class SessionTurns:
    session_id: str
    run_id: str | None
    turns: list[Turn]
    truncated: bool


def session_turns(
    engine: Engine, session_id: str, run_id: str | None = None, limit: int = TURN_LIMIT
) -> SessionTurns | None:
    """The turns of ``session_id`` oldest first (at most ``limit``), with clusters from the run
    ``run_id`` (the newest when None); None when no record carries that session id."""
    with engine.connect() as conn:
        rows = conn.execute(
            with_feedback(
                select(
                    Record.id,
                    Record.timestamp,
                    Record.prompt,
                    Record.messages,
                    Record.response,
                    Record.status,
                    Record.endpoint,
                    THUMB,
                    LATEST_FEEDBACK.tags,
                    LATEST_FEEDBACK.comment,
                )
            )
            .where(Record.session_id == session_id)
            .order_by(Record.timestamp, Record.id)
            .limit(limit + 1)
        ).all()
        if not rows:
            return None
        kept = rows[:limit]
        ids = [r.id for r in kept]
        run = conn.execute(pick_run(select(AnalysisRun.id), run_id)).scalar()
        clusters: dict[str, int] = {}
        if run is not None:
            clusters = dict(
                conn.execute(
                    select(RunAssignment.record_id, RunAssignment.cluster_id).where(
                        RunAssignment.run_id == run, RunAssignment.record_id.in_(ids)
                    )
                ).all()
            )
        verdicts: dict[str, dict[str, bool | None]] = {}
        for record_id, evaluator, version, passed in conn.execute(
            select(
                Evaluation.record_id, Evaluation.evaluator, Evaluation.version, Evaluation.passed
            )
            .where(Evaluation.record_id.in_(ids), Evaluation.status == "done")
            .order_by(Evaluation.created_at, Evaluation.id)
        ):
            # the newest verdict of each evaluator version counts
            verdicts.setdefault(record_id, {})[f"{evaluator}@{version}"] = passed
    turns = []
    for r in kept:
        mine = verdicts.get(r.id, {})
        turns.append(
            Turn(
                record_id=r.id,
                timestamp=r.timestamp,
                asked=record_text(r.prompt, r.messages),
                response=r.response,
                status=r.status,
                endpoint=r.endpoint,
                thumb=r.thumb,
                tags=list(r.tags or []),
                comment=r.comment,
                cluster_id=clusters.get(r.id),
                failed=sorted(k for k, ok in mine.items() if ok is False),
                passed=sorted(k for k, ok in mine.items() if ok is True),
            )
        )
    return SessionTurns(session_id, run, turns, truncated=len(rows) > limit)
