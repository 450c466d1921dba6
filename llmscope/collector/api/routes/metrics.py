"""``GET /metrics``: Prometheus' text format, summed over the collector's worker processes.

Counters and histograms come from :class:`llmscope.metrics.Metrics` (each process updates its
own; in multiprocess mode the scrape adds them up). What the store and the disk know is read at
scrape time by the collectors below, cached for ``CACHE_SECONDS`` so a tight scrape interval
costs the store little:

- ``llmscope_cluster_share{cluster,window}``, ``llmscope_cluster_down_rate{cluster}``,
  ``llmscope_cluster_flagged{cluster,signal}`` (signal: drift, hotspot, evaluation: an
  evaluator's failures flagged in the cluster, regression: its latency, output length, cost
  per call or error rate, rephrase: its answers asked again in other words more often than the
  rest's; read from the run's ``findings``): the latest analysis run, one series per
  cluster's stable key (the identity that survives re-clustering; at most ``max_label_values``
  clusters, the largest, the rest summed into ``other``);
- ``llmscope_evaluator_fail_rate{evaluator}`` / ``llmscope_evaluator_evaluated{evaluator}``: each
  evaluator over the latest run's current window;
- ``llmscope_recorder_spool_bytes``: bytes in the spool directory waiting for the store;
- ``llmscope_budget_spent_usd{budget}`` / ``llmscope_budget_limit_usd{budget}``: each budget's
  spend in its current period (when the gateway config has ``budgets:``).

Like every read, the route needs the ``read`` scope once API keys exist, so Prometheus scrapes
with ``authorization: {credentials: KEY}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from llmscope.db.models import RunCluster
from llmscope.db.queries import load_run_report
from llmscope.metrics import OTHER, Metrics
from llmscope.report import RunReport

router = APIRouter(tags=["metrics"])
CACHE_SECONDS = 10.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Cached:
    """A value recomputed at most every ``CACHE_SECONDS``."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute
        self._value: Any = None
        self._at = -1e18

    def get(self) -> Any:
        now = time.monotonic()
        if now - self._at >= CACHE_SECONDS:
            self._value = self.compute()
            self._at = now
        return self._value


# The finding kinds each signal of llmscope_cluster_flagged stands for.
SIGNALS = {
    "drift": ("drift", "new_cluster"),
    "hotspot": ("hotspot",),
    "evaluation": ("eval_hotspot",),
    "regression": ("regression",),
    "rephrase": ("rephrase_hotspot",),
}


def cluster_gauges(session: Session, report: RunReport, cap: int) -> list[dict[str, Any]]:
    """The run's clusters as ``{key, size, baseline, current, down_rate, drift, hotspot,
    evaluation, regression, rephrase}`` (the signals: does a finding of the run name the cluster);
    beyond ``cap`` clusters the smallest are folded into one ``other`` entry."""
    keys = dict(
        session.execute(
            select(RunCluster.cluster_id, RunCluster.stable_key).where(
                RunCluster.run_id == report.run_id
            )
        ).all()
    )
    named = {(f.kind, f.cluster_id) for f in report.findings}
    found: list[dict[str, Any]] = [
        {
            "key": keys.get(cluster.id) or f"{report.run_id[:8]}:{cluster.id}",
            "size": cluster.size,
            "baseline": cluster.baseline_share,
            "current": cluster.current_share,
            "down_rate": cluster.feedback.down_rate,
            **{
                signal: any((kind, cluster.id) in named for kind in kinds)
                for signal, kinds in SIGNALS.items()
            },
        }
        for cluster in report.clusters
        if cluster.id >= 0
    ]
    found.sort(key=lambda c: (-c["size"], c["key"]))
    if len(found) <= cap:
        return found
    kept, rest = found[: cap - 1], found[cap - 1 :]
    kept.append(
        {
            "key": OTHER,
            "size": sum(c["size"] for c in rest),
            "baseline": sum(c["baseline"] for c in rest),
            "current": sum(c["current"] for c in rest),
            "down_rate": None,
            **{signal: any(c[signal] for c in rest) for signal in SIGNALS},
        }
    )
    return kept


def evaluator_gauges(report: RunReport, cap: int) -> list[tuple[str, int, float | None]]:
    """Each evaluator of the run's current window: ``(name, evaluated, fail_rate)``, at most
    ``cap`` of them (the most evaluated)."""
    found = [
        (name, entry.evaluated, None if entry.fail_rate is None else float(entry.fail_rate))
        for name, entry in report.evaluators.items()
    ]
    return sorted(found, key=lambda e: (-e[1], e[0]))[:cap]


def spool_bytes(spool_dir: Path) -> int:
    """Bytes of records waiting on disk for the store (spool files and their replays)."""
    if not spool_dir.is_dir():
        return 0
    total = 0
    for path in spool_dir.glob("records-*.jsonl*"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # replayed and removed meanwhile
            continue
    return total


class StoreCollector:
    """Scrape-time gauges from the store and the spool directory (see the module docstring)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        spool_dir: Path,
        cap: int,
        budgets: Callable[[], list[tuple[str, float, float]]] | None = None,
    ) -> None:
        self._clusters = _Cached(lambda: self._read_latest(factory, cap))
        self._spool_dir = spool_dir
        self._budgets = budgets

    @staticmethod
    def _read_latest(
        factory: sessionmaker[Session], cap: int
    ) -> tuple[list[dict[str, Any]], list[tuple[str, int, float | None]]]:
        with factory() as session:
            report = load_run_report(session)  # the latest run, read once per refresh
            if report is None:
                return [], []
            return cluster_gauges(session, report, cap), evaluator_gauges(report, cap)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        share = GaugeMetricFamily(
            "llmscope_cluster_share",
            "Share of each window's traffic in the cluster (latest analysis run).",
            labels=("cluster", "window"),
        )
        down = GaugeMetricFamily(
            "llmscope_cluster_down_rate",
            "Thumbs-down rate of the cluster's rated calls in the current window (latest run).",
            labels=("cluster",),
        )
        flagged = GaugeMetricFamily(
            "llmscope_cluster_flagged",
            "1 when the latest run flagged the cluster for the signal "
            "(drift, hotspot, evaluation, regression, rephrase).",
            labels=("cluster", "signal"),
        )
        clusters, evaluators = self._clusters.get()
        for cluster in clusters:
            key = cluster["key"]
            share.add_metric((key, "baseline"), cluster["baseline"])
            share.add_metric((key, "current"), cluster["current"])
            if cluster["down_rate"] is not None:
                down.add_metric((key,), float(cluster["down_rate"]))
            for signal in SIGNALS:
                flagged.add_metric((key, signal), 1.0 if cluster[signal] else 0.0)
        yield from (share, down, flagged)
        evaluated = GaugeMetricFamily(
            "llmscope_evaluator_evaluated",
            "Records each evaluator judged in the latest run's current window.",
            labels=("evaluator",),
        )
        fail_rate = GaugeMetricFamily(
            "llmscope_evaluator_fail_rate",
            "Share of each evaluator's verdicts that failed in the latest run's current window.",
            labels=("evaluator",),
        )
        for name, count, rate in evaluators:
            evaluated.add_metric((name,), float(count))
            if rate is not None:
                fail_rate.add_metric((name,), rate)
        yield from (evaluated, fail_rate)
        yield GaugeMetricFamily(
            "llmscope_recorder_spool_bytes",
            "Bytes of records in the spool directory waiting for the store.",
            value=spool_bytes(self._spool_dir),
        )
        if self._budgets is not None:
            spent = GaugeMetricFamily(
                "llmscope_budget_spent_usd",
                "Spend of each budget in its current period, US dollars.",
                labels=("budget",),
            )
            limit = GaugeMetricFamily(
                "llmscope_budget_limit_usd", "Each budget's limit, US dollars.", labels=("budget",)
            )
            for name, used, cap in self._budgets():
                spent.add_metric((name,), used)
                limit.add_metric((name,), cap)
            yield from (spent, limit)


async def sample_forever(metrics: Metrics, recorder: Any, interval: float = 1.0) -> None:
    """Copy the recorder's counts into the metrics every ``interval`` seconds (per process)."""
    if not metrics.enabled:
        return
    stored = spooled = 0
    try:
        while True:
            await asyncio.sleep(interval)
            stored, spooled = _sample(metrics, recorder, stored, spooled)
    finally:
        _sample(metrics, recorder, stored, spooled)


def _sample(metrics: Metrics, recorder: Any, stored: int, spooled: int) -> tuple[int, int]:
    metrics.queue_depth.set(recorder.queue_depth())
    now_stored, now_spooled = recorder.stored, recorder.spooled
    if now_stored > stored:
        metrics.records_written.inc(now_stored - stored)
    if now_spooled > spooled:
        metrics.records_spooled.inc(now_spooled - spooled)
    return now_stored, now_spooled


def scrape(metrics: Metrics, extra: Iterable[Any]) -> bytes:
    return metrics.render(extra)


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics (text format), summed over the collector's processes."""
    metrics: Metrics = request.app.state.metrics
    if not metrics.enabled:
        raise HTTPException(404, "metrics are off (LLMSCOPE_METRICS=false)")
    extra = [request.app.state.store_collector]
    body = await run_in_threadpool(scrape, metrics, extra)
    return Response(body, media_type=CONTENT_TYPE)
