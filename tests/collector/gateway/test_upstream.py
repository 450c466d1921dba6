"""The lean upstream client (``http.Upstream``) against a raw HTTP/1.1 server on loopback.

The server answers scripted bytes, so each framing a provider may use is covered: a length,
chunks, gzip it was not asked for, an answer ended by closing the connection, and failures
(a connection cut mid-answer, garbage, nobody listening).
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import Awaitable, Callable

import pytest

from llmscope.collector.gateway.http import Upstream, UpstreamBroken, UpstreamUnreachable
from tests.conftest import free_port


class Scripted(asyncio.Protocol):
    """Answers each request (read up to its body) with the next scripted bytes."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")), 0,
        )  # fmt: skip
        if not sep or len(rest) < length:
            return
        self.server.requests.append(head + sep + rest[:length])
        self.buffer = rest[length:]
        answer, close = self.server.script.pop(0)
        if not answer:
            return  # a provider that never answers
        self.transport.write(answer)  # type: ignore[attr-defined]
        if close:
            self.transport.close()


class Server:
    def __init__(self) -> None:
        self.script: list[tuple[bytes, bool]] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions?x=1"


def run(scenario: Callable[[Server], Awaitable[None]]) -> None:
    """``scenario`` against a fresh scripted server, in one event loop."""

    async def main() -> None:
        found = Server()
        loop = asyncio.get_running_loop()
        listening = await loop.create_server(lambda: Scripted(found), "127.0.0.1", found.port)
        try:
            await scenario(found)
        finally:
            listening.close()

    asyncio.run(main())


def answer(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def _keep_alive_lengths_chunks_and_gzip(server: Server) -> None:
    chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Req: 2\r\n\r\n"
    chunked += b'3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'
    server.script = [
        (answer(b'{"n": 1}', "Content-Type: application/json"), False),
        (chunked, False),
        (answer(gzip.compress(b'{"zipped": true}'), "Content-Encoding: gzip"), False),
    ]
    upstream = Upstream(ssl.create_default_context())
    first = await upstream.post(server.url, b'{"q": 1}', {"Authorization": "Bearer k"},
                                connect_timeout=5)  # fmt: skip
    second = await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    third = await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    upstream.close()
    assert (first.status, first.reason, first.body) == (200, "OK", b'{"n": 1}')
    assert first.headers["content-type"] == "application/json"
    assert (second.status, second.reason, second.body) == (201, "Created", b'{"a": 1}')
    assert second.headers["x-req"] == "2"
    assert third.body == b'{"zipped": true}'
    assert server.connections == 1  # one connection, kept alive
    request = server.requests[0]
    assert request.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in request
    assert b"Authorization: Bearer k\r\n" in request and request.endswith(b'\r\n\r\n{"q": 1}')


async def _an_answer_ended_by_closing_and_a_closed_connection_not_reused(
    server: Server,
) -> None:
    server.script = [
        (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"until": "close"}', True),
        (answer(b"{}", "Connection: close"), True),
        (answer(b"{}"), False),
    ]
    upstream = Upstream(ssl.create_default_context())
    assert (
        await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    ).body == b'{"until": "close"}'
    assert (await upstream.post(server.url, b"{}", {}, connect_timeout=5)).body == b"{}"
    assert (await upstream.post(server.url, b"{}", {}, connect_timeout=5)).body == b"{}"
    upstream.close()
    assert server.connections == 3


async def _failures_are_named(server: Server) -> None:
    server.script = [
        (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut', True),
        (b"SMTP ready\r\n\r\n", False),
        (answer(b"x", "Content-Encoding: br"), False),
    ]
    upstream = Upstream(ssl.create_default_context())
    with pytest.raises(UpstreamBroken, match="mid-answer"):
        await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    with pytest.raises(UpstreamBroken, match="not an HTTP answer"):
        await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    with pytest.raises(UpstreamBroken, match="'br' encoding"):
        await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    with pytest.raises(UpstreamBroken, match="line break"):
        await upstream.post(server.url, b"{}", {"X-Evil": "a\r\nHost: b"}, connect_timeout=5)
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(UpstreamUnreachable):
        await upstream.post(nobody, b"{}", {}, connect_timeout=5)
    assert not upstream.handles("ftp://example.com/x") and upstream.handles(
        "https://example.com/v1"
    )
    upstream.close()


def test_keep_alive_lengths_chunks_and_gzip() -> None:
    run(_keep_alive_lengths_chunks_and_gzip)


def test_an_answer_ended_by_closing_and_a_closed_connection_not_reused() -> None:
    run(_an_answer_ended_by_closing_and_a_closed_connection_not_reused)


def test_failures_are_named() -> None:
    run(_failures_are_named)


async def _streams_line_by_line_and_reuse_the_connection(server: Server) -> None:
    events = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
    halves = events[:9], events[9:]
    chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    chunked += b"Transfer-Encoding: chunked\r\n\r\n"
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(h), h) for h in halves) + b"0\r\n\r\n"
    zipped = gzip.compress(events)
    server.script = [
        (chunked, False),
        (answer(zipped, "Content-Encoding: gzip", "Content-Type: text/event-stream"), False),
        (answer(b'{"error": "nope"}'), False),
    ]
    upstream = Upstream(ssl.create_default_context())
    for _ in range(2):
        stream = await upstream.open(server.url, b"{}", {}, connect_timeout=5, read_timeout=5)
        assert stream.status == 200 and stream.headers["content-type"] == "text/event-stream"
        lines = [line async for line in stream.content]
        stream.release()
        assert b"".join(lines) == events and lines[0] == b'data: {"n": 1}\n'
    whole = await upstream.post(server.url, b"{}", {}, connect_timeout=5)
    assert whole.body == b'{"error": "nope"}'
    upstream.close()
    assert server.connections == 1  # each stream read to its end gave the connection back


async def _a_stream_left_early_or_stalled_closes_its_connection(server: Server) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    first = b'data: {"n": 1}\n\n'
    server.script = [(head + b"%x\r\n%s\r\n" % (len(first), first), False), (head, False)]
    upstream = Upstream(ssl.create_default_context())
    left = await upstream.open(server.url, b"{}", {}, connect_timeout=5, read_timeout=5)
    assert await left.content.__anext__() == b'data: {"n": 1}\n'
    left.release()  # the client went away mid-stream: the connection cannot be reused
    stalled = await upstream.open(server.url, b"{}", {}, connect_timeout=5, read_timeout=0.3)
    with pytest.raises(TimeoutError):
        await stalled.content.__anext__()
    stalled.release()
    upstream.close()
    assert server.connections == 2


async def _a_whole_answer_past_its_time_limit(server: Server) -> None:
    server.script = [(answer(b'{"n": 1}'), False), (b"", False), (answer(b'{"n": 3}'), False)]
    upstream = Upstream(ssl.create_default_context())
    quick = await upstream.post(server.url, b"{}", {}, connect_timeout=5, timeout=0.3)
    await asyncio.sleep(0.5)  # the answered call's timer is gone: nothing fires on the idle one
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await upstream.post(server.url, b"{}", {}, connect_timeout=5, timeout=0.3)
    waited = asyncio.get_running_loop().time() - started
    after = await upstream.post(server.url, b"{}", {}, connect_timeout=5, timeout=5)
    upstream.close()
    assert quick.body == b'{"n": 1}' and after.body == b'{"n": 3}'
    assert 0.25 <= waited < 2.0
    assert server.connections == 2  # the timed-out connection was closed, not reused


def test_a_whole_answer_past_its_time_limit_is_a_timeout() -> None:
    run(_a_whole_answer_past_its_time_limit)


def test_streams_line_by_line_and_reuse_the_connection() -> None:
    run(_streams_line_by_line_and_reuse_the_connection)


def test_a_stream_left_early_or_stalled_closes_its_connection() -> None:
    run(_a_stream_left_early_or_stalled_closes_its_connection)
