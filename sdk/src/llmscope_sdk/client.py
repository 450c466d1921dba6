"""``Client``: what an app calls to send records and feedback to the collector.

Records and feedback are queued in memory and a background thread sends them in batches
(``POST /api/v1/records``, ``POST /api/v1/records/{id}/feedback``), retrying with backoff.
It never raises into the app and never blocks it: the buffer is bounded (the oldest items go
first when it is full, and are counted in ``dropped``), and pending items are flushed, within a
time limit, when the interpreter exits. What the app logs is validated here with the same
shapes the collector uses (``llmscope_sdk.records``), so a bad record is dropped with a warning
that names the field, never its content.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from llmscope_sdk.records import FeedbackIn, RecordIn
from llmscope_sdk.settings import resolve

__all__ = ["Client"]

log = logging.getLogger("llmscope.sdk")
_RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class _Item:
    kind: str  # "record" | "feedback"
    body: dict[str, Any]
    record_id: str


class _Undeliverable(Exception):
    """The collector refused the item for good (a 4xx that a retry cannot fix)."""


class Client:
    """Sends records and feedback to an llmscope collector from a background thread.

    ``url`` and ``api_key`` default to ``LLMSCOPE_COLLECTOR_URL`` and
    ``LLMSCOPE_COLLECTOR_API_KEY``. ``batch_size`` records go in one request; a batch waits at
    most ``flush_interval`` seconds; ``max_buffer`` items are kept while the collector is
    unreachable; a failed request is tried ``max_retries`` more times, the waits doubling from
    ``backoff`` seconds; what is left at exit is flushed for up to ``exit_timeout`` seconds.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        max_retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 5.0,
        exit_timeout: float = 5.0,
    ) -> None:
        target = resolve(url, api_key)
        self.url = target.url
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.exit_timeout = exit_timeout
        self.dropped = 0
        self.sent = 0
        self._buffer: deque[_Item] = deque(maxlen=max(1, max_buffer))
        self._pending = 0  # buffered plus in flight
        self._cond = threading.Condition()
        self._closed = False
        self._closing = threading.Event()  # cuts retry waits short once the app exits
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            headers=target.headers,
        )
        self._thread = threading.Thread(target=self._run, name="llmscope-sdk", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- what the app calls ------------------------------------------------------------------

    def log(self, **fields: Any) -> str:
        """Queue one record (the fields of a record, see ``RecordIn``); returns its id at once."""
        record_id = str(fields.get("id") or uuid.uuid4())
        try:
            fields["id"] = record_id
            fields.setdefault("timestamp", datetime.now(UTC))
            record = RecordIn.model_validate(fields)
            self._put(_Item("record", record.model_dump(mode="json", exclude_none=True), record_id))
        except Exception as exc:  # never into the app: a bad record is logged and dropped
            log.warning("llmscope: record %s not logged: %s", record_id, _reason(exc))
            self._count_dropped()
        return record_id

    def feedback(
        self,
        record_id: str,
        value: Literal["up", "down"] | float,
        *,
        tags: list[str] | None = None,
        comment: str | None = None,
        source: str = "user",
    ) -> None:
        """Queue feedback (``"up"``, ``"down"`` or a number) on a record or a span id."""
        try:
            event = FeedbackIn(value=value, tags=tags or [], comment=comment, source=source)
            self._put(_Item("feedback", event.model_dump(mode="json"), str(record_id)))
        except Exception as exc:
            log.warning("llmscope: feedback on %s not logged: %s", record_id, _reason(exc))
            self._count_dropped()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is sent (or dropped); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush (for up to ``timeout``, default ``exit_timeout`` seconds) and stop."""
        if self._closed:
            return
        self._closing.set()
        self.flush(self.exit_timeout if timeout is None else timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(1.0)
        self._http.close()
        atexit.unregister(self.close)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the background thread ---------------------------------------------------------------

    def _count_dropped(self) -> None:
        with self._cond:
            self.dropped += 1

    def _put(self, item: _Item) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the client is closed")
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1  # the deque drops the oldest item
                self._pending -= 1
            self._buffer.append(item)
            self._pending += 1
            if len(self._buffer) >= self.batch_size:
                self._cond.notify_all()

    def _take(self) -> list[_Item]:
        """The next batch: consecutive records (up to batch_size), or one feedback event."""
        with self._cond:
            if not self._buffer and not self._closed:
                self._cond.wait(self.flush_interval)
            batch: list[_Item] = []
            while self._buffer and len(batch) < self.batch_size:
                if batch and (self._buffer[0].kind != "record" or batch[0].kind != "record"):
                    break
                batch.append(self._buffer.popleft())
            return batch

    def _done(self, count: int, *, delivered: bool) -> None:
        with self._cond:
            self._pending -= count
            if delivered:
                self.sent += count
            else:
                self.dropped += count
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                with self._cond:
                    if self._closed:
                        return
                continue
            try:
                self._deliver(batch)
            except Exception as exc:  # the thread must outlive any surprise
                log.warning("llmscope: %d item(s) dropped: %s", len(batch), exc)
                self._done(len(batch), delivered=False)

    def _deliver(self, batch: list[_Item]) -> None:
        try:
            self._send_with_retries(batch)
        except _Undeliverable as exc:
            if len(batch) > 1:
                # One invalid record refuses the whole batch: send the others one by one.
                for item in batch:
                    self._deliver([item])
                return
            log.warning("llmscope: %s %s refused: %s", batch[0].kind, batch[0].record_id, exc)
            self._done(1, delivered=False)
            return
        self._done(len(batch), delivered=True)

    def _send_with_retries(self, batch: list[_Item]) -> None:
        wait = self.backoff
        for attempt in range(self.max_retries + 1):
            try:
                response = self._send(batch)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return
                if response.status_code not in _RETRYABLE:
                    raise _Undeliverable(f"HTTP {response.status_code}: {response.text[:200]}")
                problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    wait = max(wait, float(retry_after))
            if attempt == self.max_retries:
                raise RuntimeError(f"collector unreachable after {attempt + 1} tries ({problem})")
            self._closing.wait(wait)
            wait *= 2

    def _send(self, batch: list[_Item]) -> httpx.Response:
        if batch[0].kind == "feedback":
            item = batch[0]
            return self._http.post(f"/api/v1/records/{item.record_id}/feedback", json=item.body)
        return self._http.post("/api/v1/records", json={"records": [i.body for i in batch]})


def _reason(exc: Exception) -> str:
    """Why a record was refused, without echoing its content (prompts stay out of logs)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
    return type(exc).__name__
