"""Analysis runs as the contract's run report, read from ``analysis_runs`` (never computed here)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from llmscope.collector.api.deps import SessionDep
from llmscope.db.queries import LATEST, load_run_report
from llmscope.report import RunReport

router = APIRouter(prefix="/api/v1/analysis/runs", tags=["analysis"])


@router.get("/latest", response_model=RunReport)
def latest_run(session: SessionDep) -> RunReport:
    """The newest analysis run's report."""
    report = load_run_report(session, LATEST)
    if report is None:
        raise HTTPException(404, "no analysis run yet: run `llmscope analyze`")
    return report


@router.get("/{run_id}", response_model=RunReport)
def get_run(run_id: str, session: SessionDep) -> RunReport:
    """One analysis run's report, by its id."""
    report = load_run_report(session, run_id)
    if report is None:
        raise HTTPException(404, f"no analysis run {run_id!r}")
    return report
