"""The gateway's fast path (``fast.py``): the same answers as the FastAPI routes, the same limits.

Two collectors run the same config against one provider that always answers the same bytes:
one as served (the fast path answers the gateway's POST paths), one with the fast path taken
out (every call through FastAPI's routing to ``routes.py``). Every path, and every error, must
read byte for byte the same on both.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmscope.app.server import create_app
from llmscope.collector.api.auth import CACHE_SECONDS
from llmscope.collector.gateway.body import BodyRefused, parse_json
from llmscope.collector.gateway.fast import FastPath, gateway_call
from llmscope.collector.gateway.shapes import RECORD_HEADER
from llmscope.collector.ingest.recorder import _from_json, _line, _to_json
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.keys import create_key
from tests.collector.gateway.conftest import wait_for_records
from tests.collector.gateway.fake_provider import ServerThread
from tests.conftest import free_port

# What a provider may send: indented, keys in its own order, non-ASCII as it is.
ANSWERS = {
    "chat/completions": b"""{
  "id": "chatcmpl-fixed", "object": "chat.completion", "created": 1764900000,
  "model": "gpt-4o-mini",
  "choices": [{"index": 0, "finish_reason": "stop",
               "message": {"role": "assistant",
                           "content": "Caf\xc3\xa9 at 9 \xe2\x80\x94 \\u00e9"}}],
  "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
  "system_fingerprint": "fp_1"
}""",
    "completions": b"""{"id": "cmpl-fixed", "object": "text_completion", "created": 1764900000,
  "model": "gpt-3.5-turbo-instruct",
  "choices": [{"index": 0, "text": " Paris.", "finish_reason": "stop", "logprobs": null}],
  "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}""",
    "embeddings": b"""{"object": "list", "model": "text-embedding-3-small",
  "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 1e-05]}],
  "usage": {"prompt_tokens": 2, "total_tokens": 2}}""",
    "responses": b"""{"id": "resp_fixed", "object": "response", "created_at": 1764900000,
  "status": "completed", "model": "gpt-4o-mini",
  "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
              "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]}],
  "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}""",
}
SURROGATE = (
    b'{"id": "chatcmpl-s", "object": "chat.completion", "created": 1, "model": "m", '
    b'"choices": [{"index": 0, "message": {"role": "assistant", "content": "a\\ud800b"}, '
    b'"finish_reason": "stop"}]}'
)

CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-fixed, openai_api_base: "{base}/v1"}}
  - name: completions
    endpoint_type: llm/v1/completions
    model:
      provider: openai
      name: gpt-3.5-turbo-instruct
      config: {{openai_api_key: sk-fixed, openai_api_base: "{base}/v1"}}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: openai
      name: text-embedding-3-small
      config: {{openai_api_key: sk-fixed, openai_api_base: "{base}/v1"}}
  - name: moved
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-fixed, openai_api_base: "{base}/moved"}}
  - name: odd
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-fixed, openai_api_base: "{base}/odd"}}
"""

JSON_TYPE = {"content-type": "application/json"}
TEXT_TYPE = {"content-type": "text/plain"}
CHAT = {"messages": [{"role": "user", "content": "When does the café open?"}]}
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": "chat", **CHAT}),
    ("/v1/completions", {"model": "completions", "prompt": "The capital of France is"}),
    ("/v1/embeddings", {"model": "embeddings", "input": "hello"}),
    ("/v1/responses", {"model": "chat", "input": "Say hello"}),
    ("/endpoints/chat/invocations", CHAT),
    ("/gateway/chat/invocations", CHAT),
    ("/endpoints/completions/invocations", {"prompt": "The capital of France is"}),
    ("/endpoints/embeddings/invocations", {"input": ["hello"]}),
]


class FixedProvider:
    """An OpenAI-format server answering :data:`ANSWERS` as they are, after ``delay``."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.app = Starlette(
            routes=[
                Route("/v1/{path:path}", self.answer, methods=["POST"]),
                Route("/odd/chat/completions", self.odd, methods=["POST"]),
                Route("/moved/chat/completions", self.moved, methods=["POST"]),
            ]
        )

    async def answer(self, request: Request) -> Response:
        await request.body()
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(ANSWERS[request.path_params["path"]], media_type="application/json")

    async def moved(self, request: Request) -> Response:
        return Response(status_code=307, headers={"Location": "/v1/chat/completions"})

    async def odd(self, request: Request) -> Response:
        return Response(SURROGATE, media_type="application/json")


@dataclass
class Pair:
    fast: str  # base URL of the collector as served
    routed: str  # the same config with the fast path taken out
    provider: FixedProvider
    settings: Settings


def without_fast_path(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPath]
    return app


@pytest.fixture
def pair(sqlite_settings: Settings, tmp_path: Path) -> Iterator[Pair]:
    provider = FixedProvider()
    upstream = ServerThread(provider.app, free_port()).start()
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.format(base=upstream.url))
    settings = sqlite_settings.model_copy(
        update={"gateway_config": config, "max_body_bytes": 64_000, "max_inflight_requests": 2}
    )
    fast_app = create_app(settings)
    assert any(m.cls is FastPath for m in fast_app.user_middleware)
    fast = ServerThread(fast_app, free_port()).start()
    routed = ServerThread(without_fast_path(create_app(settings)), free_port()).start()
    try:
        yield Pair(fast.url, routed.url, provider, settings)
    finally:
        fast.stop()
        routed.stop()
        upstream.stop()


def same_answer(pair: Pair, path: str, **request: Any) -> httpx.Response:
    """POST to both collectors; asserts status, body and headers agree; the fast one's answer."""
    answers = [httpx.post(base + path, timeout=30, **request) for base in (pair.fast, pair.routed)]
    fast, routed = answers
    assert (fast.status_code, fast.content) == (routed.status_code, routed.content), path

    def headers(response: httpx.Response) -> dict[str, str]:
        skip = {"date", RECORD_HEADER.lower()}
        return {k: v for k, v in response.headers.items() if k not in skip}

    assert headers(fast) == headers(routed), path
    assert (RECORD_HEADER in fast.headers) == (RECORD_HEADER in routed.headers)
    return fast


def test_gateway_call_names_the_six_paths_and_nothing_else() -> None:
    assert gateway_call("/v1/chat/completions") == (None, "chat", "openai")
    assert gateway_call("/v1/completions") == (None, "completions", "openai")
    assert gateway_call("/v1/embeddings") == (None, "embeddings", "openai")
    assert gateway_call("/v1/responses") == (None, "chat", "responses")
    assert gateway_call("/endpoints/my-chat/invocations") == ("my-chat", None, "mlflow")
    assert gateway_call("/gateway/my-chat/invocations") == ("my-chat", None, "mlflow")
    others = ["/v1/chat/completions/", "/endpoints//invocations", "/endpoints/a/b/invocations"]
    others += ["/v1/traces", "/api/v1/records", "/v1/models", "/gateway/x/invocations/"]
    for other in others:
        assert gateway_call(other) is None, other


@pytest.mark.parametrize(("path", "body"), CALLS, ids=[c[0] + str(i) for i, c in enumerate(CALLS)])
def test_each_path_answers_as_the_fastapi_route(
    pair: Pair, path: str, body: dict[str, Any]
) -> None:
    response = same_answer(pair, path, json=body)
    assert response.status_code == 200, response.text


def test_errors_answer_as_the_fastapi_route(pair: Pair) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", {"json": {"model": "nope", **CHAT}}),  # 404
        ("/endpoints/nope/invocations", {"json": CHAT}),
        ("/v1/chat/completions", {"content": b"{not json", "headers": JSON_TYPE}),
        ("/v1/chat/completions", {"content": b"model=chat", "headers": TEXT_TYPE}),
        ("/v1/embeddings", {"json": {"model": "chat", "input": "x"}}),  # wrong kind: 400
        ("/endpoints/chat/invocations", {"json": {"messages": "not a list"}}),  # 422, MLflow's
        ("/v1/chat/completions", {"json": {"model": "chat", "messages": [], "pad": "x" * 70_000}}),
    ]  # fmt: skip
    statuses = [same_answer(pair, path, **request).status_code for path, request in cases]
    assert statuses == [404, 404, 400, 415, 400, 422, 413]


def test_an_unchanged_openai_answer_is_relayed_as_the_provider_sent_it(pair: Pair) -> None:
    chat = httpx.post(f"{pair.fast}/v1/chat/completions", json={"model": "chat", **CHAT})
    assert chat.content == ANSWERS["chat/completions"]
    embeddings = httpx.post(
        f"{pair.fast}/v1/embeddings", json={"model": "embeddings", "input": "x"}
    )
    assert embeddings.content == ANSWERS["embeddings"]
    # MLflow's shape is the gateway's own: written anew, compact
    mlflow = httpx.post(f"{pair.fast}/endpoints/chat/invocations", json=CHAT)
    assert mlflow.content != ANSWERS["chat/completions"] and b"\n" not in mlflow.content
    assert mlflow.json()["choices"][0]["message"]["content"] == "Café at 9 — é"
    engine = make_engine(pair.settings.database_url)
    try:
        records = wait_for_records(engine, 3)
    finally:
        engine.dispose()
    assert [r.response for r in records] == ["Café at 9 — é", None, "Café at 9 — é"]
    assert records[0].input_tokens == 7 and records[0].output_tokens == 5


def test_a_redirecting_provider_is_followed_as_before(pair: Pair) -> None:
    """The lean client follows no redirects; such a call is sent again through aiohttp."""
    for stream in (False, True):
        body = {"model": "moved", "stream": stream, **CHAT}
        response = httpx.post(f"{pair.fast}/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        if not stream:
            assert response.json()["choices"][0]["message"]["content"] == "Café at 9 — é"


def test_an_answer_whose_text_was_repaired_is_written_anew(pair: Pair) -> None:
    """A lone surrogate is replaced while parsing: the client gets the text the record holds."""
    response = httpx.post(f"{pair.fast}/v1/chat/completions", json={"model": "odd", **CHAT})
    assert response.status_code == 200
    assert response.content != SURROGATE
    assert response.json()["choices"][0]["message"]["content"] == "a\ufffdb"


def test_keys_and_admission_apply_to_the_fast_path(pair: Pair) -> None:
    pair.provider.delay = 1.0
    results: list[int] = []

    def call() -> None:
        results.append(
            httpx.post(
                f"{pair.fast}/v1/chat/completions", json={"model": "chat", **CHAT}
            ).status_code
        )

    slow = [threading.Thread(target=call) for _ in range(2)]  # max_inflight_requests: 2
    for thread in slow:
        thread.start()
    time.sleep(0.4)  # both admitted and waiting on the provider
    refused = httpx.post(f"{pair.fast}/v1/chat/completions", json={"model": "chat", **CHAT})
    for thread in slow:
        thread.join()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert sorted(results) == [200, 200]
    pair.provider.delay = 0.0

    engine = make_engine(pair.settings.database_url)
    with Session(engine) as session:
        key = create_key(session, name="app", scope="read")
        session.commit()
    engine.dispose()
    time.sleep(CACHE_SECONDS + 0.1)  # "no keys yet" is believed that long
    body = {"model": "chat", **CHAT}
    denied = httpx.post(f"{pair.fast}/v1/chat/completions", json=body)
    assert denied.status_code == 401
    wrong = httpx.post(
        f"{pair.fast}/endpoints/chat/invocations",
        json=CHAT,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert wrong.status_code == 403
    assert (
        wrong.content
        == httpx.post(
            f"{pair.routed}/endpoints/chat/invocations",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}"},
        ).content
    )


def test_bodies_parse_as_json_parsed_them() -> None:
    """orjson first; what it refuses or reads otherwise takes json's way, with json's verdict."""
    assert parse_json(b'{"seed": 123456789012345678901234567890}', "body") == {
        "seed": 123456789012345678901234567890  # past 64 bits: exact, not a float
    }
    assert parse_json(b'["\\ud800x", 0.000123456789012345678901]', "body") == [
        "\ufffdx",
        0.000123456789012345678901,
    ]
    for bad, message in [
        (b"[NaN]", "body is not valid JSON"),
        (b"{", "body is not valid JSON"),
        (b"[" * 65 + b"]" * 65, "body is nested deeper than 64 levels"),
        (b"[" * 5000 + b"]" * 5000, "body is nested deeper than 64 levels"),
    ]:
        with pytest.raises(BodyRefused, match=re.escape(message)):
            parse_json(bad, "body")


def test_journal_lines_read_back_as_written() -> None:
    when = datetime(2026, 12, 5, 8, 30, 15, 123456, tzinfo=UTC)
    row = {"id": "r1", "timestamp": when, "received_at": when, "prompt": "café ☕", "tags": None,
           "latency_ms": 12.5, "input_tokens": 2**70}  # fmt: skip
    assert _from_json(_line(row).decode()) == row
    assert _line(row).endswith(b"\n") and _line(row).count(b"\n") == 1
    plain = {"id": "r2", "timestamp": when, "response": "ok", "choices": [{"i": 1}]}
    assert _line(plain) == (_to_json(plain) + "\n").encode()  # orjson writes what json wrote
    with pytest.raises(UnicodeEncodeError):  # Recorder.submit replaces it, then journals
        _line({"id": "r3", "prompt": "a\ud800"})
