"""``llmscope worker``: the analysis on a schedule, new records embedded as they arrive, and,
with a gateway config (``LLMSCOPE_GATEWAY_CONFIG``) that has ``evaluators:``, new records judged
online (``evaluate.evaluations.online.BackgroundJudge``; claims keep it from judging what a
collector judges).

::

    llmscope worker [--analyze-every 1h] [--embed-every 1m] [--host 127.0.0.1] [--port 5100]
                    [--database-url URL]

Every ``--embed-every`` the worker embeds the texts of records received since its last pass
(``analysis.incremental.embed_new_records``), so a scheduled run mostly clusters. Every
``--analyze-every`` it runs one analysis with the contract's default windows relative to now
(current = the last 24 h, baseline = the 7 days before) and stores it with its summaries and
alerts, exactly as ``llmscope analyze`` does. With ``LLMSCOPE_RETENTION_DAYS`` set, it prunes at
start and then every hour: the records older than the retention go with everything hanging off
them, as ``llmscope prune`` deletes them (``llmscope.db.prune``).

**One analysis at a time**, however many workers run: a run happens under a lock held for its
whole length, a PostgreSQL session advisory lock, or an exclusive ``flock`` on a file beside a
SQLite store. A worker that finds the lock taken skips that turn (``outcome="skipped"``), and one
that gets it skips as well when another worker stored a run less than half an interval ago, so
N workers still make one run per interval. The operating system releases both kinds of lock when
a process dies, so a killed worker never blocks the others.

**Nothing half-written.** A run's rows (the run, its clusters, its assignments) are written in
one transaction; a worker killed before the commit leaves no run at all, after it a whole one.

**Stopping.** SIGTERM (or Ctrl-C) lets the step in progress finish, then the worker exits 0; a
second SIGTERM ends it at once (the open transaction is rolled back, as for a kill).

**HTTP.** ``GET /health`` (``{"status":"ok"}`` while the store answers, else 503) and
``GET /metrics`` (``llmscope_worker_*``; the ``read`` scope once API keys exist) on
``--host``/``--port``.
"""

from __future__ import annotations

import argparse
import fcntl  # file locks: POSIX only, so llmscope runs on Linux and macOS (not Windows)
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from llmscope.analysis.small_data import EmptyWindows
from llmscope.cli import (
    UsageError,
    add_database_url,
    add_insecure,
    announce_store,
    port_number,
    prepare_store,
    refuse_open_bind,
    settings_from,
)
from llmscope.config import Settings
from llmscope.metrics import Metrics

__all__ = ["AnalysisLock", "Worker", "interval", "register"]

log = logging.getLogger("llmscope.worker")
ANALYSIS_LOCK_ID = 7731002  # pg advisory lock key (migrations use 7731001)
PRUNE_EVERY = 3600.0  # seconds between retention passes (with LLMSCOPE_RETENTION_DAYS)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def interval(text: str) -> float:
    """argparse type: ``90s``, ``15m``, ``1h``, ``1d`` or plain seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if found is None or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 1h or 1d")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = subparsers.add_parser("worker", help="analyse on a schedule, embed as records arrive")
    worker.add_argument(
        "--analyze-every",
        type=interval,
        default=3600.0,
        metavar="DURATION",
        help="time between analysis runs (default 1h)",
    )
    worker.add_argument(
        "--embed-every",
        type=interval,
        default=60.0,
        metavar="DURATION",
        help="time between passes embedding newly received records (default 1m)",
    )
    worker.add_argument("--host", default="127.0.0.1", help="address of /health and /metrics")
    worker.add_argument("--port", type=port_number, default=5100, help="port (default 5100)")
    add_insecure(worker)
    add_database_url(worker)
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    announce_store(settings, "worker")
    prepare_store(settings)
    refuse_open_bind(args.host, args.insecure, settings.database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    worker = Worker(settings, analyze_every=args.analyze_every, embed_every=args.embed_every)
    try:
        server = worker.serve_http(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"--port {args.port}: {exc.strerror}") from None
    log.info(
        "worker started analyze_every=%ss embed_every=%ss http=%s:%d",
        args.analyze_every,
        args.embed_every,
        args.host,
        server.server_port,
    )
    # With a gateway config: its evaluators judge new records too (evaluate.evaluations.online).
    from llmscope.collector.gateway.config import ConfigError
    from llmscope.evaluate.evaluations.online import BackgroundJudge

    try:
        judge = BackgroundJudge.start_if_configured(settings, worker.metrics)
    except ConfigError as exc:
        server.shutdown()
        raise UsageError(f"LLMSCOPE_GATEWAY_CONFIG: {exc}") from None
    worker.install_signal_handlers()
    try:
        worker.run_forever()
    finally:
        if judge is not None:
            judge.stop()
        server.shutdown()
        worker.engine.dispose()
    log.info("worker stopped")
    return 0


class AnalysisLock:
    """The store-wide "an analysis is running" lock (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """Yields True while this process holds the lock, False when someone else does."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                got = connection.exec_driver_sql(
                    f"SELECT pg_try_advisory_lock({ANALYSIS_LOCK_ID})"
                ).scalar()
                connection.commit()
                try:
                    yield bool(got)
                finally:
                    if got:
                        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({ANALYSIS_LOCK_ID})")
                        connection.commit()
            return
        database = self.engine.url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            yield True  # a private store: nobody else can run on it
            return
        with open(f"{database}.analysis-lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class Worker:
    """The scheduler loop; ``analyse`` and ``embed`` are swappable for tests and benchmarks."""

    def __init__(
        self,
        settings: Settings,
        *,
        analyze_every: float,
        embed_every: float,
        analyse: Callable[[Settings], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from llmscope.db import make_engine

        self.settings = settings
        self.analyze_every = analyze_every
        self.embed_every = embed_every
        self.engine = make_engine(settings.database_url)
        self.lock = AnalysisLock(self.engine)
        self.metrics = Metrics(
            enabled=settings.metrics, max_label_values=settings.metrics_max_label_values
        )
        self.analyse = analyse or _run_analysis
        self.clock = clock
        self.stopping = threading.Event()
        self._watermark: datetime | None = None
        self._signals = 0

    # --- the schedule ---------------------------------------------------------------------
    def run_forever(self) -> None:
        next_analysis = self.clock()  # a first run at start, then every interval
        next_embed = self.clock()
        # without a retention there is nothing to prune, ever
        next_prune = self.clock() if self.settings.retention_days is not None else float("inf")
        while not self.stopping.is_set():
            now = self.clock()
            if now >= next_analysis:
                self.analysis_turn()
                next_analysis = self.clock() + self.analyze_every
            elif now >= next_prune:
                self.prune_turn()
                next_prune = self.clock() + PRUNE_EVERY
            elif now >= next_embed:
                self.embed_turn()
                next_embed = self.clock() + self.embed_every
            wait = min(next_analysis, next_embed, next_prune) - self.clock()
            if wait > 0:
                self.stopping.wait(wait)

    def analysis_turn(self) -> str:
        """One scheduled analysis: ``ok``, ``failed`` or ``skipped`` (lock taken / just run)."""
        with self.lock.hold() as mine:
            outcome = "skipped"
            if not mine:
                log.info("analysis skipped: another worker is running one")
            elif self._recent_run():
                log.info("analysis skipped: another worker stored a run within half an interval")
            else:
                started = time.perf_counter()
                log.info("analysis started")
                try:
                    self.analyse(self.settings)
                    outcome = "ok"
                except EmptyWindows as exc:
                    log.info("analysis skipped: %s", exc)
                    outcome = "skipped"
                except Exception:
                    log.exception("analysis failed")
                    outcome = "failed"
                seconds = time.perf_counter() - started
                log.info("analysis finished outcome=%s seconds=%.1f", outcome, seconds)
                if self.metrics.enabled:
                    self.metrics.worker_run_seconds.observe(seconds)
                    if outcome == "ok":
                        self.metrics.worker_last_success.set(time.time())
        if self.metrics.enabled:
            self.metrics.worker_runs.labels(outcome).inc()
        return outcome

    def _recent_run(self) -> bool:
        from llmscope.db.models import AnalysisRun

        with self.engine.connect() as connection:
            newest = connection.scalar(select(func.max(AnalysisRun.created_at)))
        if newest is None:
            return False
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        return bool(datetime.now(UTC) - newest < timedelta(seconds=self.analyze_every / 2))

    def prune_turn(self, now: datetime | None = None) -> dict[str, int] | None:
        """One retention pass (``LLMSCOPE_RETENTION_DAYS``): the rows deleted per table; None
        without a retention or when the pass failed (logged; the next one tries again)."""
        from llmscope.db.prune import cutoff_before, prune

        days = self.settings.retention_days
        if days is None:
            return None
        try:
            done = prune(self.engine, cutoff_before(days, now))
        except Exception:  # the store may be down for a while: the worker goes on
            log.exception("prune failed")
            return None
        log.info(
            "pruned cutoff=%s %s",
            f"{done.cutoff:%Y-%m-%dT%H:%M:%SZ}",
            " ".join(f"{table}={rows}" for table, rows in done.rows.items()),
        )
        return done.rows

    def embed_turn(self) -> int:
        """Embed the records received since the last pass; returns how many texts were new."""
        from llmscope.analysis.incremental import embed_new_records
        from llmscope.db import make_sessionmaker

        try:
            with make_sessionmaker(self.engine)() as session:
                done = embed_new_records(session, self.settings, received_after=self._watermark)
        except Exception:
            log.exception("embedding pass failed")
            return 0
        if done.newest_received is not None:
            self._watermark = done.newest_received
        if self.metrics.enabled and done.embedded:
            self.metrics.worker_embedded.inc(done.embedded)
        if done.embedded:
            log.info("embedded records=%d texts=%d", done.records, done.embedded)
        return done.embedded

    # --- signals --------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        self.stopping.set()
        if self._signals == 1:
            log.info("stopping after the current step (signal %d; again to stop now)", signum)
            return
        raise SystemExit(143)  # rolls back the open transaction, as a kill would

    # --- /health and /metrics -------------------------------------------------------------
    def serve_http(self, host: str, port: int) -> ThreadingHTTPServer:
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                worker._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, name="llmscope-worker-http", daemon=True
        ).start()
        return server

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            try:
                with self.engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
                _send(request, 200, b'{"status":"ok"}', "application/json")
            except SQLAlchemyError:
                _send(request, 503, b'{"status":"unavailable"}', "application/json")
            return
        if path == "/metrics" and self.metrics.enabled:
            denied = self._denied(request.headers.get("authorization"))
            if denied is not None:
                _send(
                    request,
                    denied[0],
                    json.dumps({"detail": denied[1]}).encode(),
                    "application/json",
                )
                return
            _send(request, 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
            return
        _send(request, 404, b'{"detail":"not found"}', "application/json")

    def _denied(self, authorization: str | None) -> tuple[int, str] | None:
        """Once API keys exist, /metrics needs a key with the read scope (as the collector's)."""
        from llmscope.db import make_sessionmaker
        from llmscope.keys import allows, any_keys, verify_key

        try:
            with make_sessionmaker(self.engine)() as session:
                if not any_keys(session):
                    return None
                kind, _, token = (authorization or "").partition(" ")
                if kind.lower() != "bearer" or not token.strip():
                    return 401, "an API key is required: Authorization: Bearer KEY"
                scope = verify_key(session, token.strip())
                session.commit()
        except SQLAlchemyError:
            return 503, "the store is unavailable; retry later"
        if scope is None:
            return 401, "the API key is not valid (unknown or revoked)"
        if not allows(scope, "read"):
            return 403, f"this key has scope {scope!r}; the call needs 'read'"
        return None


def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    request.send_response(status)
    request.send_header("content-type", content_type)
    request.send_header("content-length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def _run_analysis(settings: Settings) -> Any:
    from llmscope.analysis.job import run_analysis

    return run_analysis(settings, progress=False)
