"""The stream wrapper: what a relayed chunk stream sends and what it leaves on the call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from llmscope.collector.gateway.extension import CallMeta
from llmscope.collector.gateway.providers import ProviderError
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.relay import DISCONNECTED, relay
from llmscope.collector.gateway.responses import ResponsesStream
from llmscope.collector.gateway.streaming import ChatView, ResponsesView


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "choices": choices, **extra}


ROLE = _chunk({"role": "assistant", "content": ""})
HEL = _chunk({"content": "Hel"})
LO = _chunk({"content": "lo"}, "stop")
USAGE = _chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})


def _sse(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


async def _from(*items: dict[str, Any] | ProviderError) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        if isinstance(item, ProviderError):
            raise item
        yield item


def _call() -> Call:
    return Call(endpoint="chat", kind="chat", body={}, meta=CallMeta())


async def _all(texts: AsyncIterator[str]) -> list[str]:
    return [text async for text in texts]


def test_a_whole_stream_is_relayed_and_recorded_once() -> None:
    call, recorded = _call(), []
    texts = relay(call, _from(ROLE, HEL, LO, USAGE), ChatView("openai", False), recorded.append)
    # the usage chunk was the gateway's idea: kept on the call, not sent
    assert asyncio.run(_all(texts)) == [_sse(ROLE), _sse(HEL), _sse(LO), "data: [DONE]\n\n"]
    assert recorded == [call]
    assert (call.status, call.response, call.input_tokens, call.output_tokens) == (
        "ok",
        "Hello",
        5,
        2,
    )
    assert call.choices[0].finish_reason == "stop"


def test_the_usage_chunk_goes_to_a_client_that_asked() -> None:
    call, recorded = _call(), []
    texts = relay(call, _from(HEL, USAGE), ChatView("openai", True), recorded.append)
    assert asyncio.run(_all(texts)) == [_sse(HEL), _sse(USAGE), "data: [DONE]\n\n"]


def test_the_first_token_is_timed_at_the_first_chunk_with_content() -> None:
    call, recorded = _call(), []
    texts = relay(call, _from(ROLE, HEL, LO), ChatView("openai", False), recorded.append)

    async def steps() -> list[float | None]:
        seen = []
        async for _text in texts:
            seen.append(call.ttft_ms)
        return seen

    first, second, third, done = asyncio.run(steps())
    assert first is None  # the role chunk says nothing yet
    assert second is not None and second >= 0
    assert third == second and done == second


def test_an_error_chunk_ends_the_stream_as_sent() -> None:
    call, recorded = _call(), []
    error = {"error": {"message": "overloaded", "type": "overloaded_error"}}
    texts = relay(call, _from(HEL, error, LO), ChatView("openai", False), recorded.append)
    assert asyncio.run(_all(texts)) == [_sse(HEL), _sse(error)]
    assert (call.status, call.error, call.response) == ("error", "502: overloaded", "Hel")
    assert recorded == [call]


def test_a_provider_failure_mid_stream_is_told_in_the_flavor_asked() -> None:
    call, recorded = _call(), []
    failure = ProviderError(504, {"error": {"message": "stalled"}})
    texts = relay(call, _from(HEL, failure), ChatView("mlflow", False), recorded.append)
    assert asyncio.run(_all(texts)) == [
        _sse(HEL),
        _sse({"detail": "504: stalled", "message": "504: stalled"}),
    ]
    assert (call.status, call.error) == ("error", "504: stalled")
    assert recorded == [call]


def test_a_client_that_leaves_is_recorded_with_what_it_got() -> None:
    call, recorded = _call(), []
    texts = relay(call, _from(HEL, LO), ChatView("openai", False), recorded.append)

    async def leave_after_one() -> None:
        await anext(texts)
        await texts.aclose()

    asyncio.run(leave_after_one())
    assert (call.status, call.error, call.response) == ("error", DISCONNECTED, "Hel")
    assert recorded == [call]


def test_a_responses_view_starts_and_finishes_the_response() -> None:
    call, recorded = _call(), []
    view = ResponsesView(ResponsesStream({"input": "hi"}, "m"))
    texts = asyncio.run(_all(relay(call, _from(HEL, LO), view, recorded.append)))
    kinds = [text.split("\n", 1)[0] for text in texts]
    assert kinds[:2] == ["event: response.created", "event: response.in_progress"]
    assert kinds[-1] == "event: response.completed"
    assert call.response == "Hello" and recorded == [call]
