"""Reads every part shares, so each rule is written once: which feedback counts, which run is
"the latest", where a run keeps a record's turn flags.

**The newest feedback event counts.** A record's feedback is a history (every event is kept);
its newest event, by time and then by id (``FEEDBACK_NEWEST_FIRST``), is the record's verdict:
a thumbs-down later changed to a thumbs-up is a thumbs-up. Histories are listed oldest first
(``FEEDBACK_OLDEST_FIRST``), so the last event is the one that counts. Every reader applies
the rule through this module: the analysis (``newest_feedback``), the dashboard's SQL joins
(``newest_feedback_id``), the record API and the demo.

**The latest run** is the one created last; runs created at the same moment are ordered by id
(``NEWEST_RUN_FIRST``), so "latest" names one run on every backend, every time.

**A record's turn flags** (rephrased, regenerated) are kept by the run with the record's cluster
(``run_clusters.stats["implicit"]``, each flagged record with its next turn's id); the record API
and the dashboard's record page read them with ``turn_flags``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, Subquery, func, select
from sqlalchemy.orm import Session

from llmscope.db.models import AnalysisRun, Feedback, Record, RunAssignment, RunCluster, analysable
from llmscope.report import RunReport

__all__ = [
    "FEEDBACK_NEWEST_FIRST",
    "FEEDBACK_OLDEST_FIRST",
    "LATEST",
    "NEWEST_RUN_FIRST",
    "TURN_FLAGS",
    "cluster_implicit",
    "feedback_history",
    "load_run_report",
    "newest_feedback",
    "newest_feedback_id",
    "newest_thumbs",
    "pick_run",
    "resolve_run_id",
    "turn_flags",
]

FEEDBACK_OLDEST_FIRST = (Feedback.created_at, Feedback.id)
FEEDBACK_NEWEST_FIRST = (Feedback.created_at.desc(), Feedback.id.desc())
LATEST = "latest"
NEWEST_RUN_FIRST = (AnalysisRun.created_at.desc(), AnalysisRun.id.desc())


def feedback_history(session: Session, record_ids: Collection[str]) -> dict[str, list[Feedback]]:
    """Each record's feedback events, oldest first (the last one counts); records without
    feedback are left out."""
    grouped: dict[str, list[Feedback]] = {}
    if not record_ids:
        return grouped
    events = session.scalars(
        select(Feedback)
        .where(Feedback.record_id.in_(list(record_ids)))
        .order_by(*FEEDBACK_OLDEST_FIRST)
    )
    for event in events:
        grouped.setdefault(event.record_id, []).append(event)
    return grouped


def newest_feedback(*where: ColumnElement[bool]) -> Subquery:
    """Each record's newest feedback event (the ``feedback`` columns), among the events
    matching ``where``: for reads over many records at once (one ranking pass)."""
    ranked = (
        select(
            *Feedback.__table__.columns,
            func.row_number()
            .over(partition_by=Feedback.record_id, order_by=FEEDBACK_NEWEST_FIRST)
            .label("rank"),
        )
        .where(*where)
        .subquery("ranked_feedback")
    )
    columns = [ranked.c[c.key] for c in Feedback.__table__.columns]
    return select(*columns).where(ranked.c.rank == 1).subquery("newest_feedback")


def newest_feedback_id(record_id: Any, event: Any = Feedback) -> Any:
    """The id of the newest feedback event of the record ``record_id`` (a column the query
    correlates to): for joining each record of a query to the event that counts. ``event`` is
    the ``Feedback`` entity or alias the query joins, which the subquery correlates past.

    Only the few events of each record are looked at (one step down the
    ``(record_id, created_at, id)`` index), so this stays a lookup per record on any planner.
    """
    return (
        select(Feedback.id)
        .where(Feedback.record_id == record_id)
        .order_by(*FEEDBACK_NEWEST_FIRST)
        .limit(1)
        .correlate(event)
        .scalar_subquery()
    )


def newest_thumbs(session: Session, record_ids: Collection[str]) -> dict[str, bool | None]:
    """Each analysable record's newest feedback: True if a thumbs-down, False if up, None if
    the event has no thumb; records without feedback (or marked internal) are left out."""
    newest = newest_feedback(Feedback.record_id.in_(select(Record.id).where(analysable())))
    wanted = set(record_ids)
    thumbs: dict[str, bool | None] = {}
    for record_id, thumb in session.execute(select(newest.c.record_id, newest.c.thumb)):
        if record_id in wanted:
            thumbs[record_id] = None if thumb is None else thumb == "down"
    return thumbs


_S = TypeVar("_S", bound=Select[Any])


def pick_run(stmt: _S, run_id: str | None = None) -> _S:
    """``stmt`` (a select over ``analysis_runs``) narrowed to the run ``run_id``, or to the
    newest run when ``run_id`` is None or ``"latest"``."""
    if run_id is None or run_id == LATEST:
        return stmt.order_by(*NEWEST_RUN_FIRST).limit(1)
    return stmt.where(AnalysisRun.id == run_id)


def resolve_run_id(session: Session, run_id: str | None = None) -> str | None:
    """The id of the run ``run_id`` (None or ``"latest"``: the newest); None if there is none."""
    return session.scalars(pick_run(select(AnalysisRun.id), run_id)).first()


def load_run_report(session: Session, run_id: str | None = None) -> RunReport | None:
    """The stored report of the run ``run_id`` (None or ``"latest"``: the newest run), typed;
    None when there is no such run."""
    stored = session.scalars(pick_run(select(AnalysisRun.report), run_id)).first()
    return None if stored is None else RunReport.from_stored(stored)


TURN_FLAGS = ("rephrased", "regenerated")


def cluster_implicit(db: Session | Connection, run_id: str, cluster_id: int) -> dict[str, Any]:
    """What run ``run_id`` keeps of the cluster's turns (``ClusterStats.implicit``); ``{}`` for
    a cluster or run without them."""
    stats = db.scalar(
        select(RunCluster.stats).where(
            RunCluster.run_id == run_id, RunCluster.cluster_id == cluster_id
        )
    )
    return dict((stats or {}).get("implicit") or {})


def turn_flags(db: Session | Connection, run_id: str, record_id: str) -> dict[str, str]:
    """What run ``run_id`` found about the record's next turn: ``{"rephrased": next id}``,
    ``{"regenerated": next id}`` or ``{}`` (not flagged, or not in the run)."""
    cluster_id = db.scalar(
        select(RunAssignment.cluster_id).where(
            RunAssignment.run_id == run_id, RunAssignment.record_id == record_id
        )
    )
    if cluster_id is None:
        return {}
    implicit = cluster_implicit(db, run_id, int(cluster_id))
    return {
        flag: str(implicit[flag][record_id])
        for flag in TURN_FLAGS
        if record_id in implicit.get(flag, {})
    }
