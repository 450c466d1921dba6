"""Running an experiment: check everything, replay each record under each variant, judge, report.

:func:`plan` reads the dataset and builds every replay request first, so a bad SPEC, an unknown
evaluator or a template whose variables the records lack fails before anything is called or
stored. :func:`execute` stores the experiment, judges the original answers (reusing verdicts
the ``evaluations`` table already holds for the evaluator's current version), replays the
records with at most ``concurrency`` calls in flight, reuses the answer of an earlier replay of
the same request on the same record, and stops cleanly once ``max_tokens`` (replay plus judge
tokens) would be passed: the experiment is then ``stopped`` and its report covers what was
answered. Each answer is stored as soon as it is judged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.costs.pricing import PriceTable
from llmscope.collector.gateway.config import GatewayConfig
from llmscope.collector.gateway.evaluators import Evaluator
from llmscope.collector.gateway.service import Gateway
from llmscope.db import session_scope
from llmscope.db.models import Evaluation, Experiment, ExperimentItem
from llmscope.evaluate.experiments import dataset, liveness, report
from llmscope.evaluate.experiments.dataset import Item
from llmscope.evaluate.experiments.replay import Answer, judge, question_for, replay
from llmscope.evaluate.experiments.spec import Replay, Variant, request_for
from llmscope.experiment_report import ExperimentReport

BASELINE = "baseline"
DEFAULT_MAX_OUTPUT = 512  # tokens assumed for an answer when max_tokens is not set


@dataclass
class Plan:
    """An experiment checked and ready: nothing has been called or stored yet."""

    id: str
    run_id: str
    cluster_id: int
    items: list[Item]
    variants: list[Variant]
    evaluators: list[Evaluator]
    replays: dict[str, list[Replay]]  # variant name -> one request per item, in item order
    sample: int


def plan(
    session: Session,
    config: GatewayConfig,
    *,
    cluster_id: int,
    run: str | None,
    variants: Sequence[Variant],
    evaluators: Sequence[Evaluator],
    sample: int,
) -> Plan:
    """Everything checked; SpecError or DatasetError (one line) when something is wrong."""
    run_id, items = dataset.build(session, run, cluster_id, sample)
    replays: dict[str, list[Replay]] = {}
    for variant in variants:
        replays[variant.name] = [
            request_for(
                variant,
                config,
                endpoint=item["endpoint"],
                prompt=item["prompt"],
                messages=item["messages"],
                template=item["template_name"],
                template_text=item["template_text"],
                variables=item["template_variables"],
            )
            for item in items
        ]
    return Plan(
        id=f"exp-{uuid.uuid4().hex[:12]}",
        run_id=run_id,
        cluster_id=cluster_id,
        items=items,
        variants=list(variants),
        evaluators=list(evaluators),
        replays=replays,
        sample=sample,
    )


@dataclass
class Tokens:
    """The experiment's token budget (replays and judges), shared by its tasks."""

    limit: int | None
    used: int = 0
    reserved: int = 0
    exhausted: bool = False

    def reserve(self, estimate: int) -> bool:
        if self.limit is None:
            return True
        if self.exhausted or self.used + self.reserved + estimate > self.limit:
            self.exhausted = True
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: int, actual: int) -> None:
        if self.limit is not None:
            self.reserved -= estimate
        self.used += actual


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    reused: dict[str, int] = field(default_factory=dict)


def _estimate(request: Replay) -> int:
    size = sum(len(str(v)) for v in request.body.values()) // 4
    out = request.body.get("max_tokens")
    return size + (out if isinstance(out, int) else DEFAULT_MAX_OUTPUT) + 800  # + a judge


async def execute(
    plan: Plan,
    factory: sessionmaker[Session],
    gateway: Gateway | None,
    *,
    concurrency: int = 16,
    max_tokens: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    created: datetime | None = None,
) -> ExperimentReport:
    """Run ``plan`` and store its report (see the module's docstring); ``created``: the
    experiment's row was already stored (:func:`create`) at that time."""
    if created is None:
        created = now()
        await asyncio.to_thread(create, factory, plan, created)
    budget = Tokens(max_tokens)
    slots = asyncio.Semaphore(concurrency)
    state = Progress(total=len(plan.items) * (1 + len(plan.variants)))
    prices = PriceTable(gateway.config.pricing if gateway is not None else ())
    existing = await asyncio.to_thread(_known_verdicts, factory, plan)

    async def baseline(item: Item) -> None:
        async with slots:
            if budget.exhausted:
                return
            key = f"record:{item['id']}"
            earlier = await asyncio.to_thread(_reusable, factory, key, item["id"])
            have = {**(earlier[1] if earlier else {}), **existing.get(item["id"], {})}
            estimate = 800 * sum(1 for e in plan.evaluators if e.is_judge)
            if not budget.reserve(estimate):
                return
            verdicts, spent = await judge(
                gateway,
                plan.evaluators,
                question=question_for(item["prompt"], item["messages"]),
                answer=item["response"],
                latency_ms=item["latency_ms"],
                have=have,
            )
            budget.settle(estimate, spent)
            answer = Answer(
                item["response"],
                None,
                item["id"],
                item["input_tokens"],
                item["output_tokens"],
                item["latency_ms"] or 0.0,
                item["cost_usd"],
            )
            await asyncio.to_thread(
                _store, factory, plan.id, item["id"], BASELINE, key, answer, verdicts
            )
            _tick(state, progress)

    async def variant_answer(variant: Variant, item: Item, request: Replay) -> None:
        async with slots:
            if budget.exhausted:
                return
            earlier = await asyncio.to_thread(_reusable, factory, request.key, item["id"])
            estimate = _estimate(request)
            if not budget.reserve(estimate):
                return
            spent = 0
            if earlier is not None:
                answer, have = earlier
                state.reused[variant.name] = state.reused.get(variant.name, 0) + 1
            else:
                have = None
                answer = await replay(gateway_required(), request, plan.id, variant.name, prices)
                spent += (answer.input_tokens or 0) + (answer.output_tokens or 0)
            verdicts: dict[str, Any] = {}
            if answer.error is None:
                verdicts, judged = await judge(
                    gateway,
                    plan.evaluators,
                    question=question_for(request.body.get("prompt"), request.body.get("messages")),
                    answer=answer.text,
                    latency_ms=answer.latency_ms,
                    have=have,
                )
                spent += judged
            budget.settle(estimate, spent)
            await asyncio.to_thread(
                _store, factory, plan.id, item["id"], variant.name, request.key, answer, verdicts
            )
            _tick(state, progress)

    def gateway_required() -> Gateway:
        if gateway is None:
            raise RuntimeError("replays need the gateway")
        return gateway

    tasks = [baseline(item) for item in plan.items]
    for variant in plan.variants:
        tasks += [
            variant_answer(variant, item, request)
            for item, request in zip(plan.items, plan.replays[variant.name], strict=True)
        ]
    await asyncio.gather(*tasks)
    stopped = None
    if budget.exhausted:
        stopped = (
            f"token budget reached (LLMSCOPE_EXPERIMENT_MAX_TOKENS={max_tokens}, "
            f"{budget.used} used); the report covers the answers made before it"
        )
    rows = await asyncio.to_thread(_items, factory, plan.id)
    built = report.build(plan, rows, created=created, reused=state.reused, stopped=stopped)
    await asyncio.to_thread(_finish, factory, plan.id, built, now())
    return built


def _tick(state: Progress, progress: Callable[[Progress], None] | None) -> None:
    state.done += 1
    if progress is not None:
        progress(state)


# --- the store ----------------------------------------------------------------------------
def create(
    factory: sessionmaker[Session], plan: Plan, created: datetime, owner: str = liveness.COMMAND
) -> None:
    """Store the experiment as ``running``, with its spec, dataset and the process running it
    (``owner`` names it: see :mod:`liveness`)."""
    spec = {
        "variants": [{"name": v.name, "spec": v.spec, **v.describe()} for v in plan.variants],
        "evaluators": [{"name": e.name, "version": e.version} for e in plan.evaluators],
        "sample": plan.sample,
        "owner": liveness.me(owner),
    }
    with session_scope(factory) as session:
        session.add(
            Experiment(
                id=plan.id,
                created_at=created,
                run_id=plan.run_id,
                cluster_id=plan.cluster_id,
                status="running",
                spec=spec,
                record_ids=[i["id"] for i in plan.items],
            )
        )


def _known_verdicts(factory: sessionmaker[Session], plan: Plan) -> dict[str, dict[str, Any]]:
    """Verdicts on the original answers already in ``evaluations`` (current versions only)."""
    versions = {e.name: e.version for e in plan.evaluators}
    types = {e.name: e.type for e in plan.evaluators}
    out: dict[str, dict[str, Any]] = {}
    ids = [i["id"] for i in plan.items]
    with factory() as session:
        for start in range(0, len(ids), 500):
            rows = session.scalars(
                select(Evaluation).where(
                    Evaluation.record_id.in_(ids[start : start + 500]),
                    Evaluation.evaluator.in_(list(versions)),
                    Evaluation.status == "done",
                )
            )
            for row in rows:
                if versions.get(row.evaluator) != row.version:
                    continue
                out.setdefault(row.record_id, {})[row.evaluator] = {
                    "version": row.version,
                    "type": types[row.evaluator],
                    "score": row.score,
                    "passed": row.passed,
                    "justification": row.justification,
                    "error": None,
                }
    return out


def _reusable(
    factory: sessionmaker[Session], key: str, record_id: str
) -> tuple[Answer, dict[str, Any]] | None:
    """The newest good answer to the same request on the same record, and its verdicts."""
    with factory() as session:
        row = session.scalars(
            select(ExperimentItem)
            .where(
                ExperimentItem.variant_key == key,
                ExperimentItem.record_id == record_id,
                ExperimentItem.status == "ok",
            )
            .order_by(ExperimentItem.created_at.desc(), ExperimentItem.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        answer = Answer(
            row.answer,
            None,
            row.call_record_id or "",
            row.input_tokens,
            row.output_tokens,
            row.latency_ms or 0.0,
            row.cost_usd,
        )
        return answer, dict(row.verdicts or {})


def _store(
    factory: sessionmaker[Session],
    experiment_id: str,
    record_id: str,
    variant: str,
    key: str,
    answer: Answer,
    verdicts: dict[str, Any],
) -> None:
    with session_scope(factory) as session:
        session.add(
            ExperimentItem(
                experiment_id=experiment_id,
                record_id=record_id,
                variant=variant,
                variant_key=key,
                status="error" if answer.error else "ok",
                answer=answer.text,
                error=answer.error,
                call_record_id=answer.call_record_id,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                latency_ms=answer.latency_ms,
                cost_usd=answer.cost_usd,
                verdicts=verdicts,
            )
        )


def _items(factory: sessionmaker[Session], experiment_id: str) -> list[ExperimentItem]:
    with factory() as session:
        rows = list(
            session.scalars(
                select(ExperimentItem).where(ExperimentItem.experiment_id == experiment_id)
            )
        )
        session.expunge_all()
        return rows


def _finish(
    factory: sessionmaker[Session], experiment_id: str, built: ExperimentReport, at: datetime
) -> None:
    with session_scope(factory) as session:
        row = session.get(Experiment, experiment_id)
        assert row is not None
        row.status = built.status
        row.finished_at = at
        row.report = built.to_json()
