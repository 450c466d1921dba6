"""Reads for a cluster's evidence: its thumbs-down per template version, endpoint and model,
per day, and the tags users put on its thumbs-down answers.

Counts only, grouped by the database (each record's newest feedback event counts, as the
analysis counts it); the tests (p- and q-values) are the run report's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, case, exists, func, select

from llmscope.dashboard.data.clusters import in_cluster
from llmscope.dashboard.data.common import (
    LATEST_FEEDBACK,
    TEMPLATE_KEY,
    THUMB,
    parse_bucket,
    time_bucket,
    with_feedback,
)
from llmscope.db.models import Record, RunAssignment, StoredSpan
from llmscope.report import RouteDestinationRow, RunReport, TemplateVersionRow

DIMENSIONS = ("template", "endpoint", "model")


def _of_cluster(columns: list[Any], run_id: str, cluster_id: int, members: Any) -> Any:
    return with_feedback(
        select(*columns)
        .select_from(RunAssignment)
        .join(Record, Record.id == RunAssignment.record_id)
    ).where(RunAssignment.run_id == run_id, in_cluster(cluster_id, members))


def _counts() -> list[Any]:
    return [
        func.count().label("calls"),
        func.sum(case((THUMB.is_not(None), 1), else_=0)).label("rated"),
        func.sum(case((THUMB == "down", 1), else_=0)).label("down"),
    ]


def down_by(
    engine: Engine, run_id: str, cluster_id: int, members: Sequence[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per template version, endpoint and model of the cluster's records: calls per window and
    the thumbs-down (``down`` of ``rated``) of both windows and of each; busiest first."""
    keys = {
        "template": TEMPLATE_KEY.label("template"),
        "endpoint": Record.endpoint.label("endpoint"),
        "model": Record.model.label("model"),
    }
    stmt = _of_cluster(
        [RunAssignment.window, *keys.values(), *_counts()], run_id, cluster_id, members
    ).group_by(RunAssignment.window, *keys.values())
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for dimension in DIMENSIONS:
        groups: dict[Any, dict[str, Any]] = {}
        for r in rows:
            group = groups.setdefault(
                r._mapping[dimension],
                {"group": r._mapping[dimension]}
                | {
                    f"{w}_{f}": 0
                    for w in ("baseline", "current")
                    for f in ("calls", "rated", "down")
                },
            )
            for figure in ("calls", "rated", "down"):
                group[f"{r.window}_{figure}"] += int(r._mapping[figure] or 0)
        for group in groups.values():
            for figure in ("calls", "rated", "down"):
                group[figure] = group[f"baseline_{figure}"] + group[f"current_{figure}"]
        out[dimension] = sorted(groups.values(), key=lambda g: (-g["calls"], str(g["group"])))
    return out


def report_tests(
    report: RunReport, cluster_id: int
) -> dict[str, dict[str, TemplateVersionRow | RouteDestinationRow]]:
    """The run's tests of a thumbs-down rate for the rows of :func:`down_by`, by dimension and
    group: per template version (``name@version``, run-wide, against the version before) and
    per route destination endpoint (in this cluster, against the route's other destinations);
    only rows the run tested (a q-value)."""
    out: dict[str, dict[str, TemplateVersionRow | RouteDestinationRow]] = {
        dimension: {} for dimension in DIMENSIONS
    }
    for t in report.template_versions:
        if t.down_q_value is not None:
            out["template"][f"{t.template}@{t.version}"] = t
    for r in report.route_destinations:
        if r.cluster_id == cluster_id and r.down_q_value is not None:
            out["endpoint"][r.endpoint] = r
    return out


def down_by_day(
    engine: Engine, run_id: str, cluster_id: int, members: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per UTC day and window: the cluster's calls, rated calls and thumbs-down."""
    with engine.connect() as conn:
        day = time_bucket(conn.dialect.name, "day").label("day")
        stmt = (
            _of_cluster([day, RunAssignment.window, *_counts()], run_id, cluster_id, members)
            .group_by(day, RunAssignment.window)
            .order_by(day, RunAssignment.window)
        )
        rows = conn.execute(stmt).all()
    return [
        {
            "bucket": parse_bucket(r.day),
            "window": r.window,
            "calls": int(r.calls),
            "rated": int(r.rated or 0),
            "down": int(r.down or 0),
        }
        for r in rows
    ]


def down_tags(
    engine: Engine, run_id: str, cluster_id: int, members: Sequence[str] | None = None
) -> dict[str, Counter[str]]:
    """Per window: how many of the cluster's thumbs-down answers carry each tag (an answer
    counts once per tag, so no count exceeds the window's thumbs-down)."""
    stmt = _of_cluster(
        [RunAssignment.window, LATEST_FEEDBACK.tags], run_id, cluster_id, members
    ).where(THUMB == "down")
    out: dict[str, Counter[str]] = {"baseline": Counter(), "current": Counter()}
    with engine.connect() as conn:
        for window, tags in conn.execute(stmt):
            out.setdefault(window, Counter()).update(list(dict.fromkeys(map(str, tags or ()))))
    return out


def tool_failures(
    engine: Engine, run_id: str, cluster_id: int, members: Sequence[str] | None = None
) -> dict[str, dict[str, int]]:
    """Per window, of the cluster's traced calls: how many were followed in their trace by a
    tool step (``tools``: one starting at or after the call), and by a tool step that failed
    (``failed``). Windows where no call led to a tool are left out."""

    def after(*conditions: Any) -> Any:
        return exists().where(
            StoredSpan.trace_id == Record.trace_id,
            StoredSpan.kind == "tool",
            StoredSpan.start >= Record.timestamp,
            *conditions,
        )

    stmt = (
        select(
            RunAssignment.window,
            func.sum(case((after(), 1), else_=0)).label("tools"),
            func.sum(case((after(StoredSpan.status == "error"), 1), else_=0)).label("failed"),
        )
        .select_from(RunAssignment)
        .join(Record, Record.id == RunAssignment.record_id)
        .where(
            RunAssignment.run_id == run_id,
            in_cluster(cluster_id, members),
            Record.trace_id.is_not(None),
        )
        .group_by(RunAssignment.window)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {
        r.window: {"tools": int(r.tools or 0), "failed": int(r.failed or 0)}
        for r in rows
        if r.tools
    }
