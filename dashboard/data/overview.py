"""Reads for the overview: the store at a glance, traffic over time and by group, alerts, runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, or_, select

from llmscope.dashboard.data.common import (
    GROUP_COLUMNS,
    TEMPLATE_KEY,
    THUMB,
    Filters,
    parse_bucket,
    percentile_columns,
    time_bucket,
    with_feedback,
)
from llmscope.db.models import Alert, AnalysisRun, Record


@dataclass(frozen=True)
class StoreStatus:
    records: int
    first: datetime | None
    last: datetime | None
    runs: int


def store_status(engine: Engine) -> StoreStatus:
    """How many records and runs the store holds, and the time span of the records."""
    with engine.connect() as conn:
        count, first, last = conn.execute(
            select(func.count(), func.min(Record.timestamp), func.max(Record.timestamp)).where(
                Record.internal.is_(False)
            )
        ).one()
        runs = conn.scalar(select(func.count()).select_from(AnalysisRun)) or 0
    return StoreStatus(int(count or 0), first, last, int(runs))


@dataclass(frozen=True)
class RunInfo:
    id: str
    created_at: datetime
    baseline_start: datetime
    baseline_end: datetime
    current_start: datetime
    current_end: datetime


def list_runs(engine: Engine, limit: int = 50) -> list[RunInfo]:
    """The newest runs first (without their reports, which can be large)."""
    cols = (
        AnalysisRun.id,
        AnalysisRun.created_at,
        AnalysisRun.baseline_start,
        AnalysisRun.baseline_end,
        AnalysisRun.current_start,
        AnalysisRun.current_end,
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols)
            .order_by(AnalysisRun.created_at.desc(), AnalysisRun.id.desc())
            .limit(limit)
        ).all()
    return [RunInfo(*row) for row in rows]


def run_report(engine: Engine, run_id: str | None) -> tuple[RunInfo, dict[str, Any]] | None:
    """The run ``run_id`` (the newest when None) and its stored report; None if there is none."""
    stmt = select(
        AnalysisRun.id,
        AnalysisRun.created_at,
        AnalysisRun.baseline_start,
        AnalysisRun.baseline_end,
        AnalysisRun.current_start,
        AnalysisRun.current_end,
        AnalysisRun.report,
    )
    if run_id:
        stmt = stmt.where(AnalysisRun.id == run_id)
    else:
        stmt = stmt.order_by(AnalysisRun.created_at.desc(), AnalysisRun.id.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return RunInfo(*row[:6]), dict(row[6] or {})


def filter_options(engine: Engine, limit: int = 200) -> dict[str, list[str]]:
    """The distinct endpoints, models and templates (``name@version``) to filter by."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, column in (("endpoint", Record.endpoint), ("model", Record.model)):
            out[name] = [
                v
                for v in conn.scalars(
                    select(column)
                    .distinct()
                    .where(column.is_not(None))
                    .order_by(column)
                    .limit(limit)
                )
            ]
        out["template"] = [
            v
            for v in conn.scalars(
                select(TEMPLATE_KEY)
                .distinct()
                .where(Record.template_name.is_not(None))
                .order_by(TEMPLATE_KEY)
                .limit(limit)
            )
        ]
    return out


def _counts(keys: list[Any], filters: Filters) -> Any:
    columns = [
        *[k.label(f"k{i}") for i, k in enumerate(keys)],
        func.count().label("calls"),
        func.sum(case((Record.status == "error", 1), else_=0)).label("errors"),
        func.sum(case((THUMB.is_not(None), 1), else_=0)).label("rated"),
        func.sum(case((THUMB == "down", 1), else_=0)).label("down"),
        func.sum(Record.input_tokens).label("input_tokens"),
        func.sum(Record.output_tokens).label("output_tokens"),
    ]
    return (
        with_feedback(select(*columns).select_from(Record))
        .where(*filters.conditions())
        .group_by(*keys)
    )


def traffic(
    engine: Engine, filters: Filters, *, unit: str, by: str | None = None, groups: int = 6
) -> list[dict[str, Any]]:
    """Per time bucket (and per group of ``by``, top ``groups`` by traffic): calls, errors,
    rated and thumbs-down counts, token sums, and latency p50/p95."""
    with engine.connect() as conn:
        bucket = time_bucket(conn.dialect.name, unit)
        keys: list[Any] = [bucket]
        group = GROUP_COLUMNS[by] if by else None
        filters_extra: list[Any] = []
        if group is not None:
            top = list(
                conn.scalars(
                    with_feedback(select(group).select_from(Record))
                    .where(*filters.conditions())
                    .group_by(group)
                    .order_by(func.count().desc(), group)
                    .limit(groups)
                )
            )
            keys.append(group)
            named = [t for t in top if t is not None]
            filters_extra.append(
                or_(group.in_(named), group.is_(None)) if None in top else group.in_(named)
            )
        counts = conn.execute(_counts(keys, filters).where(*filters_extra)).all()
        pcts = conn.execute(
            percentile_columns(
                Record.latency_ms,
                keys,
                [*filters.conditions(), *filters_extra],
                feedback=filters.feedback is not None,
            )
        ).all()
    latency = {tuple(row[: len(keys)]): (row[-2], row[-1]) for row in pcts}
    out = []
    for row in counts:
        key = tuple(row[: len(keys)])
        p50, p95 = latency.get(key, (None, None))
        out.append(
            {
                "bucket": parse_bucket(row.k0),
                "group": row.k1 if group is not None else None,
                "calls": int(row.calls),
                "errors": int(row.errors or 0),
                "rated": int(row.rated or 0),
                "down": int(row.down or 0),
                "input_tokens": int(row.input_tokens or 0),
                "output_tokens": int(row.output_tokens or 0),
                "p50": p50,
                "p95": p95,
            }
        )
    out.sort(key=lambda r: (r["bucket"], str(r["group"])))
    return out


def breakdown(
    engine: Engine, filters: Filters, *, by: str, percentiles: bool = True
) -> list[dict[str, Any]]:
    """Per group of ``by`` (endpoint|model|template), busiest first: the same figures as
    ``traffic`` over the whole time range (latency percentiles only if ``percentiles``: they
    cost a sort of every matching call)."""
    group = GROUP_COLUMNS[by]
    with engine.connect() as conn:
        counts = conn.execute(_counts([group], filters)).all()
        pcts = (
            conn.execute(
                percentile_columns(
                    Record.latency_ms,
                    [group],
                    filters.conditions(),
                    feedback=filters.feedback is not None,
                )
            ).all()
            if percentiles
            else []
        )
    latency = {row[0]: (row[1], row[2]) for row in pcts}
    out = [
        {
            "group": row.k0,
            "calls": int(row.calls),
            "errors": int(row.errors or 0),
            "rated": int(row.rated or 0),
            "down": int(row.down or 0),
            "input_tokens": int(row.input_tokens or 0),
            "output_tokens": int(row.output_tokens or 0),
            "p50": latency.get(row.k0, (None, None))[0],
            "p95": latency.get(row.k0, (None, None))[1],
        }
        for row in counts
    ]
    out.sort(key=lambda r: (-r["calls"], str(r["group"])))
    return out


def latest_alerts(engine: Engine, limit: int = 8) -> list[dict[str, Any]]:
    """The newest alerts, with how their delivery went."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Alert.id,
                Alert.run_id,
                Alert.created_at,
                Alert.kind,
                Alert.cluster_id,
                Alert.message,
                Alert.delivery_status,
            )
            .order_by(Alert.created_at.desc(), Alert.id.desc())
            .limit(limit)
        ).all()
    return [dict(row._mapping) for row in rows]


def totals(engine: Engine, filters: Filters) -> dict[str, Any]:
    """The same figures as ``breakdown`` for all matching records together."""
    with engine.connect() as conn:
        row = conn.execute(_counts([], filters)).one()
        pct = conn.execute(
            percentile_columns(
                Record.latency_ms, [], filters.conditions(), feedback=filters.feedback is not None
            )
        ).first()
    return {
        "calls": int(row.calls or 0),
        "errors": int(row.errors or 0),
        "rated": int(row.rated or 0),
        "down": int(row.down or 0),
        "input_tokens": int(row.input_tokens or 0),
        "output_tokens": int(row.output_tokens or 0),
        "p50": pct.p50 if pct else None,
        "p95": pct.p95 if pct else None,
    }
