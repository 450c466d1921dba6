"""MLflow's traffic-split ``routes:`` with llmscope's ``fallbacks:``: config, split, fallback."""

from __future__ import annotations

from collections import Counter

import httpx
import openai
import pytest
from mlflow.deployments import get_deploy_client

from llmscope.collector.gateway.config import ConfigError, parse_config
from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider

ROUTES = """
routes:
  - name: assistant
    task_type: llm/v1/chat
    destinations:
      - {{name: chat, traffic_percentage: 70}}
      - {{name: demo, traffic_percentage: 30}}
    routing_strategy: TRAFFIC_SPLIT
  - name: sturdy
    task_type: llm/v1/chat
    destinations:
      - {{name: chat, traffic_percentage: 100}}
    fallbacks: [claude, demo]
"""
ASK = {"messages": [{"role": "user", "content": "Where is my order?"}]}


def _endpoints(*extra: dict[str, object]) -> list[dict[str, object]]:
    base: list[dict[str, object]] = [
        {
            "name": "a",
            "endpoint_type": "llm/v1/chat",
            "model": {"provider": "offline", "name": "m"},
        },
        {
            "name": "e",
            "endpoint_type": "llm/v1/embeddings",
            "model": {"provider": "offline", "name": "m"},
        },
    ]
    return base + list(extra)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            {"destinations": [{"name": "a", "traffic_percentage": 60}]},
            "route 'r': destinations: traffic_percentage sums to 60, not 100",
        ),
        (
            {"destinations": [{"name": "zz", "traffic_percentage": 100}]},
            "route 'r': destinations: no endpoint named 'zz'",
        ),
        (
            {"destinations": [{"name": "e", "traffic_percentage": 100}]},
            "route 'r': destinations: endpoint 'e' is llm/v1/embeddings, not llm/v1/chat",
        ),
        (
            {"destinations": [{"name": "a", "traffic_percentage": 100}], "fallbacks": ["x"]},
            "route 'r': fallbacks: no endpoint named 'x'",
        ),
        (
            {
                "destinations": [{"name": "a", "traffic_percentage": 100}],
                "routing_strategy": "ROUND_ROBIN",
            },
            "route 'r': routing_strategy: Input should be 'TRAFFIC_SPLIT'",
        ),
    ],
)
def test_invalid_routes_are_named(route: dict[str, object], message: str) -> None:
    data = {
        "endpoints": _endpoints(),
        "routes": [{"name": "r", "task_type": "llm/v1/chat", **route}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value) == message


def test_route_name_must_not_shadow_an_endpoint_and_old_spelling_still_reads() -> None:
    clash = {
        "endpoints": _endpoints(),
        "routes": [
            {
                "name": "a",
                "task_type": "llm/v1/chat",
                "destinations": [{"name": "a", "traffic_percentage": 100}],
            }
        ],
    }
    with pytest.raises(ConfigError, match="route 'a': name: an endpoint or route has this name"):
        parse_config(clash)
    old = parse_config(
        {
            "routes": [
                {
                    "name": "x",
                    "route_type": "llm/v1/chat",
                    "model": {"provider": "offline", "name": "m"},
                }
            ]
        }
    )
    assert [e.name for e in old.endpoints] == ["x"] and old.routes == []


def test_traffic_split_follows_the_weights_and_records_the_route(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url) + ROUTES.format())
    gw.app.state.gateway.rng.seed(7)
    served = Counter()
    for _ in range(60):
        answer = httpx.post(f"{gw.url}/endpoints/assistant/invocations", json=ASK)
        assert answer.status_code == 200
        served["chat" if answer.json()["model"] == "gpt-4o-mini" else "demo"] += 1
    assert 30 <= served["chat"] <= 54 and served["chat"] + served["demo"] == 60

    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    via_openai = client.chat.completions.create(model="assistant", messages=ASK["messages"])
    assert via_openai.choices[0].message.content
    assert "assistant" in [m.id for m in client.models.list()]

    records = wait_for_records(gw.engine, 61)
    by_endpoint = Counter(r.endpoint for r in records[:60])
    assert by_endpoint == served  # endpoint = the one that answered

    listed = httpx.get(f"{gw.url}/api/2.0/endpoints/").json()["endpoints"]
    route = next(e for e in listed if e["name"] == "assistant")
    assert route["endpoint_type"] == "llm/v1/chat"
    assert route["endpoint_url"] == "/endpoints/assistant/invocations"
    assert route["limit"] is None
    v3 = httpx.get(f"{gw.url}/api/3.0/gateway/route/assistant").json()
    assert v3["destinations"] == [
        {"name": "chat", "traffic_percentage": 70},
        {"name": "demo", "traffic_percentage": 30},
    ]
    mlflow_client = get_deploy_client(gw.url)
    assert "assistant" in [e.name for e in mlflow_client.list_endpoints()]
    assert mlflow_client.predict(endpoint="assistant", inputs=ASK)["choices"]


def test_fallbacks_on_429_and_5xx_in_order(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url) + ROUTES.format())
    # chat fails (after its own retries: 503 three times), claude answers
    provider.fail_next(503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"}, times=3)
    answer = httpx.post(f"{gw.url}/endpoints/sturdy/invocations", json=ASK)
    assert answer.status_code == 200
    assert answer.json()["model"] == "claude-3-5-haiku-latest"
    # chat and claude both fail: demo (offline) answers, streamed too
    provider.fail_next(429, {"error": {"message": "slow"}}, {"Retry-After": "0"}, times=6)
    streamed = httpx.post(f"{gw.url}/endpoints/sturdy/invocations", json={**ASK, "stream": True})
    assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
    # a 400 is the caller's fault: no fallback
    provider.fail_next(400, {"error": {"message": "bad"}})
    refused = httpx.post(f"{gw.url}/endpoints/sturdy/invocations", json=ASK)
    assert refused.status_code == 400
    records = wait_for_records(gw.engine, 3)
    assert [r.endpoint for r in records] == ["claude", "demo", "chat"]
    assert [r.status for r in records] == ["ok", "ok", "error"]
