"""``POST /v1/traces``: the OTLP/HTTP trace receiver, and the decode and store steps it shares
with the OTLP/gRPC receiver (:mod:`llmscope.collector.otlp.grpc_receiver`).

The export is decoded and mapped in a worker thread, then written synchronously, in one
transaction, before the answer: a 200 means the records and feedback are committed, and a
retried export stores nothing twice (record ids come from trace and span ids). Evaluations whose
record is not stored yet wait for it. At most
``otlp_max_concurrent_writes`` exports write at once; past that the receiver answers 429 with
``Retry-After`` (the OTLP exporters retry 429, 502, 503 and 504), and 503 when the store is down.
Both doors go through :func:`decode_export` and :func:`store_export`, so what a span becomes, the
caps and the write gate are the same whichever transport brought it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from llmscope.collector.api.limits import BodyTooLarge
from llmscope.collector.ingest import RecordWriter
from llmscope.collector.otlp import wire
from llmscope.collector.otlp.batch import ExportBatch, map_export
from llmscope.collector.otlp.depth import cut_deep_spans
from llmscope.config import Settings
from llmscope.db import session_scope
from llmscope.db.models import Record

log = logging.getLogger("llmscope.collector.otlp")
router = APIRouter(tags=["otlp"])

# How long an export waits for a free writer before it is told to come back later.
_SLOT_WAIT_SECONDS = 0.5
_RETRY_AFTER_SECONDS = "2"
# What an exporter is told when its export is not stored but may be retried (HTTP and gRPC).
SATURATED = "the writer is saturated; retry later"
UNAVAILABLE = "the store is unavailable; retry later"


class WriterSaturated(Exception):
    pass


class WriteGate:
    """Bounds how many exports write to the store at once (per collector process)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._semaphore = asyncio.Semaphore(capacity)

    @asynccontextmanager
    async def slot(self, wait: float = _SLOT_WAIT_SECONDS) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=wait)
        except TimeoutError:
            raise WriterSaturated from None
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._semaphore.release()


def write_gate(state: State) -> WriteGate:
    """The app's gate (``app.state``), made on first use (one event loop per process, so no
    race); OTLP/HTTP and OTLP/gRPC exports share it."""
    gate: WriteGate | None = getattr(state, "otlp_gate", None)
    if gate is None:
        settings: Settings = state.settings
        gate = WriteGate(settings.otlp_max_concurrent_writes)
        state.otlp_gate = gate
    return gate


def decode_export(
    body: bytes,
    content_encoding: str | None,
    encoding: wire.Encoding,
    settings: Settings,
    writer: RecordWriter,
) -> ExportBatch:
    """One export body mapped to what gets written (blocking: run it off the event loop).

    Raises :class:`wire.WireError` for a body that does not decompress or decode, or that is
    larger than ``max_body_bytes`` once decompressed (status 413)."""
    data = wire.decompress(body, content_encoding, settings.max_body_bytes)
    cut: list[str] = []
    try:
        message = wire.parse_request(data, encoding)
    except wire.WireError:
        if encoding != "json":
            raise
        data, cut = cut_deep_spans(data)  # the spans nested too deep go, the rest is read
        if not cut:
            raise
        message = wire.parse_request(data, encoding)
    batch = map_export(message, writer)
    batch.spans += len(cut)
    batch.rejected += len(cut)
    batch.errors[:0] = cut
    return batch


def _write(
    factory: sessionmaker[Session], writer: RecordWriter, batch: ExportBatch
) -> tuple[list[dict[str, Any]], list[tuple[str | None, str | None]]]:
    """Store the batch in one transaction (records, then feedback and evaluations on them);
    returns the rows it stored (an exporter's retry stores none again) and the stored
    feedback's (endpoint, thumb)."""
    with session_scope(factory) as session:
        stored = writer.store(session, batch.rows)
        writer.steps(session, batch.steps)
        events = writer.feedback(session, batch.feedback)
        # a later export may bring an evaluation's record: the evaluation waits for it
        writer.evaluations(session, batch.evaluations, wait=True)
        thumbs = [(_endpoint_of(session, e.record_id), e.thumb) for e in events if e is not None]
        return stored, thumbs


def _endpoint_of(session: Session, record_id: str) -> str | None:
    record = session.get(Record, record_id)
    return None if record is None else record.endpoint


def _error(encoding: wire.Encoding, status: int, message: str, retry: bool = False) -> Response:
    return Response(
        content=wire.error_body(encoding, status, message),
        status_code=status,
        media_type=wire.CONTENT_TYPES[encoding],
        headers={"Retry-After": _RETRY_AFTER_SECONDS} if retry else None,
    )


async def store_export(state: State, batch: ExportBatch) -> None:
    """Write ``batch`` through the app's write gate (``app.state``), then count and log it.

    Raises :class:`WriterSaturated` when no writer frees up in time and SQLAlchemy's
    ``OperationalError`` when the store is unavailable; nothing is stored then."""
    writer: RecordWriter = state.writer
    accounting = state.accounting
    try:
        async with write_gate(state).slot():
            stored, feedback = await run_in_threadpool(_write, state.sessionmaker, writer, batch)
    except WriterSaturated:
        accounting.metrics.refused("otlp_concurrency")
        raise
    except OperationalError:
        log.warning("otlp export not stored: the store is unavailable", exc_info=True)
        raise
    writer.accepted(stored)
    for endpoint, thumb in feedback:
        accounting.metrics.feedback(endpoint, thumb)
    log.info(
        "otlp export spans=%d records=%d steps=%d skipped=%d rejected=%d feedback=%d "
        "evaluations=%d",
        batch.spans,
        len(batch.rows),
        len(batch.steps),
        batch.skipped,
        batch.rejected,
        len(feedback),
        len(batch.evaluations),
    )


@router.post("/v1/traces", response_class=Response)
async def export_traces(request: Request) -> Response:
    """Take an OTLP/HTTP trace export; spans of LLM calls become records."""
    settings: Settings = request.app.state.settings
    writer: RecordWriter = request.app.state.writer
    try:
        encoding = wire.encoding_of(request.headers.get("content-type"))
    except wire.WireError as exc:
        return _error("json", exc.status, exc.message)
    try:
        body = await request.body()
        batch = await run_in_threadpool(
            decode_export, body, request.headers.get("content-encoding"), encoding, settings, writer
        )
    except BodyTooLarge as exc:
        return _error(encoding, 413, str(exc.detail))
    except wire.WireError as exc:
        return _error(encoding, exc.status, exc.message)
    try:
        await store_export(request.app.state, batch)
    except WriterSaturated:
        return _error(encoding, 429, SATURATED, retry=True)
    except OperationalError:
        return _error(encoding, 503, UNAVAILABLE, retry=True)
    return Response(
        content=wire.export_response(encoding, batch.rejected, batch.error_message()),
        media_type=wire.CONTENT_TYPES[encoding],
    )
