"""Analysis runs as the contract's run report, read from ``analysis_runs`` (never computed here)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from llmscope.collector.api.deps import SessionDep
from llmscope.db.models import AnalysisRun

router = APIRouter(prefix="/api/v1/analysis/runs", tags=["analysis"])


@router.get("/latest")
def latest_run(session: SessionDep) -> dict[str, Any]:
    """The newest analysis run's report."""
    query = select(AnalysisRun.report).order_by(
        AnalysisRun.created_at.desc(), AnalysisRun.id.desc()
    )
    report = session.scalars(query.limit(1)).first()
    if report is None:
        raise HTTPException(404, "no analysis run yet: run `llmscope analyze`")
    return dict(report)


@router.get("/{run_id}")
def get_run(run_id: str, session: SessionDep) -> dict[str, Any]:
    """One analysis run's report, by its id."""
    report = session.scalars(select(AnalysisRun.report).where(AnalysisRun.id == run_id)).first()
    if report is None:
        raise HTTPException(404, f"no analysis run {run_id!r}")
    return dict(report)
