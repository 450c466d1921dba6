"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on its own port.

Many exporters (MLflow Tracing's default, the OpenTelemetry Collector, most SDKs) speak OTLP over
gRPC, on port 4317 by default. This server runs in the collector's event loop beside the HTTP
app and takes the same path as ``POST /v1/traces``: :func:`~.receiver.decode_export` and
:func:`~.receiver.store_export`, the same API keys (``authorization: Bearer KEY`` metadata,
scope ``ingest``), the same body cap and the same write gate. An ``OK`` answer means committed.

The request arrives as raw bytes and is decoded here, so a malformed message gets a clear
``INVALID_ARGUMENT`` rather than grpc's generic deserialization error. Refusals map the HTTP
receiver's statuses onto gRPC codes as the OTLP specification pairs them:

========================  ============================  =========================================
HTTP                      gRPC                          when
========================  ============================  =========================================
400                       ``INVALID_ARGUMENT``          the message does not decode
401 / 403                 ``UNAUTHENTICATED`` /         no or an unknown key / a key without
                          ``PERMISSION_DENIED``         ``ingest``
413                       ``RESOURCE_EXHAUSTED``        larger than ``max_body_bytes`` (no
                                                        RetryInfo: not worth retrying)
429                       ``RESOURCE_EXHAUSTED``        the write gate is full (with RetryInfo)
503                       ``UNAVAILABLE``               the store is down (retryable)
========================  ============================  =========================================

At most ``max_inflight_body_bytes // max_body_bytes`` exports (within ``max_inflight_requests``)
are worked on at once, so the messages held in memory stay within the same budget as the HTTP
side's; grpc answers the ones past it ``RESOURCE_EXHAUSTED`` itself.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from llmscope.collector.api.auth import KeyCheck, bearer_token
from llmscope.collector.otlp import wire
from llmscope.collector.otlp.batch import ExportBatch
from llmscope.collector.otlp.receiver import (
    SATURATED,
    UNAVAILABLE,
    WriterSaturated,
    decode_export,
    store_export,
)
from llmscope.config import Settings

# Its own logger: `llmscope serve` shows this one's lines (where it listens) beside uvicorn's.
LOGGER = "llmscope.collector.otlp.grpc"
log = logging.getLogger(LOGGER)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
# The scope POST /v1/traces needs (auth.needed_scope): an export records LLM traffic.
NEEDED_SCOPE = "ingest"
_RETRY_DELAY_SECONDS = 2
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


class PortUnavailable(Exception):
    """The gRPC port could not be bound (taken, or not allowed)."""


def address(host: str, port: int) -> str:
    """``host:port`` as grpc wants it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def inflight_cap(settings: Settings) -> int:
    """Most exports worked on at once: as many largest messages as the in-flight byte budget
    holds, at least one, at most the in-flight request cap."""
    fit = settings.max_inflight_body_bytes // settings.max_body_bytes
    return max(1, min(settings.max_inflight_requests, fit))


class OtlpGrpcServer:
    """The TraceService/Export server of one collector process, wired to its app's ``state``.

    ``reuse_port`` lets the worker processes of ``llmscope serve --workers N`` listen on the
    same port (the kernel spreads connections over them); off, a port already taken fails
    :meth:`start` instead of being shared.
    """

    def __init__(
        self, state: State, keys: KeyCheck, host: str, port: int, *, reuse_port: bool = False
    ) -> None:
        self.state = state
        self.keys = keys
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self._server: grpc.aio.Server | None = None

    def bind(self) -> None:
        """Make the server and bind its port (serving starts with :meth:`start`); raises
        :class:`PortUnavailable` when the port cannot be bound."""
        settings: Settings = self.state.settings
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ],
            maximum_concurrent_rpcs=inflight_cap(settings),
        )
        handler = grpc.unary_unary_rpc_method_handler(self.export)  # raw bytes in and out
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        where = address(self.host, self.port)
        try:
            bound = server.add_insecure_port(where)
        except RuntimeError as exc:  # grpcio raises when the bind fails
            raise PortUnavailable(f"cannot listen on {where} for OTLP/gRPC: {exc}") from None
        if not bound:
            raise PortUnavailable(f"cannot listen on {where} for OTLP/gRPC")
        self._server = server

    async def start(self) -> None:
        """Start serving exports on the port :meth:`bind` bound."""
        if self._server is None:
            raise RuntimeError("bind() the OTLP/gRPC server before starting it")
        await self._server.start()
        log.info(
            "OTLP/gRPC receiver running on %s (TraceService/Export)",
            address(self.host, self.port),
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking exports; the ones under way get ``grace`` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def export(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """One ``ExportTraceServiceRequest``; answers an ``ExportTraceServiceResponse``."""
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                token = bearer_token(value)
        denial = await self.keys.check(token, NEEDED_SCOPE)
        if denial is not None:
            await context.abort(_CODES[denial.status], denial.message)
        settings: Settings = self.state.settings
        try:
            # grpc has already undone any grpc-encoding (gzip): the bytes are the message.
            batch: ExportBatch = await run_in_threadpool(
                decode_export, request, None, "protobuf", settings, self.state.writer
            )
        except wire.WireError as exc:
            await context.abort(
                _CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), exc.message
            )
        try:
            await store_export(self.state, batch)
        except WriterSaturated:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, SATURATED, trailing_metadata=_retry_later()
            )
        except OperationalError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE)
        return wire.export_response("protobuf", batch.rejected, batch.error_message())


def _retry_later() -> tuple[tuple[str, bytes], ...]:
    """The RetryInfo that makes RESOURCE_EXHAUSTED retryable for OTLP exporters: in the
    standard status details, and under the key the Python exporter reads."""
    info = RetryInfo(retry_delay=Duration(seconds=_RETRY_DELAY_SECONDS))
    detail = AnyMessage()
    detail.Pack(info)
    status = Status(
        code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=SATURATED, details=[detail]
    )
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )
