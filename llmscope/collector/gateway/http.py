"""The gateway's pooled HTTP connections to providers (aiohttp), kept cheap on the CPU.

The gateway's own cost per call is mostly its upstream HTTP client. Measured on the 2-core
machine (``docs/benchmarks/gateway.md``), an httpx client spent ~1.2 ms of CPU per request on
loopback, aiohttp ~0.1 ms, so provider calls go through one aiohttp session with a keep-alive
connection pool. It must be created inside the running event loop (``Gateway.start``).
"""

from __future__ import annotations

import ssl

import aiohttp


class HttpPool:
    """One aiohttp session shared by every provider of the gateway."""

    def __init__(self, max_connections: int = 512, keepalive_seconds: float = 30.0) -> None:
        tls = ssl.create_default_context()  # the CA bundle loaded once
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            limit_per_host=0,
            keepalive_timeout=keepalive_seconds,
            ssl=tls,
            ttl_dns_cache=300,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # requests carry their own timeouts; no cookies from providers are ever kept
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def aclose(self) -> None:
        await self.session.close()
