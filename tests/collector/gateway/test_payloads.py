"""The typed payloads and the OpenAI envelope builder, on hand-made inputs with known answers."""

from __future__ import annotations

import time

from llmscope.collector.gateway.providers.payloads import (
    Choice,
    ChunkEnvelope,
    RequestPayload,
    ResponsePayload,
    Usage,
)

ENVELOPE_KEYS = ["id", "object", "created", "model", "choices", "usage"]
CALL = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}


def test_a_request_reads_as_translations_need_it() -> None:
    chat = RequestPayload(
        "chat",
        {
            "messages": [{"role": "user", "content": "hi"}],
            "stop": "END",
            "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "web_search"}],
            "top_p": 0.5,
            "max_tokens": None,
        },
    )
    assert chat.messages == [{"role": "user", "content": "hi"}]
    assert chat.stop == ["END"]
    assert chat.function_tools == [{"name": "f"}]
    # an unset value is left out; a later pair naming the same key wins
    assert chat.renamed((("top_p", "topP"), ("max_tokens", "maxTokens"))) == {"topP": 0.5}
    both = RequestPayload("chat", {"max_tokens": 5, "max_completion_tokens": 9})
    pairs = (("max_tokens", "out"), ("max_completion_tokens", "out"))
    assert both.renamed(pairs) == {"out": 9}

    completion = RequestPayload("completions", {"prompt": ["Once ", "upon"], "stop": ["a", "b"]})
    assert completion.messages == [{"role": "user", "content": "Once upon"}]
    assert completion.stop == ["a", "b"]
    assert RequestPayload("chat", {"stop": []}).stop is None
    assert RequestPayload("chat", {}).messages == []


def test_usage_totals_only_what_is_known() -> None:
    assert Usage.of(7, 3).wire() == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert Usage(completion_tokens=4).wire() == {
        "prompt_tokens": None,
        "completion_tokens": 4,
        "total_tokens": None,
    }


def test_a_chat_answer_wears_the_openai_envelope() -> None:
    answer = ResponsePayload(
        "chat",
        "claude-x",
        [Choice(None, [CALL], "tool_calls"), Choice("second", index=1)],
        Usage.of(12, 4),
        id="msg_1",
        created=1_700_000_000,
    )
    wire = answer.wire()
    assert list(wire) == ENVELOPE_KEYS
    assert wire == {
        "id": "msg_1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [CALL]},
                "finish_reason": "tool_calls",
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "second"},
                "finish_reason": None,
            },
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }


def test_a_completion_answer_has_text_even_when_none_was_said() -> None:
    wire = ResponsePayload("completions", "m", [Choice(None, [], "stop")], Usage()).wire()
    assert wire["object"] == "text_completion"
    assert wire["choices"] == [{"index": 0, "text": "", "finish_reason": "stop"}]
    assert wire["usage"] == {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}


def test_an_answer_without_id_or_time_gets_new_ones() -> None:
    before = int(time.time())
    chat = ResponsePayload("chat", "m", [], Usage()).wire()
    completion = ResponsePayload("completions", "m", [], Usage()).wire()
    assert chat["id"].startswith("chatcmpl-") and completion["id"].startswith("cmpl-")
    assert chat["id"] != ResponsePayload("chat", "m", [], Usage()).wire()["id"]
    assert before <= chat["created"] <= int(time.time())


def test_chat_chunks_share_one_envelope() -> None:
    out = ChunkEnvelope("chat", "gemini-x", "chatcmpl-1", created=1_700_000_000)
    first = out.piece({"role": "assistant", "content": ""})
    out.id = "msg_9"  # learnt from the provider's first event
    last = out.piece({}, "stop")
    assert first == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gemini-x",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
    }
    assert last["id"] == "msg_9"
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    two = out.chunk([out.choice({"content": "a"}, None, 0), out.choice({}, "length", 1)])
    assert [c["index"] for c in two["choices"]] == [0, 1]
    assert list(out.usage(Usage.of(2, 3))) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
    ]
    assert out.usage(Usage.of(2, 3))["choices"] == []
    assert out.usage(Usage.of(2, 3))["usage"]["total_tokens"] == 5


def test_completion_chunks_carry_the_delta_text() -> None:
    out = ChunkEnvelope("completions", "tgi")
    assert out.id.startswith("cmpl-")
    chunk = out.piece({"role": "assistant", "content": "Hel"})
    assert chunk["object"] == "text_completion"
    assert chunk["choices"] == [{"index": 0, "text": "Hel", "finish_reason": None}]
    assert out.piece({}, "length")["choices"] == [
        {"index": 0, "text": "", "finish_reason": "length"}
    ]
