"""Reads for the clusters views: the run's clusters, its 2-D map, and one cluster's records.

Per-cluster figures (drift, hotspot lift, thumbs-down rate, latency, tokens, templates, summary)
come from the run's stored report as they are; the store is only asked for which records fall
where, how many per cluster match the filters, and the points of the map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Engine,
    Label,
    Row,
    Text,
    bindparam,
    case,
    cast,
    func,
    select,
)

from llmscope.dashboard.data.common import (
    LATEST_FEEDBACK,
    THUMB,
    Filters,
    parse_bucket,
    record_text,
    snippet,
    time_bucket,
    with_feedback,
)
from llmscope.dashboard.data.findings import by_severity
from llmscope.dashboard.data.subclusters import subcluster_members
from llmscope.db.models import Record, RunAssignment
from llmscope.db.record_row import RECORD_ROW, RecordRow, record_row
from llmscope.report import ClusterEntry, RunReport

MAP_LIMIT = 20_000
SORT_KEYS: dict[str, Callable[[ClusterEntry], float]] = {
    "drift": lambda c: c.drift.score or 0.0,
    "hotspot": lambda c: c.hotspot.lift or 0.0,
    "size": lambda c: c.size,
    "down_rate": lambda c: c.feedback.down_rate or 0.0,
}


def sorted_clusters(report: RunReport, sort: str = "severity") -> list[ClusterEntry]:
    """The report's clusters most severe first (the findings' order, see ``findings.py``),
    or largest ``sort`` value first."""
    if sort == "severity":
        return by_severity(report)
    key = SORT_KEYS[sort]
    return sorted(report.clusters, key=lambda c: (-key(c), c.id))


def find_cluster(report: RunReport, cluster_id: int) -> ClusterEntry | None:
    return report.cluster(cluster_id)


def nested_clusters(report: RunReport, sort: str = "severity") -> list[tuple[ClusterEntry, int]]:
    """The clusters of the cut sorted as :func:`sorted_clusters`, each followed by its
    sub-clusters (depth first, sorted the same way), with each entry's depth (0: the cut)."""
    ordered = sorted_clusters(report, sort)
    known = {c.id for c in ordered}
    out: list[tuple[ClusterEntry, int]] = []

    def visit(entry: ClusterEntry, depth: int) -> None:
        out.append((entry, depth))
        for child in (c for c in ordered if c.parent == entry.id):
            visit(child, depth + 1)

    for top in ordered:
        if top.parent is None or top.parent not in known:  # an orphan still shows, at the top
            visit(top, 0)
    return out


def in_cluster(cluster_id: int, members: Sequence[str] | None = None) -> ColumnElement[bool]:
    """The run's records in cluster ``cluster_id``, or, given ``members`` (a sub-cluster's
    record ids, see ``subclusters.py``), in that sub-cluster: assignments hold only the cut.

    The ids are rendered into the statement, not bound one parameter each: a sub-cluster of a
    large run can hold more ids than PostgreSQL's 65,535 parameters."""
    if members is None:
        return RunAssignment.cluster_id == cluster_id
    ids: BindParameter[list[str]] = bindparam(
        "members", list(members), expanding=True, literal_execute=True
    )
    return RunAssignment.record_id.in_(ids)


def _joined(columns: list[Any], run_id: str, filters: Filters, *, feedback: bool = True) -> Any:
    """The run's assignments joined to their records (and, if ``feedback``, to each record's
    latest feedback: needed when a column or the filters read it)."""
    stmt = (
        select(*columns)
        .select_from(RunAssignment)
        .join(Record, Record.id == RunAssignment.record_id)
    )
    if feedback or filters.feedback is not None:
        stmt = with_feedback(stmt)
    return stmt.where(RunAssignment.run_id == run_id, *filters.conditions())


def cluster_counts(engine: Engine, run_id: str, filters: Filters) -> dict[int, int]:
    """How many of the run's records in each cluster (-1 = noise) match ``filters``."""
    stmt = _joined(
        [RunAssignment.cluster_id, func.count()], run_id, filters, feedback=False
    ).group_by(RunAssignment.cluster_id)
    with engine.connect() as conn:
        return {int(cid): int(n) for cid, n in conn.execute(stmt)}


def subcluster_counts(engine: Engine, run_id: str, filters: Filters) -> dict[int, int]:
    """How many of each sub-cluster's records match ``filters`` (see ``subclusters.py``)."""
    out: dict[int, int] = {}
    with engine.connect() as conn:
        for sub, ids in sorted(subcluster_members(engine, run_id).items()):
            stmt = _joined([func.count()], run_id, filters, feedback=False)
            out[sub] = int(conn.scalar(stmt.where(in_cluster(sub, ids))) or 0)
    return out


@dataclass(frozen=True)
class MapPoints:
    """The points drawn on the map; ``total`` matched, ``len(points)`` drawn (every k-th)."""

    total: int
    points: list[dict[str, Any]]
    stride: int = 1

    @property
    def sampled(self) -> bool:
        return len(self.points) < self.total


def map_points(
    engine: Engine, run_id: str, filters: Filters, *, total: int, limit: int | None = None
) -> MapPoints:
    """The run's map points matching ``filters``: all of them up to ``limit``, else every k-th
    record by id (a stable sample, so the picture does not change between reloads)."""
    placed: list[Label[Any]] = [
        RunAssignment.record_id.label("record_id"),
        RunAssignment.cluster_id.label("cluster_id"),
        RunAssignment.window.label("window"),
        RunAssignment.x.label("x"),
        RunAssignment.y.label("y"),
    ]
    stride = max(1, math.ceil(total / (limit or MAP_LIMIT)))
    # Rank and pick the sample on the narrow columns first; only the drawn points then fetch
    # their text and feedback (cutting 100,000 prompts to keep 20,000 was most of the cost).
    if stride > 1:
        rank = func.row_number().over(order_by=RunAssignment.record_id).label("rn")
        ranked = _joined([*placed, rank], run_id, filters, feedback=False).subquery("ranked")
        picked = select(*[ranked.c[c.key] for c in placed]).where((ranked.c.rn - 1) % stride == 0)
    else:
        picked = _joined(placed, run_id, filters, feedback=False)
    chosen = picked.subquery("chosen")
    stmt = with_feedback(
        select(
            *[chosen.c[c.key] for c in placed],
            THUMB.label("thumb"),
            func.substr(func.coalesce(Record.prompt, cast(Record.messages, Text)), 1, 400).label(
                "text"
            ),
        )
        .select_from(chosen)
        .join(Record, Record.id == chosen.c.record_id),
        record_id=chosen.c.record_id,
    ).order_by(chosen.c.record_id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    points = [
        {
            "record_id": r.record_id,
            "cluster_id": int(r.cluster_id),
            "window": r.window,
            "x": r.x,
            "y": r.y,
            "thumb": r.thumb,
            "text": snippet(r.text, 100),
        }
        for r in rows
    ]
    return MapPoints(total=max(total, len(points)), points=points, stride=stride)


def share_by_day(
    engine: Engine, run_id: str, cluster_id: int, members: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per day and window of the run: records analysed and how many fell in ``cluster_id``
    (in the sub-cluster of ``members``, when given)."""
    with engine.connect() as conn:
        day = time_bucket(conn.dialect.name, "day")
        rows = conn.execute(
            select(
                day.label("day"),
                RunAssignment.window,
                func.count().label("total"),
                func.sum(case((in_cluster(cluster_id, members), 1), else_=0)).label("n"),
            )
            .select_from(RunAssignment)
            .join(Record, Record.id == RunAssignment.record_id)
            .where(RunAssignment.run_id == run_id)
            .group_by(day, RunAssignment.window)
            .order_by(day)
        ).all()
    return [
        {"day": parse_bucket(r.day), "window": r.window, "total": int(r.total), "n": int(r.n)}
        for r in rows
    ]


VALUE_COLUMNS = ("latency_ms", "input_tokens", "output_tokens")


def cluster_values(
    engine: Engine,
    run_id: str,
    cluster_id: int,
    limit: int = MAP_LIMIT,
    members: Sequence[str] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Per window (``baseline``, ``current``): the cluster's (or the sub-cluster of
    ``members``') raw latencies and token counts, for distribution charts that compare the
    windows rather than pool them (at most ``limit`` calls in all, newest first)."""
    stmt = (
        select(RunAssignment.window, *[getattr(Record, c) for c in VALUE_COLUMNS])
        .select_from(RunAssignment)
        .join(Record, Record.id == RunAssignment.record_id)
        .where(RunAssignment.run_id == run_id, in_cluster(cluster_id, members))
        .order_by(Record.timestamp.desc())
        .limit(limit)
    )
    out: dict[str, dict[str, list[float]]] = {
        w: {c: [] for c in VALUE_COLUMNS} for w in ("baseline", "current")
    }
    with engine.connect() as conn:
        for window, *values in conn.execute(stmt):
            into = out.setdefault(window, {c: [] for c in VALUE_COLUMNS})
            for column, value in zip(VALUE_COLUMNS, values, strict=True):
                if value is not None:
                    into[column].append(float(value))
    return out


class ClusterRecord(RecordRow):
    """A record on a cluster page: its row, its window in the run, its latest feedback and
    what the user asked (``text``)."""

    window: str
    thumb: str | None
    comment: str | None
    feedback_tags: list[str] | None
    text: str


_RECORD_COLUMNS = [
    *RECORD_ROW,
    RunAssignment.window,
    THUMB.label("thumb"),
    LATEST_FEEDBACK.comment.label("comment"),
    LATEST_FEEDBACK.tags.label("feedback_tags"),
]


def _record_dict(row: Row[Any]) -> ClusterRecord:
    found = row._mapping
    record = record_row(found)
    return ClusterRecord(
        **record,
        window=found["window"],
        thumb=found["thumb"],
        comment=found["comment"],
        feedback_tags=found["feedback_tags"],
        text=record_text(record["prompt"], record["messages"]),
    )


def cluster_records(
    engine: Engine,
    run_id: str,
    cluster_id: int,
    filters: Filters,
    *,
    first: list[str] | None = None,
    limit: int = 12,
    members: Sequence[str] | None = None,
    down_first: bool = False,
) -> list[ClusterRecord]:
    """Records of the cluster (or the sub-cluster of ``members``) matching ``filters``: with
    ``down_first`` its thumbs-down answers (current window first, newest first), then those in
    ``first`` (the report's examples) in that order, then the newest others, ``limit`` in all."""
    base = _joined(_RECORD_COLUMNS, run_id, filters).where(in_cluster(cluster_id, members))
    chosen: dict[str, Any] = {}
    with engine.connect() as conn:
        if down_first:
            downs = base.where(THUMB == "down").order_by(
                RunAssignment.window.desc(), Record.timestamp.desc(), Record.id
            )
            chosen = {r.id: r for r in conn.execute(downs.limit(limit))}
        wanted = [i for i in (first or []) if i not in chosen][: limit - len(chosen)]
        if wanted:
            found = {r.id: r for r in conn.execute(base.where(Record.id.in_(wanted)))}
            chosen |= {i: found[i] for i in wanted if i in found}
        rest = conn.execute(
            base.where(Record.id.not_in(list(chosen)) if chosen else Record.id.is_not(None))
            .order_by(Record.timestamp.desc(), Record.id)
            .limit(limit - len(chosen))
        ).all()
    return [_record_dict(r) for r in [*chosen.values(), *rest]]


EXPORT_COLUMNS = (
    "record_id",
    "timestamp",
    "window",
    "cluster_id",
    "endpoint",
    "model",
    "template",
    "prompt",
    "response",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "status",
    "feedback",
    "feedback_comment",
)


def export_rows(
    engine: Engine, run_id: str, cluster_id: int, members: Sequence[str] | None = None
) -> Iterator[list[Any]]:
    """Every record of the cluster (or the sub-cluster of ``members``), oldest first, as rows
    of ``EXPORT_COLUMNS`` (streamed)."""
    stmt = (
        _joined(_RECORD_COLUMNS, run_id, Filters())
        .where(in_cluster(cluster_id, members))
        .order_by(Record.timestamp, Record.id)
    )
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=1000).execute(stmt)
        for r in result:
            template = f"{r.template_name}@{r.template_version or '-'}" if r.template_name else ""
            yield [
                r.id,
                r.timestamp.isoformat(),
                r.window,
                cluster_id,
                r.endpoint or "",
                r.model or "",
                template,
                record_text(r.prompt, r.messages),
                r.response or "",
                r.input_tokens,
                r.output_tokens,
                r.latency_ms,
                r.status,
                r.thumb or "",
                r.comment or "",
            ]
