"""What a hostile or broken caller (or provider) sends: a clear 4xx or 502, and every call the
gateway forwards is recorded. A collector serving the gateway, the fake provider (and a
provider that answers badly) on local ports, real HTTP clients."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmscope.config import Settings
from llmscope.db import make_sessionmaker, session_scope
from llmscope.db.models import Record
from llmscope.keys import create_key
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider, ServerThread
from tests.conftest import count_rows, free_port

JSON = {"content-type": "application/json"}


def chat_bytes(content_json: str, model: str = "chat") -> bytes:
    """A chat request whose user content is ``content_json`` (JSON text, escapes kept)."""
    return b'{"model": "%s", "messages": [{"role": "user", "content": %s}]}' % (
        model.encode(),
        content_json.encode(),
    )


def test_a_lone_surrogate_in_a_prompt_is_replaced_forwarded_and_recorded(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions", content=chat_bytes(r'"bad \ud800 text"'), headers=JSON
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Echo: bad \ufffd text"
    assert provider.requests[0]["body"]["messages"][0]["content"] == "bad \ufffd text"
    [record] = wait_for_records(gw.engine, 1)
    assert record.id == answer.headers["X-LLMScope-Record-Id"]
    assert record.messages == [{"role": "user", "content": "bad \ufffd text"}]
    assert record.response == "Echo: bad \ufffd text" and record.status == "ok"


def test_rest_ingest_of_a_lone_surrogate_is_a_422_naming_the_field(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    single = b'{"endpoint": "e", "prompt": "bad \\ud800 text"}'
    batch = b'{"records": [{"endpoint": "e", "prompt": "ok"}, {"endpoint": "e", "tags": {"k": "\\udfff"}}]}'  # noqa: E501
    for body, where in [(single, "prompt"), (batch, "records[1].tags.k")]:
        answer = httpx.post(f"{gw.url}/api/v1/records", content=body, headers=JSON)
        assert answer.status_code == 422, answer.text
        assert answer.json()["message"].startswith(f"{where}: holds a lone surrogate")
    # a valid pair (an emoji written as two escapes) is text like any other
    emoji = b'{"id": "fine", "endpoint": "e", "prompt": "ok \\ud83d\\ude00"}'
    assert httpx.post(f"{gw.url}/api/v1/records", content=emoji, headers=JSON).status_code == 201
    with Session(gw.engine) as session:
        assert [r.prompt for r in session.scalars(select(Record))] == ["ok \U0001f600"]


def test_the_responses_api_takes_an_ingest_key(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    with session_scope(make_sessionmaker(gw.engine)) as session:
        key = create_key(session, name="app", scope="ingest")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    answer = client.responses.create(model="demo", input="How do I reset my password?")
    assert answer.output_text
    [record] = wait_for_records(gw.engine, 1)
    assert record.endpoint == "demo" and record.status == "ok"


def test_bare_base64_file_data_is_stored_as_a_reference(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    pdf = bytes(range(256)) * 1024  # 256 KiB
    data = base64.b64encode(pdf).decode()
    part = {"type": "file", "file": {"filename": "contract.pdf", "file_data": data}}
    content = [{"type": "text", "text": "Summarise this."}, part]
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": content}],  # type: ignore[misc, list-item]
    )
    sent = provider.requests[0]["body"]["messages"][0]["content"][1]
    assert sent["file"]["file_data"] == data  # the provider gets the file itself
    [record] = wait_for_records(gw.engine, 1)
    assert record.messages[0]["content"][1] == {
        "type": "file",
        "media_type": "application/pdf",
        "bytes": len(pdf),
        "sha256": hashlib.sha256(pdf).hexdigest(),
    }
    assert len(json.dumps(record.messages)) < 1000


def test_deep_nesting_is_a_400_not_a_500(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    deep_body = b'{"model": "chat", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = httpx.post(f"{gw.url}/v1/chat/completions", content=deep_body, headers=JSON)
    assert answer.status_code == 400, answer.text
    assert "nested deeper than 64 levels" in answer.json()["error"]["message"]
    # nested past the limit, still parsing: refused as well
    bounded = b'{"model": "chat", "x": ' + b"[" * 200 + b"]" * 200 + b"}"
    answer = httpx.post(f"{gw.url}/v1/chat/completions", content=bounded, headers=JSON)
    assert answer.status_code == 400 and "nested deeper" in answer.text
    variables = "[" * 5000 + "]" * 5000
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-LLMScope-Variables": f'{{"v": {variables}}}'},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"] == (
        "X-LLMScope-Variables: header is nested deeper than 64 levels"
    )
    assert provider.requests == []  # nothing was forwarded


def test_tags_are_bounded(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    many = json.dumps({f"k{i}": "v" for i in range(20_000)})
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions", json=body, headers={"X-LLMScope-Tags": many}
    )
    assert answer.status_code == 400, answer.text
    assert "at most 64 tags" in answer.json()["error"]["message"]
    enough = json.dumps({f"k{i}": "v" for i in range(64)})
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions", json=body, headers={"X-LLMScope-Tags": enough}
    )
    assert answer.status_code == 200
    assert len(provider.requests) == 1
    records = wait_for_records(gw.engine, 2)
    assert sorted(len(r.tags or {}) for r in records) == [0, 64]


def test_nan_in_a_body_is_refused_before_the_provider_is_called(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"model": "chat", "temperature": %s, "messages": []}' % constant
        answer = httpx.post(f"{gw.url}/v1/chat/completions", content=body, headers=JSON)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"] == "request body is not valid JSON"
    assert provider.requests == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_gateway_routes_take_json_content_types_only(
    content_type: str | None,
    sqlite_settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
) -> None:
    # what a web page can make a browser send anywhere without a CORS preflight
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    body = chat_bytes('"hi"')
    headers = {} if content_type is None else {"content-type": content_type}
    for path in ("/v1/chat/completions", "/endpoints/chat/invocations", "/v1/responses"):
        answer = httpx.post(f"{gw.url}{path}", content=body, headers=headers)
        assert answer.status_code == 415, (path, answer.text)
        assert "Content-Type must be application/json" in answer.text
    assert provider.requests == []
    charset = {"content-type": "application/json; charset=utf-8"}
    answer = httpx.post(f"{gw.url}/v1/chat/completions", content=body, headers=charset)
    assert answer.status_code == 200


def _bad_provider() -> Starlette:
    """Answers 200 with what no OpenAI client can read, by model name."""

    async def chat(request: Request) -> Response:
        model = (await request.json())["model"]
        bodies = {
            "html": (b"<html>upstream proxy error</html>", "text/html"),
            "truncated": (b'{"id": "chatcmpl-1", "choices": [{"mess', "application/json"),
            "shapeless": (b'{"id": "chatcmpl-1", "object": "chat.completion"}', "application/json"),
            "listed": (b"[1, 2, 3]", "application/json"),
        }
        content, media_type = bodies[model]
        return Response(content, 200, media_type=media_type)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture
def bad_provider() -> Iterator[str]:
    server = ServerThread(_bad_provider(), free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_provider_answer_that_is_not_json_or_malformed_is_a_502_recorded_as_an_error(
    settings: Settings, bad_provider: str, start_gateway: StartGateway
) -> None:
    names = ["html", "truncated", "shapeless", "listed"]
    config = "endpoints:\n" + "".join(
        f"""  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: {name}
      config: {{openai_api_key: sk-test-bad, openai_api_base: "{bad_provider}/v1"}}
"""
        for name in names
    )
    gw = start_gateway(settings, config)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    for name in names:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 502, (name, info.value.response.text)
        assert "the provider answered" in info.value.response.text
    records = wait_for_records(gw.engine, len(names))
    assert {r.endpoint: r.status for r in records} == dict.fromkeys(names, "error")
    by_name = {r.endpoint: r.error or "" for r in records}
    assert "not valid JSON" in by_name["html"] and "not valid JSON" in by_name["truncated"]
    assert "without a list of choices" in by_name["shapeless"]
    assert "a JSON list, not an object" in by_name["listed"]
    assert count_rows(gw.engine, Record) == len(names)
