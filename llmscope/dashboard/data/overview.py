"""Reads for the overview: the store at a glance, the filter choices, alerts, runs (the traffic
figures are ``traffic.py``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from llmscope.dashboard.data.common import TEMPLATE_KEY
from llmscope.db.models import Alert, AnalysisRun, Record, analysable
from llmscope.db.queries import NEWEST_RUN_FIRST, pick_run
from llmscope.report import RunReport


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
                analysable()
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
        rows = conn.execute(select(*cols).order_by(*NEWEST_RUN_FIRST).limit(limit)).all()
    return [RunInfo(*row) for row in rows]


def run_report(engine: Engine, run_id: str | None) -> tuple[RunInfo, RunReport] | None:
    """The run ``run_id`` (the newest when None) and its stored report; None if there is none."""
    stmt = pick_run(
        select(
            AnalysisRun.id,
            AnalysisRun.created_at,
            AnalysisRun.baseline_start,
            AnalysisRun.baseline_end,
            AnalysisRun.current_start,
            AnalysisRun.current_end,
            AnalysisRun.report,
        ),
        run_id or None,
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return RunInfo(*row[:6]), RunReport.from_stored(row[6])


def filter_options(engine: Engine, limit: int = 200) -> dict[str, list[str]]:
    """The distinct endpoints, models and templates (``name@version``) to filter by."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, column in (("endpoint", Record.endpoint), ("model", Record.model)):
            out[name] = [
                str(v)
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
