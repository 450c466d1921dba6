"""The gateway's pooled HTTP connections to providers (httpx), kept cheap on the CPU.

httpcore looks at every connection of a pool each time a request is assigned or returned, so
one big pool costs more CPU per call as concurrency grows. A few small pools, used in turn,
keep the same keep-alive reuse with far less of that scanning.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx


class HttpPool:
    """``shards`` httpx clients used round-robin; :meth:`pick` returns the next one."""

    def __init__(self, shards: int = 8, max_connections: int = 64, keepalive: int = 8) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=keepalive,
            keepalive_expiry=30,
        )
        timeout = httpx.Timeout(120.0, connect=10.0)
        tls = httpx.create_ssl_context()  # the CA bundle loaded once, not once per shard
        self.clients = [
            httpx.AsyncClient(limits=limits, timeout=timeout, verify=tls) for _ in range(shards)
        ]
        self._next = itertools.cycle(self.clients)

    def pick(self) -> httpx.AsyncClient:
        return next(self._next)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))
