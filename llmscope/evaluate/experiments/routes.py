"""Experiments: start one on a cluster (run in the background), follow it, read its report.

``POST /api/v1/experiments`` checks the request as ``llmscope experiment run`` does and answers
202 with the experiment's id and status. The candidate comes as text (``template_text``): a
``template-file`` SPEC is refused with the same 400 whatever the path, which is never read.
``GET .../{id}/status`` reports progress, and ``GET .../{id}`` the stored report once it is
finished (``llmscope experiment run`` stores the same). ``GET .../options`` lists what a
variant can name: templates, endpoints and routes that answer chat or completions, evaluators.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from llmscope.collector.api.deps import SessionDep
from llmscope.collector.gateway.config import GatewayConfig
from llmscope.evaluate.experiments.dataset import DatasetError
from llmscope.evaluate.experiments.export import load_report
from llmscope.evaluate.experiments.jobs import Busy, ExperimentJobs, plan_request, status
from llmscope.evaluate.experiments.spec import KINDS, SpecError
from llmscope.experiment_report import ExperimentReport, ExperimentRequest, ExperimentStatus

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])

NO_GATEWAY = (
    "experiments replay calls through the gateway, and this collector has none: start it with "
    "llmscope serve --config gateway.yaml"
)


def _jobs(request: Request) -> ExperimentJobs:
    jobs: ExperimentJobs | None = request.app.state.experiment_jobs
    if jobs is None:
        raise HTTPException(409, NO_GATEWAY)
    return jobs


@router.post("", status_code=202, response_model=ExperimentStatus)
async def start_experiment(body: ExperimentRequest, request: Request) -> JSONResponse:
    """Check and start an experiment on a cluster's records; 202 with its id."""
    jobs = _jobs(request)
    config = jobs.gateway.config
    try:
        jobs.check_room()  # before the plan's reads
    except Busy as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None

    def checked() -> Any:
        with request.app.state.sessionmaker() as session:
            return plan_request(session, config, body)

    try:
        plan = await run_in_threadpool(checked)
    except (SpecError, DatasetError) as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        await jobs.submit(plan)
    except Busy as exc:  # others started while this one was planned
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None
    started = ExperimentStatus(
        id=plan.id,
        status="running",
        cluster_id=plan.cluster_id,
        run_id=plan.run_id,
        done=0,
        total=len(plan.items) * (1 + len(plan.variants)),
    )
    location = f"/api/v1/experiments/{plan.id}/status"
    return JSONResponse(started.model_dump(mode="json"), 202, headers={"Location": location})


@router.get("/options")
def experiment_options(request: Request) -> dict[str, Any]:
    """What a variant can name: templates, chat/completions endpoints and routes, evaluators."""
    jobs = _jobs(request)
    return options(jobs.gateway.config)


def options(config: GatewayConfig) -> dict[str, Any]:
    targets = [
        {"name": e.name, "kind": "endpoint", "type": e.endpoint_type}
        for e in config.endpoints
        if e.endpoint_type in KINDS
    ] + [
        {"name": r.name, "kind": "route", "type": r.task_type}
        for r in config.routes
        if r.task_type in KINDS
    ]
    return {
        "templates": [
            {"name": p.name, "version": p.version, "text": p.text} for p in config.prompts
        ],
        "endpoints": targets,
        "evaluators": [{"name": e.name, "type": e.type} for e in config.evaluators],
    }


@router.get("/{experiment_id}/status", response_model=ExperimentStatus)
def get_experiment_status(
    experiment_id: str, session: SessionDep, request: Request
) -> ExperimentStatus:
    """Where an experiment is: answers judged so far of the total, or how it ended."""
    found = status(session, experiment_id, request.app.state.settings.experiment_stale_s)
    if found is None:
        raise HTTPException(404, f"no experiment {experiment_id!r}")
    return found


@router.get("/{experiment_id}", response_model=ExperimentReport)
def get_experiment(experiment_id: str, session: SessionDep) -> ExperimentReport:
    """One experiment's report: the baseline, each variant and its paired comparison."""
    report = load_report(session, experiment_id)
    if report is None:
        raise HTTPException(404, f"no finished experiment {experiment_id!r}")
    return report
