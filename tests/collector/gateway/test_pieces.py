"""Pure pieces on hand-made inputs: media references, stream assembly, MLflow span formats,
record ids, the fast path's request."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import uuid
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from llmscope.collector.gateway.body import parse_json
from llmscope.collector.gateway.choices import StreamAssembler, answer_choices, offered_tools
from llmscope.collector.gateway.fast import _Incoming
from llmscope.collector.gateway.media import media_references, part_reference
from llmscope.collector.gateway.recording import new_id
from llmscope.collector.otlp.attributes import Attrs
from llmscope.collector.otlp.mlflow import MLflowTracing


def _ref(kind: str, media_type: str, data: bytes) -> dict[str, object]:
    return {
        "type": kind,
        "media_type": media_type,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_every_inline_media_shape_becomes_a_reference() -> None:
    audio, image, pdf = b"RIFF-audio" * 10, b"\x89PNG" * 50, b"%PDF-1.7" * 20
    b64 = {k: base64.b64encode(v).decode() for k, v in {"a": audio, "i": image, "p": pdf}.items()}
    assert part_reference(
        {"type": "input_audio", "input_audio": {"data": b64["a"], "format": "mp3"}}
    ) == _ref("audio", "audio/mp3", audio)
    assert part_reference(
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": b64["i"]}}
    ) == _ref("image", "image/png", image)  # fmt: skip
    assert part_reference(
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64['p']}"}}
    ) == _ref("file", "application/pdf", pdf)
    assert part_reference({"type": "input_image", "image_url": "https://x/y.png"}) == {
        "type": "image",
        "url": "https://x/y.png",
    }
    text = {"type": "text", "text": "keep me"}
    assert part_reference(text) is text
    messages = [{"role": "user", "content": "plain"}, {"role": "user", "content": [text]}]
    assert media_references(messages) == messages


def test_stream_assembly_equals_the_whole_answer() -> None:
    whole = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "content": None,
                    "tool_calls": [
                        {"id": "a", "function": {"name": "f", "arguments": '{"x": 1}'}},
                        {"id": "b", "function": {"name": "g", "arguments": "{}"}},
                    ],
                },
                "finish_reason": "tool_calls",
            },
            {"index": 1, "message": {"content": "hi there"}, "finish_reason": "stop"},
        ]
    }
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]}}]},
        {"choices": [{"index": 1, "delta": {"content": "hi "}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"x": '}},
            {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "1}"}}]}, "finish_reason": "tool_calls"}]},
        {"choices": [{"index": 1, "delta": {"content": "there"}, "finish_reason": "stop"}]},
    ]  # fmt: skip
    assembler = StreamAssembler()
    firsts = [assembler.feed(c) for c in chunks]
    assert firsts == [True, False, False, False, False]  # time to first token: the first chunk
    assert [c.as_dict() for c in assembler.choices()] == [
        c.as_dict() for c in answer_choices(whole, "chat")
    ]
    assert offered_tools({"tools": [{"type": "function", "function": {"name": "f"}},
                                    {"type": "web_search"}]}) == ["f", "web_search"]  # fmt: skip


def _attrs(values: dict[str, object]) -> Attrs:
    return Attrs({k: json.dumps(v) for k, v in values.items()})  # MLflow JSON-encodes each


def test_mlflow_langchain_and_responses_outputs() -> None:
    adapter = MLflowTracing()
    langchain = _attrs(
        {
            "mlflow.spanType": "CHAT_MODEL",
            "mlflow.spanInputs": [[{"type": "system", "content": "Be brief."},
                                   {"type": "human", "content": "Weather?"}]],
            "mlflow.spanOutputs": {"generations": [[{"text": "", "message": {
                "content": "", "type": "ai",
                "tool_calls": [{"name": "weather", "args": {"city": "Paris"}, "id": "t1"}]}}]]},
        }
    )  # fmt: skip
    assert adapter.verdict(langchain) is True
    fields = adapter.fields(langchain)
    assert fields["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
    ]
    assert fields["tool_calls"] == [{"id": "t1", "name": "weather",
                                     "arguments": '{"city": "Paris"}'}]  # fmt: skip
    responses = _attrs(
        {
            "mlflow.spanType": "LLM",
            "mlflow.spanInputs": {"model": "gpt-5", "input": "Hi", "instructions": "Be kind."},
            "mlflow.spanOutputs": {"output": [{"type": "message", "content": [
                {"type": "output_text", "text": "Hello!"}]}]},
        }
    )  # fmt: skip
    fields = adapter.fields(responses)
    assert fields["response"] == "Hello!" and fields["model"] == "gpt-5"
    assert fields["messages"][0] == {"role": "system", "content": "Be kind."}
    assert adapter.verdict(_attrs({"mlflow.spanType": "TOOL"})) is False
    assert adapter.verdict(Attrs({"gen_ai.system": "openai"})) is None


def test_record_ids_are_distinct_version_4_uuids_across_threads() -> None:
    found: list[str] = []

    def take() -> None:
        found.extend(new_id() for _ in range(5_000))  # several pools' worth each

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == len(found) == 20_000
    parsed = [uuid.UUID(i) for i in found]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == found  # canonical text: lower case, dashes in place
    # the bits that are not fixed are random: every hex digit shows up in the last group
    assert set("".join(i[-12:] for i in found[:200])) == set("0123456789abcdef")


def _asgi(headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]) -> tuple[Any, Any]:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": headers, "query_string": b""}  # fmt: skip
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    return scope, receive


def test_the_fast_path_reads_headers_and_body_as_starlette_does() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"x-llmscope-tags", b'{"team": "web"}'),
        (b"x-llmscope-tags", b'{"team": "ignored"}'),  # repeated: the first one counts
        (b"x-llmscope-user-id", "Zo\xe9".encode("latin-1")),
    ]
    parts = [
        {"type": "http.request", "body": b'{"model": ', "more_body": True},
        {"type": "http.request", "body": b'"chat"}', "more_body": False},
    ]

    async def read(kind: type) -> tuple[dict[str, str], bytes]:
        request = kind(*_asgi(headers, parts))
        names = ("content-type", "x-llmscope-tags", "x-llmscope-user-id", "traceparent")
        return {n: request.headers.get(n) for n in names}, await request.body()

    assert asyncio.run(read(_Incoming)) == asyncio.run(read(Request))
    fast_headers, body = asyncio.run(read(_Incoming))
    assert fast_headers["x-llmscope-tags"] == '{"team": "web"}' and body == b'{"model": "chat"}'

    async def left() -> bytes:
        return await _Incoming(*_asgi(headers, [{"type": "http.disconnect"}])).body()

    with pytest.raises(ClientDisconnect):
        asyncio.run(left())


def test_long_numbers_parse_exactly_and_short_ones_as_before() -> None:
    big = 123456789012345678901234567890
    doc = b'{"a": %d, "b": -%d, "c": 9223372036854775807, "d": 0.12345678901234567890123}'
    parsed = parse_json(doc % (big, big), "body")
    assert parsed["a"] == big and parsed["b"] == -big and isinstance(parsed["a"], int)
    assert parsed["c"] == 2**63 - 1 and parsed["d"] == json.loads(b"0.12345678901234567890123")
    assert parse_json(b'{"n": 18446744073709551615}', "body") == {"n": 2**64 - 1}
    assert parse_json(b'[1e5, 12.5, "12345678901234567890 in a string"]', "body") == [
        100000.0,
        12.5,
        "12345678901234567890 in a string",
    ]
