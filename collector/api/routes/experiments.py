"""Experiments as their stored report (``llmscope experiment run`` writes them)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from llmscope.collector.api.deps import SessionDep
from llmscope.collector.experiments.export import load_report
from llmscope.experiment_report import ExperimentReport

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])


@router.get("/{experiment_id}", response_model=ExperimentReport)
def get_experiment(experiment_id: str, session: SessionDep) -> ExperimentReport:
    """One experiment's report: the baseline, each variant and its paired comparison."""
    report = load_report(session, experiment_id)
    if report is None:
        raise HTTPException(404, f"no finished experiment {experiment_id!r}")
    return report
