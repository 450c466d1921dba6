"""A small real LLM provider for tests and benchmarks: OpenAI's and Anthropic's wire formats.

It answers ``Echo: <last user message>`` over HTTP on 127.0.0.1, streams Server-Sent Events
the way each vendor does (OpenAI: ``chat.completion.chunk``s, a final usage chunk when
``stream_options.include_usage`` is set, ``[DONE]``; Anthropic: ``message_start`` ...
``message_stop``), checks the API key, keeps every request it got, and can be told to fail
the next calls with a given status, body and headers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.collector.gateway.fake_tools import (
    anthropic_shape_error,
    anthropic_tool_answer,
    anthropic_tool_use,
    responses_answer,
    tool_call_for,
)

OPENAI_KEY = "sk-test-OPENAIa1b2c3d4e5f6g7h8i9j0"
ANTHROPIC_KEY = "sk-ant-test-ANTHROPICz9y8x7w6v5u4"


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


@dataclass
class Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FakeProvider:
    """State shared by the fake's routes: received requests, scripted failures, delay."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.failures: deque[Failure] = deque()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
                Route("/v1/completions", self.openai_completions, methods=["POST"]),
                Route("/v1/embeddings", self.openai_embeddings, methods=["POST"]),
                Route("/v1/responses", self.openai_responses, methods=["POST"]),
                # Databricks model serving: the same wire format under /serving-endpoints
                Route("/serving-endpoints/chat/completions", self.openai_chat, methods=["POST"]),
                Route("/anthropic/v1/messages", self.anthropic_messages, methods=["POST"]),
            ]
        )

    def fail_next(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        for _ in range(times):
            self.failures.append(Failure(status, body, headers or {}))

    async def _take(self, request: Request, key_ok: bool) -> tuple[dict[str, Any], Response | None]:
        body = await request.json()
        self.requests.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            failure = self.failures.popleft()
            return body, JSONResponse(failure.body, failure.status, headers=failure.headers)
        if not key_ok:
            return body, JSONResponse(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                    }
                },
                401,
            )
        return body, None

    # --- OpenAI ---------------------------------------------------------------------------
    def _openai_key_ok(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {OPENAI_KEY}"

    async def openai_chat(self, request: Request) -> Response:
        body, failed = await self._take(request, self._openai_key_ok(request))
        if failed:
            return failed
        text = f"Echo: {_last_user(body['messages'])}"
        call = tool_call_for(body)
        if call is not None:
            return self._openai_tool_answer(body, call)
        prompt_tokens = sum(_words(str(m.get("content"))) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _words(text),
            "total_tokens": prompt_tokens + _words(text),
        }
        base = {"id": "chatcmpl-fake1", "created": 1700000000, "model": body["model"]}
        if body.get("stream"):

            def chunks() -> Iterator[dict[str, Any]]:
                pieces = text.split(" ")
                for i, piece in enumerate(pieces):
                    delta = {"content": piece + (" " if i < len(pieces) - 1 else "")}
                    if i == 0:
                        delta["role"] = "assistant"
                    finish = "stop" if i == len(pieces) - 1 else None
                    yield {
                        **base,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}

            return self._openai_sse(chunks())
        return JSONResponse(
            {
                **base,
                "object": "chat.completion",
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": i,
                        "message": {
                            "role": "assistant",
                            "content": text if i == 0 else f"{text} (take {i + 1})",
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for i in range(body.get("n") or 1)
                ],
                "usage": usage,
            }
        )

    async def openai_completions(self, request: Request) -> Response:
        body, failed = await self._take(request, self._openai_key_ok(request))
        if failed:
            return failed
        text = f"Echo: {body['prompt']}"
        usage = {
            "prompt_tokens": _words(body["prompt"]),
            "completion_tokens": _words(text),
            "total_tokens": _words(body["prompt"]) + _words(text),
        }
        base = {
            "id": "cmpl-fake1",
            "object": "text_completion",
            "created": 1700000000,
            "model": body["model"],
        }
        if body.get("stream"):

            def chunks() -> Iterator[dict[str, Any]]:
                for i, piece in enumerate(text.split(" ")):
                    yield {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "text": (" " if i else "") + piece,
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    }
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield {**base, "choices": [], "usage": usage}

            return self._openai_sse(chunks())
        return JSONResponse(
            {
                **base,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    async def openai_embeddings(self, request: Request) -> Response:
        body, failed = await self._take(request, self._openai_key_ok(request))
        if failed:
            return failed
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 0.5, -0.25]}
            for i, t in enumerate(texts)
        ]
        tokens = sum(_words(t) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _openai_tool_answer(self, body: dict[str, Any], call: dict[str, Any]) -> Response:
        usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
        base = {"id": "chatcmpl-tool1", "created": 1700000000, "model": body["model"]}
        if body.get("stream"):
            arguments = call["function"]["arguments"]
            pieces = [arguments[:5], arguments[5:12], arguments[12:]]

            def chunks() -> Iterator[dict[str, Any]]:
                head = {**call, "index": 0, "function": {"name": call["function"]["name"]}}
                head["function"]["arguments"] = ""
                first = {"role": "assistant", "content": None, "tool_calls": [head]}
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": first, "finish_reason": None}],
                }
                for piece in pieces:
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    yield {
                        **base,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    }
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                }
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}

            return self._openai_sse(chunks())
        message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
        return JSONResponse(
            {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": usage,
            }
        )

    async def openai_responses(self, request: Request) -> Response:
        body, failed = await self._take(request, self._openai_key_ok(request))
        if failed:
            return failed
        return responses_answer(body)

    @staticmethod
    def _openai_sse(chunks: Iterator[dict[str, Any]]) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
                await asyncio.sleep(0.005)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # --- Anthropic ------------------------------------------------------------------------
    async def anthropic_messages(self, request: Request) -> Response:
        ok = (
            request.headers.get("x-api-key") == ANTHROPIC_KEY
            and "anthropic-version" in request.headers
        )
        body, failed = await self._take(request, ok)
        if failed:
            return failed
        invalid = anthropic_shape_error(body)
        if invalid:
            error = {"type": "invalid_request_error", "message": invalid}
            return JSONResponse({"type": "error", "error": error}, 400)
        text = f"Echo: {_last_user(body['messages'])}"
        tool = anthropic_tool_use(body)
        if tool is not None:
            return anthropic_tool_answer(body, tool)
        input_tokens = sum(_words(str(m["content"])) for m in body["messages"]) + _words(
            body.get("system", "")
        )
        message = {
            "id": "msg_fake1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    **message,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": _words(text)},
                }
            )

        async def events() -> AsyncIterator[str]:
            def event(name: str, data: dict[str, Any]) -> str:
                return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

            yield event(
                "message_start",
                {
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                    }
                },
            )
            yield event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            yield event("ping", {})
            for i, piece in enumerate(text.split(" ")):
                yield event(
                    "content_block_delta",
                    {
                        "index": 0,
                        "delta": {"type": "text_delta", "text": (" " if i else "") + piece},
                    },
                )
                await asyncio.sleep(0.005)
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": _words(text)},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")


class ServerThread:
    """Serves an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 20) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    server = ServerThread(app, port).start()
    try:
        yield server.url
    finally:
        server.stop()
