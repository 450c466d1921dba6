"""Recording off the request path: a bounded queue, a background batch writer and a spool.

Anything in the collector that must store records without making its caller wait (the gateway,
and any receiver that wants the same guarantees) hands finished ``records`` rows to a
:class:`Recorder`::

    recorder = Recorder(sessionmaker, spool_dir=settings.data_dir / "spool")
    recorder.start()          # starts the writer thread; replays any spool left from before
    recorder.submit(row)      # never blocks on the store, never raises
    recorder.stop()           # drains the queue (to the store, or to the spool) and joins

``row`` is a dict of ``records`` column values, as :func:`llmscope.schema.record_row` makes it,
with an ``id`` (the store skips ids it already holds, so replaying a row twice is harmless).

The writer flushes batches through :func:`llmscope.collector.store.insert_records`. When the
store fails, the batch is appended to a JSON-lines spool file under ``spool_dir`` (one file per
process, fsync'd before the batch is dropped from memory) and the writer retries the store every
``retry_interval`` seconds; once it answers, the spool is replayed and removed. Spool files left
by processes that are gone (a crash, a restart) are replayed too. When the queue is full, rows
go straight to the spool, so nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.store import insert_records
from llmscope.db import session_scope

__all__ = ["Recorder"]

log = logging.getLogger("llmscope.collector.recorder")

_DATETIME_FIELDS = ("timestamp", "received_at")
_STOP = object()


def _to_json(row: dict[str, Any]) -> str:
    out = dict(row)
    for name in _DATETIME_FIELDS:
        if isinstance(out.get(name), datetime):
            out[name] = out[name].isoformat()
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _from_json(line: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(line)
    for name in _DATETIME_FIELDS:
        if isinstance(row.get(name), str):
            row[name] = datetime.fromisoformat(row[name])
    return row


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class Recorder:
    """Stores records in the background; see the module docstring for the guarantees."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        spool_dir: Path,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        retry_interval: float = 1.0,
    ) -> None:
        self._factory = factory
        self._spool_dir = spool_dir
        self._spool = spool_dir / f"records-{os.getpid()}.jsonl"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._spool_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._store_down = False
        self._next_retry = 0.0
        self._in_flight = 0  # rows taken off the queue and not yet stored or spooled
        self.stored = 0  # rows the store accepted (including replayed ones)
        self.spooled = 0  # rows written to the spool

    # --- public API -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent); it first replays spool files left over."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="llmscope-recorder", daemon=True)
        self._thread.start()

    def submit(self, row: dict[str, Any]) -> None:
        """Queue ``row`` for the store; when the queue is full it goes to the spool instead."""
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            try:
                self._append_spool([row])
            except OSError:  # the row cannot be kept anywhere: say so loudly, never fail the call
                log.exception("record lost: queue full and spool not writable id=%s", row.get("id"))

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the queue (to the store, else to the spool) and stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def idle(self) -> bool:
        """True when nothing is queued or being written (spooled rows may still wait)."""
        return self._queue.unfinished_tasks == 0 and self._in_flight == 0

    def spool_pending(self) -> bool:
        """True while some spool file still holds rows waiting for the store."""
        return any(self._spool_files())

    # --- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        self._replay()
        stopping = False
        while not stopping:
            batch, stopping = self._take_batch()
            if batch:
                self._write(batch)
            if self._store_down and time.monotonic() >= self._next_retry:
                self._replay()
        if self._store_down:
            self._replay()  # one last try, so a store that came back gets the spool now

    def _take_batch(self) -> tuple[list[dict[str, Any]], bool]:
        batch: list[dict[str, Any]] = []
        timeout = self._retry_interval if self._store_down else 1.0
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, False
        deadline = time.monotonic() + self._flush_interval
        while True:
            if item is _STOP:
                self._queue.task_done()
                return self._drain(batch), True
            batch.append(item)
            self._in_flight += 1
            self._queue.task_done()
            if len(batch) >= self._batch_size:
                return batch, False
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return batch, False

    def _drain(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch
            self._queue.task_done()
            if item is not _STOP:
                batch.append(item)
                self._in_flight += 1

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            if self._store_down:
                raise ConnectionError("store marked down")  # don't hammer it between retries
            self._insert(batch)
        except Exception as exc:  # any store failure: keep the rows on disk instead
            self._mark_down(exc)
            try:
                self._append_spool(batch)
            except OSError:
                log.exception("records lost: store down and spool not writable n=%d", len(batch))
        finally:
            self._in_flight -= len(batch)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), self._batch_size):
            chunk = rows[start : start + self._batch_size]
            with session_scope(self._factory) as session:
                insert_records(session, chunk)
            self.stored += len(chunk)

    def _mark_down(self, exc: BaseException) -> None:
        if not self._store_down and not isinstance(exc, ConnectionError):
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
            log.warning("store unavailable, spooling records to %s: %s", self._spool, reason)
        self._store_down = True
        self._next_retry = time.monotonic() + self._retry_interval

    # --- the spool ------------------------------------------------------------------------
    def _append_spool(self, rows: list[dict[str, Any]]) -> None:
        data = "".join(_to_json(row) + "\n" for row in rows).encode()
        with self._spool_lock:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._spool, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.spooled += len(rows)

    def _spool_files(self) -> Iterator[Path]:
        if not self._spool_dir.is_dir():
            return
        for path in sorted(self._spool_dir.glob("records-*.jsonl*")):
            pid_text = path.name.split("-", 1)[1].split(".", 1)[0]
            if path.name.startswith(self._spool.name) or (
                pid_text.isdigit() and not _pid_alive(int(pid_text))
            ):
                yield path

    def _replay(self) -> None:
        """Move every spool file this process may replay into the store, then delete it."""
        for path in list(self._spool_files()):
            try:
                count = self._replay_file(path)
            except FileNotFoundError:
                continue  # another process took that file (or it was merged): theirs now
            except Exception as exc:
                self._mark_down(exc)
                return
            log.info("replayed %d spooled records from %s", count, path.name)
        if self._store_down:
            log.info("store available again")
        self._store_down = False

    def _replay_file(self, path: Path) -> int:
        replaying = path
        if path == self._spool:
            # New spooling goes to a fresh file while this one is replayed.
            replaying = path.with_name(path.name + ".replaying")
            with self._spool_lock:
                if replaying.exists():  # an earlier replay was cut short: merge
                    with replaying.open("ab") as out:
                        out.write(path.read_bytes())
                    path.unlink()
                else:
                    path.rename(replaying)
        rows = []
        with replaying.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(_from_json(line))
                except ValueError:  # a line torn by a crash mid-write: nothing to recover
                    log.warning("skipping unreadable spool line %s:%d", replaying.name, number)
        self._insert(rows)
        replaying.unlink()
        return len(rows)
