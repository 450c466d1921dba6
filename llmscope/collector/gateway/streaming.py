"""Streamed answers: chunks passed through as they arrive, the call recorded when they end.

:func:`stream_chat` relays ``chat.completion.chunk`` / ``text_completion`` events (MLflow and
OpenAI clients read the same ones); :func:`stream_responses` turns a chat stream into the
Responses API's events; :func:`stream_native_responses` relays a provider's own Responses
stream. Each assembles what was said (text and tool calls, every choice) for the record, and
opens the provider's stream before answering, so a provider that refuses the call is answered
as a plain error (and a route can still fall back).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response, StreamingResponse

from llmscope.collector.gateway.choices import StreamAssembler
from llmscope.collector.gateway.providers import Provider, ProviderError
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.responses import (
    ResponsesStream,
    response_choices,
    response_usage,
)
from llmscope.collector.gateway.shapes import RECORD_HEADER, error_body

if TYPE_CHECKING:
    from llmscope.collector.gateway.service import Gateway


def _sse(events: AsyncIterator[str], call: Call) -> Response:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={RECORD_HEADER: call.id, "Cache-Control": "no-cache"},
    )


def _data(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


async def stream_chat(gateway: Gateway, call: Call, provider: Provider, flavor: str) -> Response:
    """Relay a chat or completions stream as the provider sends it."""
    opener = provider.chat_stream if call.kind == "chat" else provider.completions_stream
    options = call.body.get("stream_options")
    wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    chunks = await opener(call.body)  # ProviderError here: answered as a plain error

    async def events() -> AsyncIterator[str]:
        assembler = StreamAssembler()
        try:
            async for chunk in chunks:
                if "error" in chunk and not chunk.get("choices"):
                    call.fail(ProviderError(502, chunk).message)
                    yield _data(chunk)
                    return
                if chunk.get("usage"):
                    call.take_usage(chunk["usage"])
                if assembler.feed(chunk) and call.ttft_ms is None:
                    call.ttft_ms = call.elapsed_ms()
                if not chunk.get("choices") and not wants_usage:
                    continue  # the usage chunk the gateway asked for, not the client
                yield _data(chunk)
            yield "data: [DONE]\n\n"
        except ProviderError as exc:
            call.fail(exc.message)
            yield _data(error_body(flavor, exc.status, exc.message))
        except (asyncio.CancelledError, GeneratorExit):
            call.fail("client disconnected during the stream")
            raise
        finally:
            call.take_choices(assembler.choices())
            gateway.record(call)

    return _sse(events(), call)


async def stream_responses(
    gateway: Gateway, call: Call, provider: Provider, original: dict[str, Any]
) -> Response:
    """A chat stream re-told as the Responses API's event stream."""
    chunks = await provider.chat_stream(call.body)
    translator = ResponsesStream(original, call.model or "")

    async def events() -> AsyncIterator[str]:
        assembler = StreamAssembler()
        try:
            for event in translator.start():
                yield event
            async for chunk in chunks:
                if "error" in chunk and not chunk.get("choices"):
                    failure = ProviderError(502, chunk).message
                    call.fail(failure)
                    for event in translator.fail(failure):
                        yield event
                    return
                if chunk.get("usage"):
                    call.take_usage(chunk["usage"])
                if assembler.feed(chunk) and call.ttft_ms is None:
                    call.ttft_ms = call.elapsed_ms()
                for event in translator.feed(chunk):
                    yield event
            for event in translator.finish():
                yield event
        except ProviderError as exc:
            call.fail(exc.message)
            for event in translator.fail(exc.message):
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            call.fail("client disconnected during the stream")
            raise
        finally:
            call.take_choices(assembler.choices())
            gateway.record(call)

    return _sse(events(), call)


async def stream_native_responses(
    gateway: Gateway, call: Call, provider: Provider, request: dict[str, Any]
) -> Response:
    """Relay a provider's own Responses event stream; the final response is the record."""
    stream = await provider.responses_stream(request)

    async def events() -> AsyncIterator[str]:
        try:
            async for event in stream:
                kind = str(event.get("type", ""))
                if kind.endswith(".delta") and call.ttft_ms is None:
                    call.ttft_ms = call.elapsed_ms()
                final = event.get("response")
                if kind in {"response.completed", "response.incomplete", "response.failed"}:
                    if isinstance(final, dict):
                        call.take_usage(response_usage(final))
                        call.take_choices(response_choices(final))
                    if kind == "response.failed":
                        error = (final or {}).get("error") or {}
                        call.fail(str(error.get("message") or "the response failed"))
                elif kind == "error":
                    call.fail(str(event.get("message") or "the response failed"))
                yield f"event: {kind}\n{_data(event)}"
        except ProviderError as exc:
            call.fail(exc.message)
            yield f"event: error\n{_data({'type': 'error', 'message': exc.message})}"
        except (asyncio.CancelledError, GeneratorExit):
            call.fail("client disconnected during the stream")
            raise
        finally:
            gateway.record(call)

    return _sse(events(), call)
