"""Streamed answers: chunks passed through as they arrive, the call recorded when they end.

:func:`stream_chat` relays ``chat.completion.chunk`` / ``text_completion`` events (MLflow and
OpenAI clients read the same ones); :func:`stream_responses` turns a chat stream into the
Responses API's events; :func:`stream_native_responses` relays a provider's own Responses
stream. The first two are views on ``relay.py``'s wrapper, which keeps the call's usage, time
to first token and choices and records it. Each opens the provider's stream before answering,
so a provider that refuses the call is answered as a plain error (and a route can still fall
back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response, StreamingResponse

from llmscope.collector.gateway.body import dump_json
from llmscope.collector.gateway.providers import Provider, ProviderError
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.relay import DISCONNECTED, relay
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
    return f"data: {dump_json(chunk).decode()}\n\n"


class ChatView:
    """Chunks relayed as they come (the usage chunk only when the client asked for it).

    On MLflow's paths, as MLflow's server does: the usage chunk (``choices: []``) is always
    relayed, and a chat chunk names the ``provider`` that answered.
    """

    def __init__(self, flavor: str, wants_usage: bool, provider: str | None = None) -> None:
        self.flavor = flavor
        self.wants_usage = wants_usage or flavor == "mlflow"
        self.provider = provider

    def start(self) -> Iterable[str]:
        return ()

    def feed(self, chunk: dict[str, Any]) -> Iterable[str]:
        if not chunk.get("choices") and not self.wants_usage:
            return ()  # the usage chunk the gateway asked for, not the client
        if self.provider is not None:
            chunk = {**chunk, "provider": self.provider}
        return (_data(chunk),)

    def finish(self) -> Iterable[str]:
        return ("data: [DONE]\n\n",)

    def fail(self, error: ProviderError, chunk: dict[str, Any] | None) -> Iterable[str]:
        if chunk is not None:
            return (_data(chunk),)
        return (_data(error_body(self.flavor, error.status, error.message)),)


class ResponsesView:
    """A chat stream re-told as the Responses API's events."""

    def __init__(self, translator: ResponsesStream) -> None:
        self.translator = translator

    def start(self) -> Iterable[str]:
        return self.translator.start()

    def feed(self, chunk: dict[str, Any]) -> Iterable[str]:
        return self.translator.feed(chunk)

    def finish(self) -> Iterable[str]:
        return self.translator.finish()

    def fail(self, error: ProviderError, chunk: dict[str, Any] | None) -> Iterable[str]:
        return self.translator.fail(error.message)


async def stream_chat(gateway: Gateway, call: Call, provider: Provider, flavor: str) -> Response:
    """Relay a chat or completions stream as the provider sends it."""
    opener = provider.chat_stream if call.kind == "chat" else provider.completions_stream
    options = call.body.get("stream_options")
    wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    chunks = await opener(call.body)  # ProviderError here: answered as a plain error
    named = call.provider if flavor == "mlflow" and call.kind == "chat" else None
    view = ChatView(flavor, wants_usage, provider=named)
    return _sse(relay(call, chunks, view, gateway.record), call)


async def stream_responses(
    gateway: Gateway, call: Call, provider: Provider, original: dict[str, Any]
) -> Response:
    """A chat stream re-told as the Responses API's event stream."""
    chunks = await provider.chat_stream(call.body)
    view = ResponsesView(ResponsesStream(original, call.model or ""))
    return _sse(relay(call, chunks, view, gateway.record), call)


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
                        call.take_id(final)
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
            call.fail(DISCONNECTED)
            raise
        finally:
            gateway.record(call)

    return _sse(events(), call)
