"""The server's FastAPI application: the collector's routes, the gateway, the online judge and
the experiments, wired to the settings and the store (an assembly of parts: it is in app/).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Route

from llmscope import __version__
from llmscope.app.mcp.server import McpEndpoint
from llmscope.collector.api.admission import Admission
from llmscope.collector.api.auth import ApiKeyAuth, KeyCheck
from llmscope.collector.api.errors import install_error_handlers
from llmscope.collector.api.limits import BodySizeLimit
from llmscope.collector.api.routes import (
    alerts,
    analysis,
    health,
    metrics,
    records,
    sessions,
    traces,
)
from llmscope.collector.api.routes.metrics import StoreCollector, sample_forever
from llmscope.collector.costs.accounting import Accounting
from llmscope.collector.costs.budgets import BudgetTracker
from llmscope.collector.gateway import Gateway
from llmscope.collector.gateway import mlflow_router as gateway_mlflow_router
from llmscope.collector.gateway import openai_router as gateway_openai_router
from llmscope.collector.gateway.fast import FastPath
from llmscope.collector.ingest import Recorder, RecordWriter
from llmscope.collector.masking import sessionmaker_for
from llmscope.collector.otlp import receiver as otlp_receiver
from llmscope.collector.otlp.grpc_receiver import OtlpGrpcServer
from llmscope.config import Settings, get_settings
from llmscope.db import make_engine
from llmscope.evaluate.evaluations.online import OnlineJudge
from llmscope.evaluate.experiments import liveness
from llmscope.evaluate.experiments import routes as experiments
from llmscope.evaluate.experiments.jobs import ExperimentJobs
from llmscope.metrics import Metrics

log = logging.getLogger("llmscope.collector")


def create_app(
    settings: Settings | None = None, *, grpc_host: str = "127.0.0.1", grpc_reuse_port: bool = False
) -> FastAPI:
    """The collector app for ``settings``; the store must already be migrated.

    Its lifespan also runs the OTLP/gRPC receiver on ``grpc_host`` (``serve``'s ``--host``) and
    ``settings.otlp_grpc_port``, unless that is 0."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    # Every session of the collector: with LLMSCOPE_REDACT_PII, what it writes is masked.
    factory = sessionmaker_for(engine, settings)
    # API keys: one cache for the HTTP routes and OTLP/gRPC.
    keys = KeyCheck(factory)
    # Records written off the request path (gateway; anyone else may submit too).
    recorder = Recorder(factory, spool_dir=settings.data_dir / "spool")
    prom = Metrics(enabled=settings.metrics, max_label_values=settings.metrics_max_label_values)
    budgets = BudgetTracker(factory, settings, on_refused=lambda: prom.refused("budget"))
    accounting = Accounting(prom, budgets)
    # The one write path: every door (REST, OTLP, the gateway) stores through it.
    writer = RecordWriter.from_settings(settings, recorder, accounting)
    # An invalid gateway config raises ConfigError here, before anything is served.
    gateway = Gateway(settings.gateway_config, writer) if settings.gateway_config else None
    # Judges new records in the background while the gateway has evaluators (hot-reloaded).
    online = OnlineJudge(factory, gateway, settings, metrics=prom) if gateway is not None else None
    # Experiments started over REST replay through the same gateway, in the background.
    experiment_jobs = ExperimentJobs(factory, gateway, settings) if gateway else None
    # The MCP server's read-only tools over streamable HTTP (the read scope, see auth.py).
    mcp = McpEndpoint(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "collector started version=%s store=%s", __version__, engine.url.get_backend_name()
        )
        otlp_grpc = (
            OtlpGrpcServer(
                app.state, keys, grpc_host, settings.otlp_grpc_port, reuse_port=grpc_reuse_port
            )
            if settings.otlp_grpc_port
            else None
        )
        if otlp_grpc is not None:
            otlp_grpc.bind()  # first: a port it cannot bind fails the startup before anything runs
        recorder.start()
        budgets.start()
        # Experiments a killed collector left "running" end as failed (any collector may run).
        await asyncio.to_thread(liveness.sweep, factory, settings.experiment_stale_s)
        sampler = asyncio.create_task(sample_forever(prom, recorder), name="llmscope-metrics")
        if otlp_grpc is not None:
            await otlp_grpc.start()
        if gateway is not None:
            await gateway.start()
        if online is not None:
            await online.start()
        await mcp.start()
        try:
            yield
        finally:
            await mcp.stop()
            if experiment_jobs is not None:
                await experiment_jobs.stop()
            if online is not None:
                await online.stop()
            if otlp_grpc is not None:
                await otlp_grpc.stop()  # exports under way are written before the writer stops
            if gateway is not None:
                await gateway.stop()
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            budgets.stop()
            recorder.stop()  # drains the queue to the store (or the spool)
            engine.dispose()

    app = FastAPI(
        title="llmscope collector",
        version=__version__,
        description="Records every LLM call and its feedback.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.recorder = recorder
    app.state.writer = writer
    app.state.gateway = gateway
    app.state.metrics = prom
    app.state.accounting = accounting
    app.state.store_collector = StoreCollector(
        app.state.sessionmaker,
        settings.data_dir / "spool",
        settings.metrics_max_label_values,
        budgets.spends,
    )
    app.state.online_judge = online
    app.state.experiment_jobs = experiment_jobs
    install_error_handlers(app)
    if gateway is not None:  # innermost: the limits, keys and admission below apply to it
        app.add_middleware(FastPath)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # An unauthenticated call is refused before its body is read.
    app.add_middleware(ApiKeyAuth, keys=keys)
    # Before anything else: an over-budget request costs neither a key check nor memory.
    app.add_middleware(
        Admission,
        max_requests=settings.max_inflight_requests,
        max_body_bytes=settings.max_inflight_body_bytes,
        largest_body=settings.max_body_bytes,
        metrics=prom,
    )
    app.include_router(health.router)
    app.include_router(records.router)
    app.include_router(sessions.router)
    app.include_router(traces.router)
    app.include_router(alerts.router)
    app.include_router(analysis.router)
    app.include_router(experiments.router)
    app.include_router(otlp_receiver.router)
    app.include_router(metrics.router)
    app.router.routes.append(Route(McpEndpoint.PATH, mcp, include_in_schema=False))
    if gateway is not None:
        app.include_router(gateway_mlflow_router)
        app.include_router(gateway_openai_router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (one app per worker process), settings from env; the
    gRPC receiver's host and port sharing as ``llmscope serve`` set them (see serve.py)."""
    from llmscope.app.serve import grpc_bind_from_env  # the CLI module, only for this

    host, reuse_port = grpc_bind_from_env()
    return create_app(Settings(), grpc_host=host, grpc_reuse_port=reuse_port)
