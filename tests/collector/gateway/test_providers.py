"""Every provider beyond OpenAI and Anthropic against a fake speaking its wire format.

Chat, streaming, tool calls and embeddings where the provider has them, through the official
``openai`` client and a running collector; what each fake received is checked too (its request
shape and auth: a Bearer key, Google's key header, a SigV4 signature recomputed by the fake).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmscope.collector.gateway.config import ConfigError, parse_config
from llmscope.config import Settings
from tests.collector.gateway.conftest import StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import OPENAI_KEY, FakeProvider, ServerThread
from tests.collector.gateway.provider_fakes import (
    AWS_ID,
    AWS_REGION,
    AWS_SECRET,
    COHERE_KEY,
    GEMINI_KEY,
    ProviderFakes,
)
from tests.conftest import free_port

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}


def _endpoint(name: str, kind: str, provider: str, model: str, config: dict[str, Any]) -> str:
    return json.dumps(
        {
            "name": name,
            "endpoint_type": f"llm/v1/{kind}",
            "model": {"provider": provider, "name": model, "config": config},
            "max_retries": 0,
        }
    )


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ProviderFakes, str, str]]:
    monkeypatch.setenv("FAKE_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("FAKE_AWS_SECRET", AWS_SECRET)
    others = ProviderFakes()
    openai_like = FakeProvider()
    one = ServerThread(others.app, free_port()).start()
    two = ServerThread(openai_like.app, free_port()).start()
    others.url = one.url
    try:
        yield others, one.url, two.url
    finally:
        one.stop()
        two.stop()


def _config(url: str, openai_url: str) -> str:
    compatible = {"api_key": "$FAKE_OPENAI_KEY", "api_base": f"{openai_url}/v1"}
    entries = [
        _endpoint(p, "chat", p, f"{p}-model", compatible)
        for p in ("groq", "deepseek", "xai", "openrouter", "ollama")
    ]
    entries += [
        _endpoint("litellm", "chat", "litellm", "proxy-model",
                  {"litellm_provider": "openai",
                   "litellm_auth_config": {"api_key": "$FAKE_OPENAI_KEY",
                                           "api_base": f"{openai_url}/v1"}}),
        _endpoint("together", "chat", "togetherai", "llama",
                  {"togetherai_api_key": OPENAI_KEY, "togetherai_api_base": f"{openai_url}/v1"}),
        _endpoint("mistral", "chat", "mistral", "mistral-small",
                  {"mistral_api_key": OPENAI_KEY, "mistral_api_base": f"{openai_url}/v1"}),
        _endpoint("mistral-completions", "completions", "mistral", "mistral-small",
                  {"mistral_api_key": OPENAI_KEY, "mistral_api_base": f"{openai_url}/v1"}),
        _endpoint("cohere", "chat", "cohere", "command-r",
                  {"cohere_api_key": COHERE_KEY, "cohere_api_base": f"{url}/cohere"}),
        _endpoint("cohere-embed", "embeddings", "cohere", "embed-english-v3.0",
                  {"cohere_api_key": COHERE_KEY, "cohere_api_base": f"{url}/cohere"}),
        _endpoint("gemini", "chat", "gemini", "gemini-2.0-flash",
                  {"gemini_api_key": GEMINI_KEY, "gemini_api_base": f"{url}/gemini"}),
        _endpoint("gemini-embed", "embeddings", "gemini", "text-embedding-004",
                  {"gemini_api_key": GEMINI_KEY, "gemini_api_base": f"{url}/gemini"}),
        _endpoint("bedrock", "chat", "amazon-bedrock", "anthropic.claude-3-haiku-20240307-v1:0",
                  {"aws_config": {"aws_region": AWS_REGION, "aws_access_key_id": AWS_ID,
                                  "aws_secret_access_key": "$FAKE_AWS_SECRET"},
                   "bedrock_endpoint_url": f"{url}/bedrock"}),
        _endpoint("bedrock-embed", "embeddings", "bedrock", "amazon.titan-embed-text-v2:0",
                  {"aws_config": {"aws_region": AWS_REGION, "aws_access_key_id": AWS_ID,
                                  "aws_secret_access_key": "$FAKE_AWS_SECRET"},
                   "bedrock_endpoint_url": f"{url}/bedrock"}),
        _endpoint("tgi", "completions", "huggingface-text-generation-inference", "tgi",
                  {"hf_server_url": f"{url}/tgi"}),
        _endpoint("tgi-chat", "chat", "huggingface-text-generation-inference", "tgi",
                  {"hf_server_url": f"{url}/tgi"}),
        _endpoint("served", "completions", "mlflow-model-serving", "my-model",
                  {"model_server_url": f"{url}/mlflow"}),
        _endpoint("served-chat", "chat", "mlflow-model-serving", "my-model",
                  {"model_server_url": f"{url}/mlflow"}),
        _endpoint("served-embed", "embeddings", "mlflow-model-serving", "my-model",
                  {"model_server_url": f"{url}/mlflow"}),
        _endpoint("databricks", "chat", "databricks", "databricks-meta-llama",
                  {"host": openai_url, "token": OPENAI_KEY}),
    ]  # fmt: skip
    return "endpoints:\n" + "\n".join(f"  - {e}" for e in entries) + "\n"


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def _ask(client: openai.OpenAI, model: str, text: str = "Where is my order?") -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": text}]
    )  # fmt: skip
    return answer.choices[0].message.content or ""


def _stream(client: openai.OpenAI, model: str, **extra: Any) -> tuple[str, str, str | None]:
    text, arguments, name = "", "", None
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], stream=True,
        **extra,
    ):  # fmt: skip
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    name = call.function.name
                arguments += (call.function and call.function.arguments) or ""
    return text, arguments, name


def test_openai_compatible_family(
    sqlite_settings: Settings,
    fakes: tuple[ProviderFakes, str, str],
    start_gateway: StartGateway,
) -> None:
    _, url, openai_url = fakes
    gw = start_gateway(sqlite_settings, _config(url, openai_url))
    client = _client(gw.url)
    names = ["groq", "deepseek", "xai", "openrouter", "ollama", "litellm", "together", "mistral",
             "databricks"]  # fmt: skip
    for name in names:
        assert _ask(client, name) == "Echo: Where is my order?", name
        assert _stream(client, name)[0] == "Echo: Weather in Paris?", name
    text = client.completions.create(model="mistral-completions", prompt="Say hi").choices[0].text
    assert text == "Echo: Say hi"  # Mistral has no completions API: sent as chat
    records = wait_for_records(gw.engine, 2 * len(names) + 1)
    assert {r.provider for r in records} == {
        "groq", "deepseek", "xai", "openrouter", "ollama", "litellm", "togetherai", "mistral",
        "databricks",
    }  # fmt: skip
    assert all(r.status == "ok" and r.output_tokens for r in records)


def test_cohere_gemini_bedrock_chat_stream_tools_embeddings(
    settings: Settings,
    fakes: tuple[ProviderFakes, str, str],
    start_gateway: StartGateway,
) -> None:
    fake, url, openai_url = fakes
    gw = start_gateway(settings, _config(url, openai_url))
    client = _client(gw.url)
    for name in ("cohere", "gemini", "bedrock"):
        assert _ask(client, name) == "Echo: Where is my order?", name
        assert _stream(client, name) == ("Echo: Weather in Paris?", "", None), name
        whole = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[TOOL]
        )
        (call,) = whole.choices[0].message.tool_calls or []
        assert call.function.name == "lookup", name
        assert json.loads(call.function.arguments) == {"query": "Weather in Paris?"}, name
        assert whole.choices[0].finish_reason == "tool_calls", name
        streamed = _stream(client, name, tools=[TOOL])
        assert streamed[2] == "lookup" and json.loads(streamed[1]) == {"query": "Weather in Paris?"}
        # the tool's result goes back in the provider's own shape
        follow = client.chat.completions.create(
            model=name,
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "18C"},
            ],
            tools=[TOOL],
        )
        assert follow.choices[0].finish_reason == "stop", name

    sent = {r["path"].split("/")[1]: r for r in fake.requests}
    by_path = [r for r in fake.requests if r["path"].startswith("/cohere/v2/chat")]
    assert by_path[0]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    gemini_first = [r for r in fake.requests if r["path"].startswith("/gemini/")][0]
    assert gemini_first["path"].endswith("gemini-2.0-flash:generateContent")
    assert gemini_first["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert gemini_first["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "Where is my order?"}]}
    ]
    gemini_result = [r for r in fake.requests if r["path"].startswith("/gemini/")][-1]
    assert gemini_result["body"]["contents"][-1]["parts"][0]["functionResponse"]["name"] == "lookup"
    bedrock_first = [r for r in fake.requests if r["path"].startswith("/bedrock/")][0]
    assert bedrock_first["path"].endswith("/converse")
    assert bedrock_first["body"]["system"] == [{"text": "Be brief."}]
    bedrock_result = [r for r in fake.requests if r["path"].startswith("/bedrock/")][-1]
    assert bedrock_result["body"]["messages"][-1]["content"][0]["toolResult"]["content"] == [
        {"text": "18C"}
    ]
    assert "cohere" in sent and "bedrock" in sent

    for name in ("cohere-embed", "gemini-embed", "bedrock-embed"):
        vectors = client.embeddings.create(model=name, input=["one", "three"]).data
        assert [v.embedding[0] for v in vectors] == [3.0, 5.0], name
    records = wait_for_records(gw.engine, 3 * 5 + 3)
    assert all(r.status == "ok" for r in records)
    assert AWS_SECRET not in json.dumps([r.error for r in records])


def test_tgi_and_mlflow_model_serving(
    sqlite_settings: Settings,
    fakes: tuple[ProviderFakes, str, str],
    start_gateway: StartGateway,
) -> None:
    fake, url, openai_url = fakes
    gw = start_gateway(sqlite_settings, _config(url, openai_url))
    client = _client(gw.url)
    answer = client.completions.create(model="tgi", prompt="Say hi", max_tokens=5, temperature=0)
    assert answer.choices[0].text == "Echo: Say hi"
    assert answer.usage is not None and answer.usage.prompt_tokens == 2
    sent = [r for r in fake.requests if r["path"] == "/tgi/generate"][0]["body"]
    assert sent["inputs"] == "Say hi"
    assert sent["parameters"]["max_new_tokens"] == 5 and sent["parameters"]["temperature"] > 0
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="tgi", prompt="Say hi", stream=True)
        if c.choices
    )
    assert streamed == "Echo: Say hi"
    assert _ask(client, "tgi-chat", "Hello") == "Echo: Hello"

    served = client.completions.create(model="served", prompt="Say hi")
    assert served.choices[0].text == "Echo: Say hi"
    assert [r for r in fake.requests if r["path"] == "/mlflow/invocations"][0]["body"] == {
        "inputs": ["Say hi"]
    }
    chat = client.chat.completions.create(
        model="served-chat", messages=[{"role": "user", "content": "Hello"}]
    )
    assert chat.choices[0].message.content == "Echo: Hello"
    with pytest.raises(openai.BadRequestError, match="one message per call"):
        _ask(client, "served-chat")
    vectors = client.embeddings.create(model="served-embed", input=["vec:a", "vec:abc"]).data
    assert [v.embedding for v in vectors] == [[5.0, 5.0], [7.0, 5.0]]


def test_bedrock_refuses_a_bad_signature_and_provider_errors_pass_through(
    sqlite_settings: Settings,
    fakes: tuple[ProviderFakes, str, str],
    start_gateway: StartGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url, openai_url = fakes
    monkeypatch.setenv("FAKE_AWS_SECRET", "wrong-secret")
    gw = start_gateway(sqlite_settings, _config(url, openai_url))
    client = _client(gw.url)
    with pytest.raises(openai.PermissionDeniedError, match="signature"):
        _ask(client, "bedrock")
    fake.fail.append((429, {"message": "You have exceeded your API rate limit."}))
    with pytest.raises(openai.RateLimitError, match="rate limit"):
        _ask(client, "cohere")
    fake.fail.append((400, {"error": {"code": 400, "message": "Invalid JSON payload",
                                      "status": "INVALID_ARGUMENT"}}))  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="Invalid JSON payload"):
        _ask(client, "gemini")
    records = wait_for_records(gw.engine, 3)
    assert [r.status for r in records] == ["error"] * 3
    assert "wrong-secret" not in json.dumps([r.error for r in records])


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"provider": "palm2", "name": "x"},
            "endpoint 'e': model.provider: unknown provider 'palm2'; known: amazon-bedrock,",
        ),
        (
            {"provider": "cohere", "name": "x", "config": {}},
            "endpoint 'e': model.config.cohere_api_key: field required for cohere",
        ),
        (
            {"provider": "bedrock", "name": "x", "config": {"aws_config": {"region": "x"}}},
            "endpoint 'e': model.config.aws_config.region: unknown field",
        ),
    ],
)
def test_provider_config_errors(model: dict[str, Any], message: str) -> None:
    data = {"endpoints": [{"name": "e", "endpoint_type": "llm/v1/chat", "model": model}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(message)
    if "unknown provider" in message:
        assert "provider: openai with openai_api_base" in str(caught.value)
