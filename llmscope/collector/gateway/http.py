"""The gateway's pooled HTTP connections to providers, kept cheap on the CPU.

The gateway's own cost per call is mostly its upstream HTTP client. Measured on the 2-core
machine (``docs/benchmarks/gateway.md``), an httpx client spent ~1.2 ms of CPU per request on
loopback and aiohttp ~0.1 ms; :class:`Upstream`, keep-alive HTTP/1.1 connections on asyncio
with answers parsed by httptools, costs less still, so it carries whole answers and the
server-sent-event streams of OpenAI-compatible providers. Streams of other framings (Bedrock's
binary event stream, say) go through one aiohttp session. Both must be created inside the
running event loop (``Gateway.start``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL


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
        self.upstream = Upstream(tls, keepalive_seconds)  # whole answers (see Upstream)

    async def aclose(self) -> None:
        self.upstream.close()
        await self.session.close()


# --- whole answers over a lean keep-alive HTTP/1.1 client -----------------------------------------
class UpstreamUnreachable(OSError):
    """No connection to the provider could be made (a retry may find it)."""


class UpstreamBroken(ConnectionError):
    """The connection failed, or the answer was not HTTP, before the answer was complete."""


class Answer:
    """A whole HTTP answer: status, reason, headers (case-insensitive) and body."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: CIMultiDictProxy[str], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; answers parsed by httptools (llhttp, as uvicorn uses)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self.streaming: StreamedAnswer | None = None  # the stream this connection feeds
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.complete = False
        self.until_close = False  # headers given, and neither a length nor chunks
        self.keep_alive = False
        self.error: UpstreamBroken | None = None
        self.stream_mode = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes no request asked for: the connection is not usable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = UpstreamBroken(f"not an HTTP answer: {exc}")
            self._finish(self.error)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        if self.until_close and exc is None:  # an answer without a length ends with the connection
            self.complete = True
            self._finish(None)
        else:
            self.error = self.error or UpstreamBroken(
                "the provider closed the connection mid-answer"
            )
            self._finish(self.error)
        if self.streaming is not None:
            self.streaming.wake()

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        names = {name.lower() for name, _ in self.headers}
        self.until_close = "content-length" not in names and "transfer-encoding" not in names
        if self.stream_mode:
            self._finish(None)  # the stream's reader takes it from here

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        if self.streaming is not None:
            self.streaming.wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = not self.until_close and self.parser.should_keep_alive()
        self._finish(None)
        if self.streaming is not None:
            self.streaming.wake()

    # the client's side
    def _finish(self, error: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def exchange(self, request: bytes, timeout: float | None = None) -> Answer:
        """Send ``request``; its whole answer, or TimeoutError past ``timeout`` seconds."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self.transport.write(request)
        # one timer, not an ``asyncio.timeout`` block: a few microseconds less of every call
        timer = None if timeout is None else loop.call_later(timeout, _time_out, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
        return self.answered()

    def answered(self) -> Answer:
        """The complete answer; the connection is ready for the next request (or closed)."""
        answer = Answer(
            self.parser.get_status_code(),
            self.reason,
            CIMultiDictProxy(CIMultiDict(self.headers)),
            b"".join(self.body),
        )
        keep = self.keep_alive
        self._waiter = None
        self.streaming = None
        self._reset()
        if not keep:
            self.close()
        return answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class StreamedAnswer:
    """An answer read as it arrives: ``status``, ``reason``, ``headers`` at once, then its lines
    (``async for line in answer.content``, as aiohttp's), each read within ``read_timeout``
    seconds. :meth:`release` returns the connection to the pool once the answer is complete,
    else closes it."""

    def __init__(
        self,
        upstream: Upstream,
        origin: tuple[str, int, bool],
        connection: _Connection,
        read_timeout: float,
    ) -> None:
        self._upstream = upstream
        self._origin = origin
        self._connection = connection
        self._read_timeout = read_timeout
        self._wakeup: asyncio.Future[None] | None = None
        self._pending = b""
        self._released = False
        self.status = connection.parser.get_status_code()
        self.reason = connection.reason
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(connection.headers))
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        self._inflate = (
            zlib.decompressobj(47) if encoding in ("gzip", "x-gzip", "deflate") else None
        )
        if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
            raise UpstreamBroken(f"an answer in the {encoding!r} encoding, not asked for")

    @property
    def content(self) -> StreamedAnswer:
        return self

    def wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _more(self) -> bytes | None:
        """The next bytes of the body, None at its end; UpstreamBroken, TimeoutError."""
        connection = self._connection
        while not connection.body:
            if connection.error is not None:
                raise connection.error
            if connection.complete:
                return None
            self._wakeup = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(self._read_timeout):
                await self._wakeup
        data = b"".join(connection.body)
        connection.body.clear()
        return self._inflate.decompress(data) if self._inflate is not None else data

    def __aiter__(self) -> StreamedAnswer:
        return self

    async def __anext__(self) -> bytes:
        while b"\n" not in self._pending:
            data = await self._more()
            if data is None:
                if self._pending:
                    line, self._pending = self._pending, b""
                    return line
                raise StopAsyncIteration
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    async def read(self) -> bytes:
        """The rest of the body."""
        parts = [self._pending]
        self._pending = b""
        while (data := await self._more()) is not None:
            parts.append(data)
        return b"".join(parts)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        connection = self._connection
        if connection.complete and connection.error is None:
            # the whole answer is in (what was left unread of it goes): ready for the next
            connection.answered()  # resets it for the next request (or closes it)
            self._upstream._release(self._origin, connection)
        else:
            connection.close()


class Upstream:
    """Keep-alive connections per origin for provider calls (whole answers and streams).

    aiohttp's client was about a third of a gateway call's CPU (``docs/benchmarks/gateway.md``);
    a request written in one piece and an answer parsed by httptools cost a fraction of it. It
    speaks plain HTTP/1.1 to ``http`` and ``https`` origins (no proxies, no redirects, as the
    aiohttp session before it was configured); answers compressed although not asked for
    (``gzip``, ``deflate``) are decompressed. :meth:`open` reads an answer as it arrives
    (server-sent events); providers whose streams are other framings use aiohttp
    (``HttpPool.session``).
    """

    def __init__(self, tls: ssl.SSLContext, keepalive_seconds: float = 30.0) -> None:
        self.tls = tls
        self.keepalive_seconds = keepalive_seconds
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._targets: dict[str, tuple[tuple[str, int, bool], bytes] | None] = {}

    def handles(self, url: str) -> bool:
        """Whether ``url`` can go through this client (else it goes through aiohttp)."""
        return self._target(url) is not None

    def _target(self, url: str) -> tuple[tuple[str, int, bool], bytes] | None:
        known = self._targets.get(url, False)
        if known is not False:
            return known  # type: ignore[return-value]
        found: tuple[tuple[str, int, bool], bytes] | None = None
        parsed = URL(url, encoded=True) if "%" in url else URL(url)
        if parsed.scheme in ("http", "https") and parsed.host and not parsed.user:
            secure = parsed.scheme == "https"
            port = parsed.port or (443 if secure else 80)
            host = parsed.raw_host or parsed.host
            default = port == (443 if secure else 80)
            authority = host if default else f"{host}:{port}"
            if ":" in host and not host.startswith("["):  # an IPv6 literal
                authority = f"[{host}]" if default else f"[{host}]:{port}"
            head = f"POST {parsed.raw_path_qs} HTTP/1.1\r\nHost: {authority}\r\n"
            found = ((host, port, secure), head.encode("latin-1"))
        if len(self._targets) > 1_000:  # bounded: URLs come from the config, but still
            self._targets.clear()
        self._targets[url] = found
        return found

    async def post(
        self,
        url: str,
        data: bytes,
        headers: dict[str, str],
        *,
        connect_timeout: float,
        timeout: float | None = None,
    ) -> Answer:
        """POST ``data``; the whole answer. Raises UpstreamUnreachable when no connection
        could be made, UpstreamBroken when it failed before the answer was complete, and
        TimeoutError when the whole exchange (connecting included) took past ``timeout``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        origin, request = self._request(url, data, headers)
        connection = self._take_idle(origin)
        if connection is None and timeout is None:
            connection = await self._connect(origin, connect_timeout)
        elif connection is None:
            async with asyncio.timeout(timeout):  # the call's time limit cuts connecting short
                connection = await self._connect(origin, connect_timeout)
        left = None if timeout is None else timeout - (loop.time() - started)
        try:
            answer = await connection.exchange(request, left)
        except BaseException:
            connection.close()
            raise
        self._release(origin, connection)
        encoding = answer.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                answer.body = zlib.decompressobj(47).decompress(answer.body)  # gzip or zlib
            except zlib.error as exc:
                raise UpstreamBroken(f"the {encoding} answer does not decompress") from exc
        elif encoding not in ("identity", ""):
            raise UpstreamBroken(f"an answer in the {encoding!r} encoding, not asked for")
        return answer

    async def open(
        self,
        url: str,
        data: bytes,
        headers: dict[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> StreamedAnswer:
        """POST ``data``; the answer once its headers are in, its body to be read as it comes.
        Raises as :meth:`post` does, and TimeoutError past ``read_timeout`` without headers."""
        origin, request = self._request(url, data, headers)
        connection = await self._acquire(origin, connect_timeout)
        assert connection.transport is not None
        waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection._waiter = waiting
        connection.stream_mode = True  # the headers complete the waiter
        try:
            connection.transport.write(request)
            async with asyncio.timeout(read_timeout):
                await waiting
            answer = StreamedAnswer(self, origin, connection, read_timeout)
        except BaseException:
            connection.close()
            raise
        connection.streaming = answer
        return answer

    def _request(
        self, url: str, data: bytes, headers: dict[str, str]
    ) -> tuple[tuple[str, int, bool], bytes]:
        target = self._target(url)
        if target is None:
            raise ValueError(f"not an http(s) URL: {url}")
        origin, head = target
        lines = [head]
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise UpstreamBroken(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"Accept: */*\r\nContent-Length: %d\r\n\r\n" % len(data))
        lines.append(data)
        return origin, b"".join(lines)

    async def _acquire(self, origin: tuple[str, int, bool], connect_timeout: float) -> _Connection:
        connection = self._take_idle(origin)
        if connection is not None:
            return connection
        return await self._connect(origin, connect_timeout)

    def _take_idle(self, origin: tuple[str, int, bool]) -> _Connection | None:
        """The most recently used idle connection to ``origin`` that is still usable."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if connection.closed or transport is None or transport.is_closing():
                continue
            if now - connection.idle_since > self.keepalive_seconds:
                connection.close()
                continue
            return connection
        return None

    async def _connect(self, origin: tuple[str, int, bool], connect_timeout: float) -> _Connection:
        host, port, secure = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=self.tls if secure else None,
                    server_hostname=host if secure else None,
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnreachable(f"cannot connect to {host}:{port}: {exc!r}") from exc
        return protocol

    def _release(self, origin: tuple[str, int, bool], connection: _Connection) -> None:
        if connection.closed:
            return
        now = time.monotonic()
        connection.idle_since = now
        idle = self._idle.setdefault(origin, [])
        # the least recently used wait at the bottom: close those idle past the keep-alive
        while idle and (idle[0].closed or now - idle[0].idle_since > self.keepalive_seconds):
            idle.pop(0).close()
        idle.append(connection)

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
