"""Judging records: the work shared by ``llmscope evaluate`` and the online judge.

:class:`Judging` evaluates one record with one evaluator: a built-in check is computed and
stored at once; a judge's record is claimed (``store.claim``), graded through the gateway and
its verdict written, or its claim given back when the judge cannot be reached. While a judge
call runs its claim is renewed every third of the lease, and a judge's answer already stored
under the record's idempotency key (``judge.answer_key``: left by a process that died before
writing the verdict) is applied instead of asking again. At most ``concurrency`` judge calls
are in flight. The per-day token budget
(``LLMSCOPE_EVAL_MAX_TOKENS_PER_DAY``, judge prompt + answer tokens per UTC day, counted from
the store) is checked before each call; once it would be exceeded, judging stops and says so.

:func:`evaluate_range` judges the sampled records of a time range that lack a verdict for each
evaluator's current version (idempotent: a second run finds nothing to do and calls no judge);
a ``scope: session`` judge judges the idle sessions that started in the range
(``sessions``).
The store is only touched from worker threads, so the event loop (the collector's, online)
never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.gateway.evaluators import Evaluator, LLMJudge, in_sample
from llmscope.collector.gateway.service import Gateway
from llmscope.db import session_scope
from llmscope.db.models import Record
from llmscope.evaluate.evaluations import sessions, store
from llmscope.evaluate.evaluations.checks import run_check
from llmscope.evaluate.evaluations.judge import (
    MAX_OUTPUT_TOKENS,
    JudgeUnavailable,
    answer_key,
    call_ids,
    judge_answer,
    question_of,
    stored_reply,
)
from llmscope.evaluate.evaluations.sessions import IdleSession, session_transcript
from llmscope.evaluate.evaluations.store import Candidate

log = logging.getLogger("llmscope.evaluations")

Clock = Callable[[], datetime]
# what a judge worker takes: (judge, record, the session id when judging its whole session)
Work = tuple[LLMJudge, Candidate, str | None]
T = TypeVar("T")
PAGE = 500
DOWN_AFTER = 3  # consecutive unreachable calls before an endpoint counts as down for a run


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tally:
    """What happened to one evaluator's records in a run."""

    evaluated: int = 0  # new verdicts (pass or fail)
    failed: int = 0
    errors: int = 0  # judge answers that did not parse, twice
    already: int = 0  # had a verdict (or a live claim) for this version
    pending: int = 0  # left for later: budget reached or judge unreachable
    tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RunResult:
    tallies: dict[str, Tally] = field(default_factory=dict)
    stopped: str | None = None  # why judging stopped early, in words
    unreachable: dict[str, str] = field(default_factory=dict)  # endpoint -> last error

    def tally(self, name: str) -> Tally:
        return self.tallies.setdefault(name, Tally())


class Budget:
    """The per-day token budget of judge calls, shared by the calls of one process."""

    def __init__(self, limit: int | None, factory: sessionmaker[Session], clock: Clock) -> None:
        self.limit = limit
        self.factory = factory
        self.clock = clock
        self.day: datetime | None = None
        self.used = 0
        self.reserved = 0
        # One reader of the day's spending: a call that came while it was being read would
        # otherwise count from 0 (16 workers start at once) and pass the cap.
        self._reading = asyncio.Lock()

    async def reserve(self, estimate: int) -> bool:
        """Room for a call of about ``estimate`` tokens today? (reserves it if so)."""
        if self.limit is None:
            return True
        day = store.day_start(self.clock())
        if day != self.day:
            async with self._reading:
                if day != self.day:
                    self.used = await asyncio.to_thread(self._used_today, day)
                    self.day = day
        if self.used + self.reserved + estimate > self.limit:
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: int, actual: int) -> None:
        if self.limit is None:
            return
        self.reserved -= estimate
        self.used += actual

    def _used_today(self, day: datetime) -> int:
        with self.factory() as session:
            return store.tokens_since(session, day)

    def message(self) -> str:
        return (
            f"daily judge token budget reached (LLMSCOPE_EVAL_MAX_TOKENS_PER_DAY={self.limit}, "
            f"{self.used} used today); the rest stays pending until tomorrow"
        )


class Judging:
    """Evaluates (record, evaluator) pairs and stores the verdicts; safe to share in one loop."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        gateway: Gateway | None,
        *,
        concurrency: int = 16,
        max_tokens_per_day: int | None = None,
        lease: timedelta = store.LEASE,
        clock: Clock = utc_now,
    ) -> None:
        self.factory = factory
        self.gateway = gateway
        self.clock = clock
        self.lease = lease
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.budget = Budget(max_tokens_per_day, factory, clock)
        self.budget_exhausted = False
        self.tokens: dict[str, int] = {}  # evaluator -> judge tokens spent by this process
        self.failures: dict[str, int] = {}  # endpoint -> consecutive unreachable calls
        self.last_error: dict[str, str] = {}

    # --- built-in checks ------------------------------------------------------------------
    def check_rows(
        self, evaluator: Evaluator, candidates: Sequence[Candidate]
    ) -> list[dict[str, Any]]:
        """Verdict rows of a built-in check (records lacking what it needs are skipped)."""
        now = self.clock()
        name, version = evaluator.name, evaluator.version
        rows = []
        for c in candidates:
            verdict = run_check(evaluator, c["response"], c["latency_ms"])
            if verdict is None:
                continue
            rows.append(
                {
                    "record_id": c["id"],
                    "evaluator": name,
                    "version": version,
                    "status": "done",
                    "score": verdict.score,
                    "passed": verdict.passed,
                    "justification": verdict.justification,
                    "created_at": now,
                    "latency_ms": 0.0,
                }
            )
        return rows

    async def store_checks(
        self, evaluator: Evaluator, candidates: Sequence[Candidate]
    ) -> list[bool]:
        """Compute and store a built-in check's verdicts; the ``passed`` of those stored.

        Both in a worker thread: a check reads the whole answer (``pii`` masks it, ``regex``
        and ``json`` parse it), CPU work the event loop must not wait for.
        """

        def compute_and_write() -> list[dict[str, Any]]:
            rows = self.check_rows(evaluator, candidates)
            with session_scope(self.factory) as session:
                store.store_verdicts(session, rows)
            return rows

        rows = await asyncio.to_thread(compute_and_write)
        return [bool(r["passed"]) for r in rows]

    # --- the judge ------------------------------------------------------------------------
    def endpoint_down(self, endpoint: str) -> bool:
        return self.failures.get(endpoint, 0) >= DOWN_AFTER

    async def judge(
        self, evaluator: LLMJudge, candidate: Candidate, session_id: str | None = None
    ) -> str:
        """Judge one record, or with ``session_id`` (a ``scope: session`` judge, ``candidate``
        the session's first record) the whole conversation. Returns what happened: ``pass``,
        ``fail``, ``error``, ``taken`` (someone else has it), ``budget`` (no budget left) or
        ``unavailable``."""
        if self.gateway is None:
            raise RuntimeError("judging needs the gateway (a config with the judge's endpoint)")
        if session_id is None and candidate["response"] is None:
            return "skipped"
        async with self.slots:
            if self.budget_exhausted:
                return "budget"
            if session_id is not None:
                question = await asyncio.to_thread(self._transcript, session_id)
                answer = ""
            else:
                question = question_of(candidate["prompt"], candidate["messages"])
                answer = candidate["response"] or ""
            estimate = (len(question) + len(answer)) // 4 + 400 + MAX_OUTPUT_TOKENS
            if not await self.budget.reserve(estimate):
                self.budget_exhausted = True
                return "budget"
            row_id = await asyncio.to_thread(self._claim, candidate["id"], evaluator)
            if row_id is None:
                self.budget.settle(estimate, 0)
                return "taken"
            key = answer_key(candidate["id"], evaluator)
            try:
                earlier = await asyncio.to_thread(self._earlier, key)
                work = judge_answer(
                    self.gateway,
                    evaluator,
                    question,
                    answer,
                    key=key,
                    earlier=earlier,
                    conversation=session_id is not None,
                )
                result = await self._holding(row_id, work)
            except JudgeUnavailable as exc:
                self.budget.settle(estimate, 0)
                self.failures[evaluator.endpoint] = self.failures.get(evaluator.endpoint, 0) + 1
                self.last_error[evaluator.endpoint] = str(exc)[:500]
                await asyncio.to_thread(self._release, row_id)
                return "unavailable"
            except BaseException:
                self.budget.settle(estimate, 0)
                await asyncio.to_thread(self._release, row_id)
                raise
            self.failures[evaluator.endpoint] = 0
            tokens = result.input_tokens + result.output_tokens
            self.budget.settle(estimate, tokens)
            self.tokens[evaluator.name] = self.tokens.get(evaluator.name, 0) + tokens
            passed = None if result.score is None else result.score >= evaluator.pass_threshold
            spec = self.gateway.config.endpoint(evaluator.endpoint)
            values = {
                "status": "error" if result.error else "done",
                "score": None if result.score is None else float(result.score),
                "passed": passed,
                "justification": result.justification,
                "error": result.error,
                "judge_model": result.model or (spec.model.name if spec else None),
                "judge_record_id": result.record_id,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
                "latency_ms": round(result.latency_ms, 3),
            }
            await asyncio.to_thread(self._finish, row_id, values)
            if result.error:
                return "error"
            return "pass" if passed else "fail"

    async def _holding(self, row_id: int, work: Awaitable[T]) -> T:
        """Await ``work`` while renewing the claim ``row_id`` every third of the lease."""
        renewing = asyncio.create_task(self._renew_every(row_id))
        try:
            return await work
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _renew_every(self, row_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await asyncio.to_thread(self._renew, row_id)
            except Exception:  # a store hiccup: the next renewal tries again within the lease
                log.warning("could not renew judge claim %s", row_id, exc_info=True)

    def _renew(self, row_id: int) -> None:
        with session_scope(self.factory) as session:
            store.renew(session, row_id, self.clock(), self.lease)

    def _earlier(self, key: str) -> dict[str, dict[str, Any] | None]:
        """What the store holds under ``key``'s call ids: the judge's answer, or None for a
        call that got none."""
        with self.factory() as session:
            rows = store.recorded_calls(session, call_ids(key))
        return {
            rid: stored_reply(r.response, r.input_tokens, r.output_tokens, r.model)
            if r.status == "ok" and r.response is not None
            else None
            for rid, r in rows.items()
        }

    def _transcript(self, session_id: str) -> str:
        with self.factory() as session:
            return session_transcript(session, session_id)

    def _claim(self, record_id: str, evaluator: LLMJudge) -> int | None:
        with session_scope(self.factory) as session:
            return store.claim(
                session, record_id, evaluator.name, evaluator.version, self.clock(), self.lease
            )

    def _release(self, row_id: int) -> None:
        with session_scope(self.factory) as session:
            store.release(session, row_id)

    def _finish(self, row_id: int, values: dict[str, Any]) -> None:
        with session_scope(self.factory) as session:
            store.finish(session, row_id, self.clock(), **values)


def per_session(evaluator: Evaluator) -> bool:
    """A ``scope: session`` judge: it looks at whole conversations, not at records."""
    return isinstance(evaluator, LLMJudge) and evaluator.per_session


def selects_session(evaluator: LLMJudge, idle: IdleSession) -> bool:
    """Whether a session judge should look at ``idle``: its first record passes the filter,
    and the session id falls in the sample."""
    first = idle.first
    if evaluator.filter is not None and not evaluator.filter.matches(
        first["endpoint"], first["template_name"], first["template_version"], first["model"]
    ):
        return False
    return in_sample(evaluator.name, idle.session_id, evaluator.sample_rate)


def unjudged_sessions(
    judging: Judging, evaluator: LLMJudge, found: Sequence[IdleSession]
) -> tuple[int, list[IdleSession]]:
    """How many of ``found`` ``evaluator`` selects, and those of them that lack its verdict (or
    a live claim)."""
    chosen = [idle for idle in found if selects_session(evaluator, idle)]
    done = settled_ids(judging, evaluator, [idle.first["id"] for idle in chosen])
    return len(chosen), [idle for idle in chosen if idle.first["id"] not in done]


def selects(evaluator: Evaluator, candidate: Candidate) -> bool:
    """Whether ``evaluator`` should look at ``candidate``: it has what the evaluator needs,
    passes the filter and falls in the sample (never a session judge: it looks at sessions)."""
    if per_session(evaluator):
        return False
    needed = candidate["latency_ms"] if evaluator.needs == "latency" else candidate["response"]
    return needed is not None and evaluator.selects(
        candidate["id"],
        candidate["endpoint"],
        candidate["template_name"],
        candidate["template_version"],
        candidate["model"],
    )


def settled_ids(judging: Judging, evaluator: Evaluator, record_ids: list[str]) -> set[str]:
    with judging.factory() as session:
        return store.settled(
            session, evaluator.name, evaluator.version, record_ids, judging.clock()
        )


async def _queue_sessions(
    judging: Judging,
    evaluator: LLMJudge,
    since: datetime | None,
    until: datetime | None,
    queue: asyncio.Queue[Work | None],
    result: RunResult,
    progress: Callable[[str], None] | None,
) -> None:
    """Queue the idle sessions started in [since, until) that ``evaluator`` has not judged."""
    before = judging.clock() - timedelta(seconds=evaluator.idle_seconds)
    after_id: str | None = None
    tally = result.tally(evaluator.name)

    def read(after: str | None) -> tuple[list[str], list[IdleSession]]:
        with judging.factory() as session:
            ids = sessions.idle_started(session, before, since, until, after)
            return ids, sessions.first_records(session, ids)

    while True:
        ids, found = await asyncio.to_thread(read, after_id)
        if not ids:
            return
        after_id = ids[-1]
        chosen, todo = await asyncio.to_thread(unjudged_sessions, judging, evaluator, found)
        tally.already += chosen - len(todo)
        for idle in todo:
            await queue.put((evaluator, idle.first, idle.session_id))
        if progress is not None:
            progress(f"read {len(ids)} sessions")


def _page(
    factory: sessionmaker[Session],
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, str] | None,
) -> list[Candidate]:
    query = select(*store.CANDIDATE_COLUMNS).where(store.eligible())
    if since is not None:
        query = query.where(Record.timestamp >= since)
    if until is not None:
        query = query.where(Record.timestamp < until)
    if after is not None:
        stamp, rid = after
        query = query.where(
            or_(Record.timestamp > stamp, and_(Record.timestamp == stamp, Record.id > rid))
        )
    with factory() as session:
        rows = session.execute(query.order_by(Record.timestamp, Record.id).limit(PAGE)).all()
    return [store.candidate_of(r) for r in rows]


async def evaluate_range(
    judging: Judging,
    evaluators: Sequence[Evaluator],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Evaluate every sampled record in [since, until) lacking a verdict of each evaluator's
    current version. Never raises for a judge's trouble: it is in the result."""
    result = RunResult()
    for evaluator in evaluators:
        result.tally(evaluator.name)
    concurrency = judging.concurrency
    queue: asyncio.Queue[Work | None] = asyncio.Queue(2 * concurrency)

    async def worker() -> None:
        while (item := await queue.get()) is not None:
            evaluator, candidate, session_id = item
            tally = result.tally(evaluator.name)
            if judging.budget_exhausted or judging.endpoint_down(evaluator.endpoint):
                tally.pending += 1
                continue
            outcome = await judging.judge(evaluator, candidate, session_id)
            if outcome in ("pass", "fail"):
                tally.evaluated += 1
                tally.failed += outcome == "fail"
            elif outcome == "error":
                tally.errors += 1
            elif outcome == "taken":
                tally.already += 1
            elif outcome in ("budget", "unavailable"):
                tally.pending += 1

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        after: tuple[datetime, str] | None = None
        while True:
            page = await asyncio.to_thread(_page, judging.factory, since, until, after)
            if not page:
                break
            after = (page[-1]["timestamp"], page[-1]["id"])
            for evaluator in evaluators:
                chosen = [c for c in page if selects(evaluator, c)]
                done = await asyncio.to_thread(
                    settled_ids, judging, evaluator, [c["id"] for c in chosen]
                )
                todo = [c for c in chosen if c["id"] not in done]
                tally = result.tally(evaluator.name)
                tally.already += len(chosen) - len(todo)
                if not isinstance(evaluator, LLMJudge):
                    verdicts = await judging.store_checks(evaluator, todo)
                    tally.evaluated += len(verdicts)
                    tally.failed += sum(not v for v in verdicts)
                    continue
                for candidate in todo:
                    await queue.put((evaluator, candidate, None))
            if progress is not None:
                progress(f"read {len(page)} records")
        for evaluator in evaluators:
            if isinstance(evaluator, LLMJudge) and evaluator.per_session:
                await _queue_sessions(judging, evaluator, since, until, queue, result, progress)
    finally:
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    for evaluator in evaluators:
        result.tally(evaluator.name).tokens = judging.tokens.get(evaluator.name, 0)
        if isinstance(evaluator, LLMJudge) and judging.endpoint_down(evaluator.endpoint):
            result.unreachable[evaluator.endpoint] = judging.last_error.get(evaluator.endpoint, "")
    if judging.budget_exhausted:
        result.stopped = judging.budget.message()
    elif result.unreachable:
        names = ", ".join(sorted(result.unreachable))
        result.stopped = f"judge endpoint unreachable: {names}; its records stay pending"
    return result
