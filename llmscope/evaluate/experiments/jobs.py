"""Experiments the collector runs in the background (``POST /api/v1/experiments``).

The request is checked and planned exactly as ``llmscope experiment run`` does (the same
``spec``, ``dataset`` and ``runner.plan``), so a bad request is refused before anything is
called or stored. The experiment's row is stored (``running``) before the answer, so its status
can be read at once; the replays then run as a task on the collector's event loop, through the
collector's own gateway. Progress is read from the store (answers stored so far over records x
sides), so any worker process of the collector can report it. An experiment that raises, or
that is still running when the collector stops, is marked ``failed`` with the reason; one left
``running`` by a collector that was killed is failed by :mod:`liveness` (at the next collector's
start, or when its status is read).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.gateway.config import GatewayConfig
from llmscope.collector.gateway.service import Gateway
from llmscope.config import Settings
from llmscope.db import session_scope
from llmscope.db.models import Experiment, ExperimentItem
from llmscope.evaluate.experiments import liveness, runner
from llmscope.evaluate.experiments.spec import Variant, parse, select_evaluators
from llmscope.evaluate.experiments.spec import structured as structured_variant
from llmscope.experiment_report import ExperimentRequest, ExperimentStatus

log = logging.getLogger("llmscope.experiments")


def variants_of(request: ExperimentRequest, config: GatewayConfig) -> list[Variant]:
    """The request's variants, SPEC strings or parts; SpecError naming the bad one."""
    out = []
    for i, given in enumerate(request.variants, 1):
        if isinstance(given, str):
            out.append(parse(str(i), given, config))
        else:
            out.append(structured_variant(str(i), given.model_dump(exclude_none=True), config))
    return out


def plan_request(
    session: Session, config: GatewayConfig, request: ExperimentRequest
) -> runner.Plan:
    """The checked plan; SpecError or DatasetError (one line) when something is wrong."""
    evaluators = select_evaluators(config, request.evaluators, "the gateway config")
    return runner.plan(
        session,
        config,
        cluster_id=request.cluster_id,
        run=request.run,
        variants=variants_of(request, config),
        evaluators=evaluators,
        sample=request.sample,
    )


class Busy(Exception):
    """This process already runs its most experiments at once."""


class ExperimentJobs:
    """The collector's running experiments (tasks on its event loop), at most ``MAX_RUNNING``
    at once per process: each has its own concurrency and token budget, so the cap bounds
    what one collector spends and keeps in flight."""

    MAX_RUNNING = 4

    def __init__(
        self, factory: sessionmaker[Session], gateway: Gateway, settings: Settings
    ) -> None:
        self.factory = factory
        self.gateway = gateway
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    def check_room(self) -> None:
        """Busy when ``MAX_RUNNING`` experiments already run here."""
        if len(self._tasks) >= self.MAX_RUNNING:
            raise Busy(
                f"{len(self._tasks)} experiments are running on this collector (at most "
                f"{self.MAX_RUNNING} at once); retry when one has finished"
            )

    async def submit(self, plan: runner.Plan) -> None:
        """Store the experiment as running and start it; returns once the row exists."""
        self.check_room()
        created = datetime.now(UTC)
        await asyncio.to_thread(runner.create, self.factory, plan, created, liveness.COLLECTOR)
        task = asyncio.create_task(self._run(plan, created), name=f"llmscope-{plan.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, plan: runner.Plan, created: datetime) -> None:
        log.info("experiment started id=%s cluster=%s", plan.id, plan.cluster_id)
        try:
            await runner.execute(
                plan,
                self.factory,
                self.gateway,
                concurrency=self.settings.experiment_concurrency,
                max_tokens=self.settings.experiment_max_tokens,
                created=created,
            )
        except asyncio.CancelledError:
            await asyncio.to_thread(_fail, self.factory, plan.id, "the collector stopped")
            raise
        except Exception as exc:
            log.exception("experiment failed id=%s", plan.id)
            await asyncio.to_thread(_fail, self.factory, plan.id, f"{type(exc).__name__}: {exc}")
        else:
            log.info("experiment finished id=%s", plan.id)

    async def stop(self) -> None:
        """Cancel what still runs (each is marked failed)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _fail(factory: sessionmaker[Session], experiment_id: str, reason: str) -> None:
    with session_scope(factory) as session:
        row = session.get(Experiment, experiment_id)
        if row is not None and row.status == "running":
            row.status = "failed"
            row.finished_at = datetime.now(UTC)
            row.spec = {**(row.spec or {}), "error": reason[:2000]}


def status(
    session: Session, experiment_id: str, stale_after: float, now: datetime | None = None
) -> ExperimentStatus | None:
    """Where the experiment is (an orphaned one is marked failed first: see :mod:`liveness`);
    None when there is no such experiment."""
    row = session.get(Experiment, experiment_id)
    if row is None:
        return None
    if liveness.settle(session, row, stale_after, now or datetime.now(UTC)):
        session.commit()
    done = session.scalar(
        select(func.count())
        .select_from(ExperimentItem)
        .where(ExperimentItem.experiment_id == experiment_id)
    )
    sides = 1 + len((row.spec or {}).get("variants", []))
    return ExperimentStatus(
        id=row.id,
        status=row.status,
        cluster_id=row.cluster_id,
        run_id=row.run_id,
        done=int(done or 0),
        total=len(row.record_ids or []) * sides,
        error=(row.spec or {}).get("error"),
    )
