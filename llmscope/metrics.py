"""Prometheus metrics: every llmscope metric's name, labels and buckets, and how they are served.

One :class:`Metrics` per process holds the metrics the collector and the worker update; the
names and labels are public surface (``docs/guides/operations.md``, ``deploy/monitoring/``)::

    llmscope_calls_total{source,endpoint,model,template,status}
    llmscope_call_latency_seconds{endpoint,model}        histogram
    llmscope_ttft_seconds{endpoint,model}                histogram
    llmscope_tokens_total{endpoint,model,direction}      direction: input | output
    llmscope_cost_usd_total{endpoint,model}
    llmscope_feedback_total{endpoint,thumb}              thumb: up | down | score
    llmscope_evaluations_total{evaluator,result}         online verdicts: pass | fail | error
    llmscope_refused_total{reason}    admission | otlp_concurrency | rate_limit | budget
    llmscope_inflight_requests, llmscope_inflight_body_bytes
    llmscope_recorder_queue_depth, llmscope_recorder_records_written_total,
    llmscope_recorder_records_spooled_total
    llmscope_worker_runs_total{outcome}, llmscope_worker_run_seconds,
    llmscope_worker_last_success_timestamp_seconds, llmscope_worker_embedded_texts_total

(the store-derived gauges, ``llmscope_cluster_*``, ``llmscope_evaluator_*``,
``llmscope_recorder_spool_bytes`` and ``llmscope_budget_*``, are computed at scrape time by the
collector's ``/metrics`` route).

**Several processes.** ``llmscope serve --workers N`` runs N processes; Prometheus must see their
sum. When ``PROMETHEUS_MULTIPROC_DIR`` is set before a process first imports prometheus-client
(``serve`` sets it for N > 1), every value is kept in a memory-mapped file in that directory and
:meth:`Metrics.render` adds them up over all processes (prometheus-client's multiprocess mode;
gauges are summed over the live processes). With one process, values stay in memory.

**Bounded labels.** A label takes at most ``max_label_values`` distinct values per process (the
first ones seen); any later value is reported as ``other``, so a client sending a new model
name per call cannot grow Prometheus' memory without bound. ``""`` means "not given".

**Off.** ``Metrics(enabled=False)`` keeps the same methods and does nothing (the benchmarks'
baseline; ``LLMSCOPE_METRICS=false``).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["OTHER", "Metrics", "multiprocess_dir"]

OTHER = "other"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0)
ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The directory of multiprocess values, when this process runs in multiprocess mode."""
    value = os.environ.get(ENV) or os.environ.get(ENV.lower())
    return Path(value) if value else None


class _Bounded:
    """Label values per label name: the first ``cap`` distinct ones, the rest ``other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: Any) -> str:
        text = "" if value is None else str(value)
        seen = self._seen.setdefault(label, set())
        if text in seen:
            return text
        with self._lock:
            if len(seen) < self.cap:
                seen.add(text)
                return text
        return OTHER


def _observe_many(child: Any, values: list[float]) -> None:
    """``child.observe(v)`` for each value, as one update per bucket and one of the sum.

    In multiprocess mode every update is a locked write to a memory-mapped file (~5 us), so a
    batch of 1,000 latencies costs 1,000 x 2 of them through ``observe``. This uses the
    histogram's own per-bucket values (``_upper_bounds``, ``_buckets``, ``_sum``, stable in
    prometheus-client since 0.4) and falls back to ``observe`` if they ever change.
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            child.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bucket whose bound >= value
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    total.inc(sum(values))


class _Group:
    """What one batch's calls with the same labels add up to."""

    __slots__ = ("calls", "cost", "latencies", "tokens_in", "tokens_out", "ttfts")

    def __init__(self) -> None:
        self.calls = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = 0.0
        self.latencies: list[float] = []
        self.ttfts: list[float] = []


class _Children:
    """The children of the call metrics for one label set; the rarer ones made when first
    needed (a child, once made, is a series shown at 0)."""

    __slots__ = ("calls", "key", "more")

    def __init__(self, key: tuple[str, str], calls: Any) -> None:
        self.key = key
        self.calls = calls
        self.more: dict[str, Any] = {}

    def child(self, name: str, metric: Any, *extra: str) -> Any:
        found = self.more.get(name)
        if found is None:
            found = self.more[name] = metric.labels(*self.key, *extra)
        return found


class Metrics:
    """The process's metrics; see the module docstring for names, modes and bounds."""

    def __init__(self, *, enabled: bool = True, max_label_values: int = 100) -> None:
        self.enabled = enabled
        self.bound = _Bounded(max_label_values)
        self.multiprocess = multiprocess_dir() is not None
        self._children: dict[tuple[Any, ...], _Children] = {}  # raw labels -> (see _label)
        if not enabled:
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # Multiprocess mode: values live in files, collected at render; nothing is registered.
        self.registry: CollectorRegistry | None = None if self.multiprocess else CollectorRegistry()
        reg: dict[str, Any] = {"registry": self.registry}
        endpoint_model = ("endpoint", "model")
        self.calls = Counter(
            "llmscope_calls",
            "LLM calls: gateway calls when answered, REST/SDK/OTLP records when committed.",
            ("source", "endpoint", "model", "template", "status"),
            **reg,
        )
        self.latency = Histogram(
            "llmscope_call_latency_seconds",
            "Latency of recorded LLM calls.",
            endpoint_model,
            buckets=LATENCY_BUCKETS,
            **reg,
        )
        self.ttft = Histogram(
            "llmscope_ttft_seconds",
            "Time to first token of streamed LLM calls.",
            endpoint_model,
            buckets=TTFT_BUCKETS,
            **reg,
        )
        self.tokens = Counter(
            "llmscope_tokens",
            "Tokens of recorded LLM calls, by direction (input, output).",
            (*endpoint_model, "direction"),
            **reg,
        )
        self.cost = Counter(
            "llmscope_cost_usd",
            "Cost of recorded LLM calls in US dollars (calls whose model has a price).",
            endpoint_model,
            **reg,
        )
        self.feedback_events = Counter(
            "llmscope_feedback",
            "Feedback events stored, by thumb (up, down; score for a number).",
            ("endpoint", "thumb"),
            **reg,
        )
        self.evaluations = Counter(
            "llmscope_evaluations",
            "Verdicts the online evaluators wrote (LLM judges and built-in checks), by evaluator "
            "and result (pass, fail, error).",
            ("evaluator", "result"),
            **reg,
        )
        self.refused_requests = Counter(
            "llmscope_refused",
            "Requests refused before any work, by reason (admission, otlp_concurrency, "
            "rate_limit, budget).",
            ("reason",),
            **reg,
        )
        live: dict[str, Any] = {"multiprocess_mode": "livesum"}
        self.inflight_requests = Gauge(
            "llmscope_inflight_requests", "Requests being worked on now.", **live, **reg
        )
        self.inflight_body_bytes = Gauge(
            "llmscope_inflight_body_bytes",
            "Request-body bytes being worked on now (by Content-Length).",
            **live,
            **reg,
        )
        self.queue_depth = Gauge(
            "llmscope_recorder_queue_depth",
            "Records waiting in the recorder's in-memory queue for the store.",
            **live,
            **reg,
        )
        self.records_written = Counter(
            "llmscope_recorder_records_written",
            "Records the background recorder wrote to the store (replayed ones included).",
            **reg,
        )
        self.records_spooled = Counter(
            "llmscope_recorder_records_spooled",
            "Records the background recorder wrote to its spool because the store failed.",
            **reg,
        )
        self.worker_runs = Counter(
            "llmscope_worker_runs",
            "Scheduled analysis runs of `llmscope worker`, by outcome (ok, failed, skipped: "
            "another worker held the lock).",
            ("outcome",),
            **reg,
        )
        self.worker_run_seconds = Histogram(
            "llmscope_worker_run_seconds",
            "Duration of the worker's analysis runs.",
            buckets=RUN_BUCKETS,
            **reg,
        )
        self.worker_embedded = Counter(
            "llmscope_worker_embedded_texts",
            "Texts the worker embedded as records arrived (so scheduled runs only cluster).",
            **reg,
        )
        self.worker_last_success = Gauge(
            "llmscope_worker_last_success_timestamp_seconds",
            "Unix time of the worker's last successful analysis run.",
            multiprocess_mode="max",
            **reg,
        )

    # --- updates ----------------------------------------------------------------------------
    def call(self, row: Mapping[str, Any]) -> None:
        """Count one recorded call (a ``records`` row: answered or committed)."""
        self.calls_committed((row,))

    def calls_committed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Count recorded calls. A batch is first summed per distinct label set (the rows of
        one batch share a handful), so the per-row work is a tuple and a few additions, and
        the label lookups and metric updates happen once per set."""
        if not self.enabled:
            return
        groups: dict[tuple[Any, ...], _Group] = {}
        for row in rows:
            get = row.get
            raw = (
                get("source"),
                get("endpoint"),
                get("model"),
                get("template_name"),
                get("template_version"),
                get("status"),
            )
            group = groups.get(raw)
            if group is None:
                group = groups[raw] = _Group()
            group.calls += 1
            latency, ttft = get("latency_ms"), get("ttft_ms")
            if latency is not None and latency >= 0:
                group.latencies.append(latency / 1000)
            if ttft is not None and ttft >= 0:
                group.ttfts.append(ttft / 1000)
            group.tokens_in += get("input_tokens") or 0
            group.tokens_out += get("output_tokens") or 0
            group.cost += get("cost_usd") or 0.0
        for raw, group in groups.items():
            children = self._children.get(raw)
            if children is None:
                children = self._label(raw)
            children.calls.inc(group.calls)
            if group.latencies:
                _observe_many(children.child("latency", self.latency), group.latencies)
            if group.ttfts:
                _observe_many(children.child("ttft", self.ttft), group.ttfts)
            if group.tokens_in > 0:
                children.child("input", self.tokens, "input").inc(group.tokens_in)
            if group.tokens_out > 0:
                children.child("output", self.tokens, "output").inc(group.tokens_out)
            if group.cost > 0:
                children.child("cost", self.cost).inc(group.cost)

    def _label(self, raw: tuple[Any, ...]) -> _Children:
        """The metric children of one raw label set, kept (a bounded label maps the same way
        for good: its first ``cap`` values stay, the rest stay ``other``), so a call's counting
        skips prometheus-client's label lookup, about half of its cost."""
        source, endpoint, model, name, version, status = raw
        b = self.bound
        key = (b("endpoint", endpoint), b("model", model))
        template = "" if name is None else f"{name}@{version or ''}"
        labels = (b("source", source), *key, b("template", template), b("status", status or "ok"))
        children = _Children(key, self.calls.labels(*labels))
        if len(self._children) >= 10_000:  # bounded: the raw values come from clients
            self._children.clear()
        self._children[raw] = children
        return children

    def feedback(self, endpoint: str | None, thumb: str | None) -> None:
        """Count one stored feedback event on a record of ``endpoint``."""
        if self.enabled:
            label = thumb if thumb in ("up", "down") else "score"
            self.feedback_events.labels(self.bound("endpoint", endpoint), label).inc()

    def evaluated(self, evaluator: str, result: str, count: int = 1) -> None:
        """Count ``count`` verdicts of ``evaluator`` written online: pass, fail or error."""
        if self.enabled and count:
            self.evaluations.labels(self.bound("evaluator", evaluator), result).inc(count)

    def refused(self, reason: str) -> None:
        if self.enabled:
            self.refused_requests.labels(reason).inc()

    # --- exposition -------------------------------------------------------------------------
    def render(self, extra: Iterable[Any] = ()) -> bytes:
        """The text exposition of every process's metrics plus the ``extra`` collectors."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        if not self.enabled:
            pass
        elif self.multiprocess:
            MultiProcessCollector(registry)
        else:
            assert self.registry is not None
            registry.register(_Forward(self.registry))
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)

    @staticmethod
    def process_exited(pid: int) -> None:
        """Drop a dead process's live gauges (multiprocess mode only)."""
        if multiprocess_dir() is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)


class _Forward:
    """Exposes another registry's metrics inside a per-scrape registry."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()  # type: ignore[no-any-return]

    def describe(self) -> list[Any]:
        return []  # not checked for duplicates: the names are ours
