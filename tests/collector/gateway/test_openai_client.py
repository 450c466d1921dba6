"""The official ``openai`` client through the gateway, to OpenAI- and Anthropic-format providers."""

from __future__ import annotations

import json

import openai
import pytest

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import ANTHROPIC_KEY, OPENAI_KEY, FakeProvider


def client_for(url: str) -> openai.OpenAI:
    # The client's own key is not a provider key: the gateway uses the config's.
    return openai.OpenAI(base_url=f"{url}/v1", api_key="client-side-key", max_retries=0)


def test_chat_completions_recorded_with_tokens_and_extension(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    raw = client_for(gw.url).chat.completions.with_raw_response.create(
        model="chat",
        messages=[
            {"role": "system", "content": "You are a support assistant."},
            {"role": "user", "content": "How do I reset my password?"},
        ],
        extra_body={"llmscope": {"tags": {"team": "support"}, "session_id": "s-9"}},
        extra_headers={"X-LLMScope-User-Id": "u-42"},
    )
    answer = raw.parse()
    record_id = raw.headers["x-llmscope-record-id"]
    assert answer.choices[0].message.content == "Echo: How do I reset my password?"
    assert answer.usage is not None and answer.usage.prompt_tokens == 11

    sent = provider.requests[-1]
    assert sent["body"]["model"] == "gpt-4o-mini"  # the endpoint's model, not the endpoint name
    assert "llmscope" not in sent["body"]
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"

    (record,) = wait_for_records(gw.engine, 1)
    assert record.id == record_id
    assert (record.source, record.endpoint, record.provider, record.model) == (
        "gateway",
        "chat",
        "openai",
        "gpt-4o-mini",
    )
    assert record.messages is not None and record.messages[1]["content"].startswith("How do I")
    assert record.response == "Echo: How do I reset my password?"
    assert (record.input_tokens, record.output_tokens) == (11, 7)
    assert record.status == "ok" and record.error is None
    assert record.latency_ms is not None and record.latency_ms > 0
    assert record.tags == {"team": "support"}
    assert (record.user_id, record.session_id, record.internal) == ("u-42", "s-9", False)


def test_streaming_chat_passes_chunks_and_records_full_text_ttft_and_usage(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    stream = client_for(gw.url).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Where is my order 123?"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Echo: Where is my order 123?"
    assert len(chunks) == 6  # one per word; the usage chunk was the gateway's, not the client's
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}

    (record,) = wait_for_records(gw.engine, 1)
    assert record.response == "Echo: Where is my order 123?"
    assert (record.input_tokens, record.output_tokens) == (5, 6)
    assert record.ttft_ms is not None and 0 < record.ttft_ms <= record.latency_ms


def test_streaming_usage_reaches_a_client_that_asks(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    chunks = list(
        client_for(gw.url).chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_completions_streaming_and_embeddings(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    done = client.completions.create(model="completions", prompt="Once upon a time")
    assert done.choices[0].text == "Echo: Once upon a time"
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="completions", prompt="Tell me", stream=True)
    )
    assert streamed == "Echo: Tell me"
    vectors = client.embeddings.create(model="embeddings", input=["refund policy", "hello"])
    assert [d.embedding for d in vectors.data] == [[13.0, 0.5, -0.25], [5.0, 0.5, -0.25]]

    records = {
        r.endpoint + ("+stream" if r.ttft_ms else ""): r for r in wait_for_records(gw.engine, 3)
    }
    assert records["completions"].prompt == "Once upon a time"
    assert records["completions"].response == "Echo: Once upon a time"
    assert (records["completions"].input_tokens, records["completions"].output_tokens) == (4, 5)
    assert records["completions+stream"].response == "Echo: Tell me"
    assert records["completions+stream"].output_tokens == 3
    assert records["embeddings"].prompt == "refund policy\nhello"
    assert records["embeddings"].response is None
    assert records["embeddings"].input_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages_mapped_both_ways(
    settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
    stream: bool,
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Cancel my subscription"},
    ]
    client = client_for(gw.url)
    if stream:
        chunks = list(
            client.chat.completions.create(model="claude", messages=messages, stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].choices[0].finish_reason == "stop"
    else:
        answer = client.chat.completions.create(model="claude", messages=messages, max_tokens=50)
        text = answer.choices[0].message.content or ""
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 4)
    assert text == "Echo: Cancel my subscription"

    sent = provider.requests[-1]
    assert sent["path"] == "/anthropic/v1/messages"
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert sent["body"]["system"] == "Be brief."
    assert sent["body"]["messages"] == [{"role": "user", "content": "Cancel my subscription"}]
    assert sent["body"]["max_tokens"] == (1024 if stream else 50)

    (record,) = wait_for_records(gw.engine, 1)
    assert (record.provider, record.model) == ("anthropic", "claude-3-5-haiku-latest")
    assert record.response == "Echo: Cancel my subscription"
    assert (record.input_tokens, record.output_tokens) == (5, 4)


def test_anthropic_completions(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    done = client_for(gw.url).completions.create(model="claude-completions", prompt="Say hi")
    assert done.choices[0].text == "Echo: Say hi"
    assert done.usage is not None and done.usage.completion_tokens == 3


def test_registered_template_rendered_and_recorded_from_headers(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    client_for(gw.url).chat.completions.create(
        model="chat",
        messages=[],
        extra_headers={
            "X-LLMScope-Template": "support",
            "X-LLMScope-Variables": json.dumps({"question": "Why was I charged twice?"}),
            "X-LLMScope-Tags": json.dumps({"channel": "web"}),
        },
    )
    assert provider.requests[-1]["body"]["messages"] == [
        {"role": "user", "content": "Answer the customer's question: Why was I charged twice?"}
    ]
    (record,) = wait_for_records(gw.engine, 1)
    assert (record.template_name, record.template_version) == ("support", "2")
    assert record.template_text == "Answer the customer's question: {{question}}"
    assert record.template_variables == {"question": "Why was I charged twice?"}
    assert record.tags == {"channel": "web"}


def test_internal_calls_are_marked_internal(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    client_for(gw.url).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "summarise cluster 3"}],
        extra_headers={"X-LLMScope-Internal": "true"},
    )
    (record,) = wait_for_records(gw.engine, 1)
    assert record.internal is True


def test_wrong_type_unknown_model_and_bad_extension_are_4xx(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    with pytest.raises(openai.BadRequestError, match="llm/v1/embeddings, not llm/v1/chat"):
        client.chat.completions.create(
            model="embeddings", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError, match="no endpoint named 'nope'"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="X-LLMScope-Tags: header is not valid JSON"):
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"X-LLMScope-Tags": "{not json"},
        )
    with pytest.raises(openai.BadRequestError, match="llmscope.variables.question"):
        client.chat.completions.create(
            model="chat", messages=[], extra_body={"llmscope": {"template": "support"}}
        )


def test_stream_falls_back_when_server_refuses_stream_options(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    refusal = {"error": {"message": "Unrecognized request argument supplied: stream_options"}}
    provider.fail_next(400, refusal)
    chunks = list(
        client_for(gw.url).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "old server"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: old server"
    assert "stream_options" not in provider.requests[-1]["body"]
    (record,) = wait_for_records(gw.engine, 1)
    assert record.status == "ok" and record.response == "Echo: old server"
    assert record.output_tokens is None  # the server sent no usage; nothing is made up


def test_pii_redacted_before_storing_when_enabled(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url), redact_pii=True)
    client_for(gw.url).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "mail me at jane.doe@example.com"}]
    )
    assert "jane.doe@example.com" in provider.requests[-1]["body"]["messages"][0]["content"]
    (record,) = wait_for_records(gw.engine, 1)
    assert record.messages == [{"role": "user", "content": "mail me at [EMAIL]"}]
    assert record.response == "Echo: mail me at [EMAIL]"
