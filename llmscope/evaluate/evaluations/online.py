"""Online judging: ``llmscope serve`` evaluates new records in the background.

:class:`OnlineJudge` runs beside the gateway in the collector's event loop, never on a
request's path: a poller reads records by arrival (``received_at``) from the store, whatever
door they came in by, and hands the (record, judge) pairs to a bounded queue that
``LLMSCOPE_EVAL_CONCURRENCY`` workers drain; built-in checks are computed and stored by the
poller at once. When the queue is full the poller waits, and new records wait in the store: ingest
never waits for judging. The evaluators are the gateway's, so a config reload changes them.

Restart-safe: the store is the queue. On start, the poller looks back
``LLMSCOPE_EVAL_ONLINE_LOOKBACK_HOURS`` for records lacking a verdict (work a crash left), and
every claim lease (``LLMSCOPE_EVAL_CLAIM_LEASE_S``) it reads again from the oldest record whose
claim has run out (left by a dead process: a live one renews its claims). A judge that cannot
be reached is paused (5 s, doubling up to 60 s) and its records are read again once it is back;
once the day's token budget is spent, the judges pause until the next UTC day. A ``scope:
session`` judge's sessions are swept on every poll: those whose newest record arrived between
the last sweep's cutoff and now minus ``idle_seconds`` (on start, within the lookback). Verdicts go
through claims (``store.claim``), so two judges (this one, another worker, ``llmscope
evaluate``) never judge a record twice, and a judge's answer that came back is never asked for
again (``judge.answer_key``); only calls still in flight when a process dies are asked again.

Other processes can run it too: ``OnlineJudge(sessionmaker, gateway, settings)``, then
``await start()`` / ``await stop()`` inside their event loop, or, without a loop of their own
(``llmscope worker``), ``BackgroundJudge.start_if_configured(settings)`` and ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.gateway.evaluators import LLMJudge
from llmscope.collector.gateway.service import Gateway
from llmscope.collector.ingest import Recorder, RecordWriter
from llmscope.collector.masking import sessionmaker_for
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import Record
from llmscope.evaluate.evaluations import sessions, store
from llmscope.evaluate.evaluations.runner import (
    Clock,
    Judging,
    Work,
    selects,
    settled_ids,
    unjudged_sessions,
    utc_now,
)
from llmscope.evaluate.evaluations.sessions import IdleSession
from llmscope.evaluate.evaluations.store import Candidate
from llmscope.metrics import Metrics

log = logging.getLogger("llmscope.evaluations.online")

PAGE = 500
SETTLE = timedelta(seconds=2)  # rows are read once they are this old: the recorder has flushed
BACKOFF_MIN, BACKOFF_MAX = 5.0, 60.0


class OnlineJudge:
    """Judges new records in the background of one process."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        gateway: Gateway,
        settings: Settings,
        *,
        poll_interval: float = 1.0,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.factory = factory
        self.metrics = metrics or Metrics(enabled=False)
        self.gateway = gateway
        self.clock = clock
        self.poll_interval = poll_interval
        self.lookback = timedelta(hours=settings.eval_online_lookback_hours)
        self.lease = timedelta(seconds=settings.eval_claim_lease_s)
        self.concurrency = settings.eval_concurrency
        self.queue_size = settings.eval_queue_size
        self.max_tokens_per_day = settings.eval_max_tokens_per_day
        self.judging: Judging | None = None
        self.queue: asyncio.Queue[Work] | None = None
        # (judge name, version) -> the idle cutoff its last session sweep read up to
        self.session_marks: dict[tuple[str, str], datetime] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.mark: tuple[datetime, str] | None = None
        self.rescan_from: datetime | None = None
        self.next_sweep: datetime | None = None
        self.paused_until: dict[str, datetime] = {}  # endpoint -> when to try again
        self.backoff: dict[str, float] = {}
        self.budget_day: datetime | None = None
        self.judged = 0  # verdicts written by this process (judges and checks)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.judging = Judging(
            self.factory,
            self.gateway,
            concurrency=self.concurrency,
            max_tokens_per_day=self.max_tokens_per_day,
            lease=self.lease,
            clock=self.clock,
        )
        self.queue = asyncio.Queue(self.queue_size)
        now = self.clock()
        self.mark = (now - self.lookback, "")
        self.next_sweep = now + self.lease
        self.tasks = [asyncio.create_task(self._poll(), name="llmscope-eval-poll")]
        self.tasks += [
            asyncio.create_task(self._work(), name=f"llmscope-eval-{i}")
            for i in range(self.concurrency)
        ]
        log.info(
            "online judge started concurrency=%d queue=%d lookback=%s",
            self.concurrency,
            self.queue_size,
            self.lookback,
        )

    async def stop(self) -> None:
        """Stop at once; claims of calls cut short are given back (the rest stays pending)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    @property
    def pending(self) -> int:
        return 0 if self.queue is None else self.queue.qsize()

    # --- the poller -----------------------------------------------------------------------
    async def _poll(self) -> None:
        while True:
            try:
                found = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not end online judging
                log.exception("online judge poll failed; retrying")
                found = 0
            if not found:
                await asyncio.sleep(self.poll_interval)

    def _rewind(self, to: datetime) -> None:
        if self.mark is not None and to < self.mark[0]:
            self.mark = (to, "")

    async def poll_once(self) -> int:
        """Read one page of new records and schedule their evaluations; how many were read."""
        assert self.judging is not None and self.queue is not None and self.mark is not None
        now = self.clock()
        evaluators = list(self.gateway.config.evaluators)
        self._new_day(now)
        if self.next_sweep is not None and now >= self.next_sweep:
            # claims left by a dead process have run out: read their records again
            expired = await asyncio.to_thread(self._oldest_expired, now)
            if expired is not None:
                self._rewind(expired)
            self.next_sweep = now + self.lease
        if self.rescan_from is not None and not self._any_paused(now):
            self._rewind(self.rescan_from)
            self.rescan_from = None
        if not evaluators:
            self.mark = (max(self.mark[0], now - SETTLE), "")
            return 0
        for evaluator in evaluators:
            if isinstance(evaluator, LLMJudge) and evaluator.per_session:
                await self._sweep_sessions(evaluator, now)
        page = await asyncio.to_thread(self._page, self.mark, now - SETTLE)
        if not page:
            return 0
        for evaluator in evaluators:
            chosen = [c for c in page if selects(evaluator, c)]
            if not chosen:
                continue
            done = await asyncio.to_thread(
                settled_ids, self.judging, evaluator, [c["id"] for c in chosen]
            )
            todo = [c for c in chosen if c["id"] not in done]
            if not isinstance(evaluator, LLMJudge):
                passed = await self.judging.store_checks(evaluator, todo)
                self.judged += len(passed)
                self.metrics.evaluated(evaluator.name, "pass", sum(passed))
                self.metrics.evaluated(evaluator.name, "fail", len(passed) - sum(passed))
                continue
            for candidate in todo:
                if self._held_back(evaluator, candidate, now):
                    continue
                await self.queue.put((evaluator, candidate, None))  # waits while it is full
        self.mark = (page[-1]["received_at"], page[-1]["id"])
        return len(page)

    async def _sweep_sessions(self, evaluator: LLMJudge, now: datetime) -> None:
        """Queue the sessions that went idle since this judge's last sweep (on start: within
        the lookback) and lack its verdict."""
        assert self.judging is not None and self.queue is not None
        key = (evaluator.name, evaluator.version)
        before = now - timedelta(seconds=evaluator.idle_seconds)
        after = self.session_marks.get(key, now - self.lookback)
        if before <= after:
            return
        paused = self.paused_until.get(evaluator.endpoint)
        if self.judging.budget_exhausted or (paused is not None and paused > now):
            return  # the mark stays: these sessions are read again once judging resumes

        def read() -> list[IdleSession]:
            with self.factory() as session:
                return sessions.first_records(
                    session, sessions.idle_between(session, after, before)
                )

        found = await asyncio.to_thread(read)
        _, todo = await asyncio.to_thread(unjudged_sessions, self.judging, evaluator, found)
        for idle in todo:
            await self.queue.put((evaluator, idle.first, idle.session_id))
        self.session_marks[key] = before

    def _oldest_expired(self, now: datetime) -> datetime | None:
        with self.factory() as session:
            return store.oldest_expired(session, now - self.lookback, now)

    def _page(self, mark: tuple[datetime, str], before: datetime) -> list[Candidate]:
        stamp, rid = mark
        query = (
            select(*store.CANDIDATE_COLUMNS)
            .where(
                store.eligible(),
                or_(
                    Record.received_at > stamp,
                    and_(Record.received_at == stamp, Record.id > rid),
                ),
                Record.received_at < before,
            )
            .order_by(Record.received_at, Record.id)
            .limit(PAGE)
        )
        with self.factory() as session:
            return [store.candidate_of(r) for r in session.execute(query).all()]

    # --- pauses: an unreachable judge, a spent budget -------------------------------------
    def _any_paused(self, now: datetime) -> bool:
        return any(until > now for until in self.paused_until.values()) or bool(
            self.judging and self.judging.budget_exhausted
        )

    def _held_back(self, evaluator: LLMJudge, candidate: Candidate, now: datetime) -> bool:
        assert self.judging is not None
        paused = self.paused_until.get(evaluator.endpoint)
        if self.judging.budget_exhausted or (paused is not None and paused > now):
            self._remember(candidate["received_at"])
            return True
        return False

    def _remember(self, received_at: datetime) -> None:
        if self.rescan_from is None or received_at < self.rescan_from:
            self.rescan_from = received_at

    def _new_day(self, now: datetime) -> None:
        assert self.judging is not None
        day = store.day_start(now)
        if self.budget_day is None:
            self.budget_day = day
        elif day != self.budget_day:
            self.budget_day = day
            if self.judging.budget_exhausted:
                log.info("a new day's judge token budget: judging resumes")
            self.judging.budget_exhausted = False

    # --- the workers ----------------------------------------------------------------------
    async def _work(self) -> None:
        assert self.judging is not None and self.queue is not None
        while True:
            evaluator, candidate, session_id = await self.queue.get()
            try:
                now = self.clock()
                if self._held_back(evaluator, candidate, now):
                    self._retry_sessions(evaluator, session_id)
                    continue
                outcome = await self.judging.judge(evaluator, candidate, session_id)
                if outcome in ("pass", "fail", "error"):
                    self.judged += 1
                    self.metrics.evaluated(evaluator.name, outcome)
                    self.backoff.pop(evaluator.endpoint, None)
                elif outcome == "unavailable":
                    self._remember(candidate["received_at"])
                    self._retry_sessions(evaluator, session_id)
                    self._pause(evaluator.endpoint)
                elif outcome == "budget":
                    self._remember(candidate["received_at"])
                    self._retry_sessions(evaluator, session_id)
                    log.warning("online judge: %s", self.judging.budget.message())
            except asyncio.CancelledError:
                raise
            except Exception:
                self._remember(candidate["received_at"])
                self._retry_sessions(evaluator, session_id)
                log.exception("online judge failed on record %s", candidate["id"])
            finally:
                self.queue.task_done()

    def _retry_sessions(self, evaluator: LLMJudge, session_id: str | None) -> None:
        """A session left unjudged: the judge's next sweep reads the whole lookback again
        (those already judged are skipped by their verdicts)."""
        if session_id is not None:
            self.session_marks.pop((evaluator.name, evaluator.version), None)

    def _pause(self, endpoint: str) -> None:
        assert self.judging is not None
        now = self.clock()
        # an unavailable call counts towards "down" in a run; online, the pause does that
        self.judging.failures[endpoint] = 0
        if self.paused_until.get(endpoint, now) > now:
            return  # calls already in flight when the pause began: one pause, not one each
        wait = min(self.backoff.get(endpoint, BACKOFF_MIN / 2) * 2, BACKOFF_MAX)
        self.backoff[endpoint] = wait
        self.paused_until[endpoint] = now + timedelta(seconds=wait)
        log.warning(
            "online judge: endpoint %s unreachable (%s); pausing %.0f s",
            endpoint,
            self.judging.last_error.get(endpoint, ""),
            wait,
        )


async def drain(judge: OnlineJudge, timeout: float = 30.0) -> None:
    """Wait until the queue is empty (tests and benchmarks)."""
    assert judge.queue is not None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(judge.queue.join(), timeout)


class BackgroundJudge:
    """An :class:`OnlineJudge` with its own gateway, recorder and event loop in a thread, for
    processes that are not the collector (``llmscope worker``). Start it with
    :meth:`start_if_configured`; :meth:`stop` gives back unfinished claims and joins."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="llmscope-eval-loop")
        self.judge: OnlineJudge | None = None
        self.engine: Engine | None = None
        self.recorder: Recorder | None = None
        self.gateway: Gateway | None = None

    @classmethod
    def start_if_configured(
        cls, settings: Settings, metrics: Metrics | None = None
    ) -> BackgroundJudge | None:
        """Judging in the background when ``LLMSCOPE_GATEWAY_CONFIG`` is set; else None.

        The evaluators are read (and hot-reloaded) from that file; an invalid file raises
        ``ConfigError``."""
        if settings.gateway_config is None:
            return None
        background = cls(settings, metrics)
        background.thread.start()
        asyncio.run_coroutine_threadsafe(background._start(), background.loop).result(60)
        return background

    async def _start(self) -> None:
        self.engine = make_engine(self.settings.database_url)
        factory = sessionmaker_for(self.engine, self.settings)
        self.recorder = Recorder(factory, spool_dir=self.settings.data_dir / "spool")
        self.recorder.start()
        assert self.settings.gateway_config is not None
        writer = RecordWriter.from_settings(self.settings, self.recorder)
        self.gateway = Gateway(self.settings.gateway_config, writer)
        await self.gateway.start()
        self.judge = OnlineJudge(factory, self.gateway, self.settings, metrics=self.metrics)
        await self.judge.start()

    async def _stop(self) -> None:
        if self.judge is not None:
            await self.judge.stop()
        if self.gateway is not None:
            await self.gateway.stop()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)
        if self.recorder is not None:
            self.recorder.stop()  # the judge's call records reach the store
        if self.engine is not None:
            self.engine.dispose()
