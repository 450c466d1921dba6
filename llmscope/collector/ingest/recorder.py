"""Recording off the request path: a bounded queue, a background batch writer and a spool.

Anything in the collector that must store records without making its caller wait (the gateway,
and any receiver that wants the same guarantees) hands finished ``records`` rows to a
:class:`Recorder`::

    recorder = Recorder(sessionmaker, spool_dir=settings.data_dir / "spool")
    recorder.start()          # starts the writer thread; replays any spool left from before
    recorder.submit(row)      # never blocks on the store, never raises
    recorder.stop()           # drains the queue (to the store, or to the spool) and joins

``row`` is a dict of ``records`` column values, finished by the write path
(:meth:`llmscope.collector.ingest.RecordWriter.submit` hands it over), with an ``id`` (the
store skips ids it already holds, so replaying a row twice is harmless).

Before ``submit`` returns, the row is appended to a per-process journal file with one
``write()``: the operating system holds it even if the process is killed the next moment
(SIGKILL, OOM), so a call the gateway answered is never lost. A journal segment is deleted once
every row in it is in the store or the spool; segments left by a dead process are replayed
when a recorder starts (the store skips ids it already holds). Only an operating-system crash
can lose the last unflushed rows; the spool (below) is fsync'd.

The writer flushes batches through :func:`llmscope.collector.ingest.nesting.store_rows` (the
insert every door shares; it merges the records of one traced call) and then hands the rows
that are new calls to ``on_stored``, if set (the writer counts traced gateway calls there). When the
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
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.ingest.encodable import replace_unencodable
from llmscope.collector.ingest.nesting import store_rows
from llmscope.db import session_scope

__all__ = ["Recorder"]

log = logging.getLogger("llmscope.collector.recorder")

_DATETIME_FIELDS = ("timestamp", "received_at")
_STOP = object()
_Item = tuple[int | None, dict[str, Any]]  # (journal segment, row)


def _line(row: dict[str, Any]) -> bytes:
    """``row`` as one journal or spool line: by orjson (datetimes in ISO 8601, as below), or
    by :func:`_to_json` for what orjson will not write (lone surrogates, huge integers)."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        return (_to_json(row) + "\n").encode()  # UnicodeEncodeError for a lone surrogate


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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class _Journal:
    """Append-only segments of submitted rows, each deleted once all its rows are safe."""

    ROWS_PER_SEGMENT = 5_000

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._token = uuid.uuid4().hex[:8]  # a restarted process may get the same pid
        self._lock = threading.Lock()
        self._segment = 0
        self._fd: int | None = None
        self._written = 0  # rows in the open segment
        self._pending: dict[int, int] = {}  # segment -> rows not yet stored or spooled

    def prefix(self) -> str:
        return f"journal-{os.getpid()}-{self._token}-"

    def append(self, line: bytes) -> int:
        """Write one row; returns its segment, to pass to :meth:`settled` later."""
        with self._lock:
            if self._fd is None or self._written >= self.ROWS_PER_SEGMENT:
                self._rotate()
            assert self._fd is not None
            os.write(self._fd, line)
            self._written += 1
            self._pending[self._segment] += 1
            return self._segment

    def settled(self, segment: int, rows: int = 1) -> None:
        """``rows`` of ``segment`` are in the store or the spool now."""
        with self._lock:
            self._pending[segment] -= rows
            if self._pending[segment] <= 0 and segment != self._segment:
                del self._pending[segment]
                self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        """After a full drain: close and delete the open segment if nothing in it waits."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for segment, pending in list(self._pending.items()):
                if pending <= 0:
                    del self._pending[segment]
                    self._path(segment).unlink(missing_ok=True)

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            if self._pending.get(self._segment, 0) <= 0:
                self._pending.pop(self._segment, None)
                self._path(self._segment).unlink(missing_ok=True)
        self._segment += 1
        self._dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._written = 0
        self._pending[self._segment] = 0

    def _path(self, segment: int) -> Path:
        return self._dir / f"{self.prefix()}{segment}.jsonl"

    def orphans(self) -> list[Path]:
        """Journal segments of processes that are gone (or of an earlier life of this pid)."""
        found = []
        for path in sorted(self._dir.glob("journal-*.jsonl")) if self._dir.is_dir() else []:
            parts = path.name.split("-")
            if len(parts) < 4 or not parts[1].isdigit():
                continue
            pid, token = int(parts[1]), parts[2]
            mine = pid == os.getpid()
            if (mine and token != self._token) or (not mine and not pid_alive(pid)):
                found.append(path)
        return found


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
        self._journal = _Journal(spool_dir)
        self._thread: threading.Thread | None = None
        self._store_down = False
        self._next_retry = 0.0
        self._in_flight = 0  # rows taken off the queue and not yet stored or spooled
        self.stored = 0  # rows the store accepted (including replayed ones)
        # Called after each committed batch with its rows that are new calls (nesting.py).
        self.on_stored: Callable[[list[dict[str, Any]]], None] | None = None
        self.spooled = 0  # rows written to the spool

    # --- public API -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent); it first replays spool files left over."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="llmscope-recorder", daemon=True)
        self._thread.start()

    def submit(self, row: dict[str, Any]) -> None:
        """Journal ``row``, then queue it for the store (or spool it when the queue is full)."""
        try:
            line = _line(row)
        except UnicodeEncodeError:  # a lone surrogate the door let through: replaced, not lost
            row = replace_unencodable(row)
            line = _line(row)
        try:
            segment: int | None = self._journal.append(line)
        except OSError:  # no journal: the row still goes on, with the queue's guarantees only
            log.exception("journal not writable; record kept in memory only id=%s", row.get("id"))
            segment = None
        try:
            self._queue.put_nowait((segment, row))
        except queue.Full:
            try:
                self._append_spool([row])
            except OSError:  # the row cannot be kept anywhere: say so loudly, never fail the call
                log.exception("record lost: queue full and spool not writable id=%s", row.get("id"))
                return
            self._settle([segment])

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the queue (to the store, else to the spool) and stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._journal.close()
        self._thread = None

    def queue_depth(self) -> int:
        """Rows waiting in the queue now."""
        return self._queue.qsize()

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

    def _take_batch(self) -> tuple[list[_Item], bool]:
        """The next batch: what the queue holds once the first row has waited
        ``flush_interval`` (or a full batch at once), taken with one sleep, not one wake-up
        per row (a thread waking for each row costs the event loop the GIL as often)."""
        batch: list[_Item] = []
        timeout = self._retry_interval if self._store_down else 1.0
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, False
        if item is _STOP:
            self._queue.task_done()
            return self._drain(batch), True
        batch.append(item)
        self._in_flight += 1  # before task_done: idle() never sees a row in no one's hands
        self._queue.task_done()
        if self._queue.qsize() < self._batch_size - 1:
            time.sleep(self._flush_interval)
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is _STOP:
                self._queue.task_done()
                return self._drain(batch), True
            batch.append(item)
            self._in_flight += 1
            self._queue.task_done()
        return batch, False

    def _drain(self, batch: list[_Item]) -> list[_Item]:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch
            self._queue.task_done()
            if item is not _STOP:
                batch.append(item)
                self._in_flight += 1

    def _write(self, batch: list[_Item]) -> None:
        rows = [row for _, row in batch]
        try:
            if self._store_down:
                raise ConnectionError("store marked down")  # don't hammer it between retries
            self._insert(rows)
        except Exception as exc:  # any store failure: keep the rows on disk instead
            self._mark_down(exc)
            try:
                self._append_spool(rows)
            except OSError:
                # still in the journal: the next recorder to start replays them
                log.exception("store down and spool not writable n=%d", len(rows))
                return
        finally:
            self._in_flight -= len(batch)
        self._settle([segment for segment, _ in batch])

    def _settle(self, segments: list[int | None]) -> None:
        for segment, count in Counter(s for s in segments if s is not None).items():
            self._journal.settled(segment, count)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), self._batch_size):
            chunk = rows[start : start + self._batch_size]
            with session_scope(self._factory) as session:
                calls = store_rows(session, chunk)
            self.stored += len(chunk)
            if self.on_stored is not None and calls:
                try:
                    self.on_stored(calls)
                except Exception:  # counting trouble never loses or re-stores a batch
                    log.exception("on_stored failed n=%d", len(calls))

    def _mark_down(self, exc: BaseException) -> None:
        if not self._store_down and not isinstance(exc, ConnectionError):
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
            log.warning("store unavailable, spooling records to %s: %s", self._spool, reason)
        self._store_down = True
        self._next_retry = time.monotonic() + self._retry_interval

    # --- the spool ------------------------------------------------------------------------
    def _append_spool(self, rows: list[dict[str, Any]]) -> None:
        data = b"".join(_line(row) for row in rows)
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
        yield from self._journal.orphans()
        for path in sorted(self._spool_dir.glob("records-*.jsonl*")):
            pid_text = path.name.split("-", 1)[1].split(".", 1)[0]
            if path.name.startswith(self._spool.name) or (
                pid_text.isdigit() and not pid_alive(int(pid_text))
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
