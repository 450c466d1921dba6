"""The one wrapper around a provider's chunk stream: the call's bookkeeping while it is relayed.

:func:`relay` reads ``chat.completion.chunk`` / ``text_completion`` chunks and keeps the
:class:`~llmscope.collector.gateway.recording.Call` up to date: the usage a chunk carries, the
time to the first token (the first chunk with text or a tool call), every choice assembled for
the record, a failure in the stream (an ``{"error": ...}`` chunk or a raised
:class:`ProviderError`) and a client that went away. It hands the call to ``record`` exactly
once, however the stream ends. What the client is sent is a :class:`StreamView`'s business:
chunks as they come (``streaming.py``'s chat view) or the Responses API's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

from llmscope.collector.gateway.choices import StreamAssembler
from llmscope.collector.gateway.providers import ProviderError
from llmscope.collector.gateway.recording import Call

DISCONNECTED = "client disconnected during the stream"


class StreamView(Protocol):
    """How a chunk stream is told to the client: each method gives the SSE text to send."""

    def start(self) -> Iterable[str]: ...

    def feed(self, chunk: dict[str, Any]) -> Iterable[str]: ...

    def finish(self) -> Iterable[str]: ...

    def fail(self, error: ProviderError, chunk: dict[str, Any] | None) -> Iterable[str]:
        """The stream failed: ``chunk`` is the provider's error chunk, None when it raised."""
        ...


async def relay(
    call: Call,
    chunks: AsyncIterator[dict[str, Any]],
    view: StreamView,
    record: Callable[[Call], None],
) -> AsyncIterator[str]:
    """The SSE text of ``chunks`` as ``view`` tells them, with ``call`` kept and recorded."""
    assembler = StreamAssembler()
    try:
        for text in view.start():
            yield text
        async for chunk in chunks:
            if "error" in chunk and not chunk.get("choices"):
                error = ProviderError(502, chunk)
                call.fail(error.message)
                for text in view.fail(error, chunk):
                    yield text
                return
            call.take_id(chunk)
            if chunk.get("usage"):
                call.take_usage(chunk["usage"])
            if assembler.feed(chunk) and call.ttft_ms is None:
                call.ttft_ms = call.elapsed_ms()
            for text in view.feed(chunk):
                yield text
        for text in view.finish():
            yield text
    except ProviderError as exc:
        call.fail(exc.message)
        for text in view.fail(exc, None):
            yield text
    except (asyncio.CancelledError, GeneratorExit):
        call.fail(DISCONNECTED)
        raise
    finally:
        call.take_choices(assembler.choices())
        record(call)
