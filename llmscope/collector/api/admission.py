"""Admission control: bounded requests and body bytes in flight; the rest refused at once.

Under a flood the collector answers 503 with ``Retry-After`` instead of queueing without
bound. A request is admitted while fewer than ``max_requests`` are in flight and the bodies
in flight (by Content-Length; a body without one counts as the largest allowed) stay under
``max_body_bytes``, so memory stays bounded whatever the traffic. Clients (the SDK, OTLP
exporters, HTTP clients of the gateway) retry on 503 with backoff.

The ``llmscope_inflight_*`` gauges are written at most once per :data:`GAUGE_INTERVAL`
(a timer writes the latest counts), not twice per request: with ``serve --workers N`` every
write is a locked write to a memory-mapped file, and a scrape every few seconds cannot tell
the difference. The counts that admit or refuse a request are exact at all times.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from llmscope.metrics import Metrics

EXEMPT_PATHS = {"/health", "/metrics"}  # answered even under a flood
GAUGE_INTERVAL = 0.05  # seconds between writes of the in-flight gauges


class Admission:
    """ASGI middleware enforcing the in-flight budget (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_requests: int,
        max_body_bytes: int,
        largest_body: int,
        retry_after: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.max_requests = max_requests
        self.max_body_bytes = max_body_bytes
        self.largest_body = largest_body
        self.retry_after = retry_after
        self.requests = 0
        self.body_bytes = 0
        self.refused = 0
        self.metrics = metrics if metrics is not None and metrics.enabled else None
        self._gauge_timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        size = self._declared_size(scope)
        # One event loop per process: the check and the update cannot interleave.
        over_bytes = self.requests > 0 and self.body_bytes + size > self.max_body_bytes
        if self.requests >= self.max_requests or over_bytes:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.refused("admission")
            await self._refuse(send)
            return
        self.requests += 1
        self.body_bytes += size
        self._gauges()
        try:
            await self.app(scope, receive, send)
        finally:
            self.requests -= 1
            self.body_bytes -= size
            self._gauges()

    def _gauges(self) -> None:
        """Have the gauges written within GAUGE_INTERVAL (one timer for any number of calls)."""
        if self.metrics is not None and self._gauge_timer is None:
            loop = asyncio.get_running_loop()
            self._gauge_timer = loop.call_later(GAUGE_INTERVAL, self._write_gauges)

    def _write_gauges(self) -> None:
        self._gauge_timer = None
        if self.metrics is not None:
            self.metrics.inflight_requests.set(self.requests)
            self.metrics.inflight_body_bytes.set(self.body_bytes)

    def _declared_size(self, scope: Scope) -> int:
        if scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            return 0
        for name, value in scope.get("headers") or []:
            if name == b"content-length" and value.isdigit():
                return min(int(value), self.largest_body)
        return self.largest_body

    async def _refuse(self, send: Send) -> None:
        message = "the collector is at capacity; retry after a short wait"
        body = json.dumps({"message": message, "detail": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
