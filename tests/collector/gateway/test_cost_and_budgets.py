"""Gateway calls priced from the YAML; budgets alert once per period and answer 429 once spent."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from llmscope.collector.costs.budgets import Budget, BudgetTracker, period_bounds
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker
from llmscope.db.models import Alert, Record
from tests.collector.gateway.conftest import StartGateway, wait_for_records
from tests.conftest import free_port

PRICED = """
endpoints:
  - name: bot
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: support-bot, config: {latency_ms: 0}}
pricing:
  - {model: "support-*", input_usd_per_million: 3, output_usd_per_million: 12}
"""


def ask(url: str, text: str = "Where is my parcel?", **llmscope: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": "bot", "messages": [{"role": "user", "content": text}]}
    if llmscope:
        body["llmscope"] = llmscope
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)


def test_gateway_calls_are_priced_from_the_yaml(
    start_gateway: StartGateway, sqlite_settings: Settings
) -> None:
    running = start_gateway(sqlite_settings, PRICED)
    answer = ask(running.url)
    assert answer.status_code == 200
    usage = answer.json()["usage"]
    [stored] = wait_for_records(running.engine, 1)
    expected = usage["prompt_tokens"] * 3e-6 + usage["completion_tokens"] * 12e-6
    assert stored.cost_usd == pytest.approx(expected) and expected > 0


def test_period_bounds_are_utc_days_and_months() -> None:
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert period_bounds("day", moment) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        "2026-12-31",
    )
    assert period_bounds("month", moment) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        "2026-12",
    )
    with pytest.raises(ValueError, match="exactly one of endpoint, user, tag"):
        Budget(name="x", endpoint="a", tag="team=web", limit_usd=1)


class Hooks:
    """A local webhook receiver that keeps every JSON body it gets."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                size = int(self.headers["content-length"])
                received.append(json.loads(self.rfile.read(size)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def spend(engine: Any, when: datetime, cost: float, **fields: Any) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Record),
            [
                {
                    "id": f"spend-{when.isoformat()}-{cost}-{sorted(fields.items())}",
                    "timestamp": when,
                    "received_at": when,
                    "source": "api",
                    "cost_usd": cost,
                    **fields,
                }
            ],
        )


def test_budgets_alert_at_80_and_100_percent_once_per_period(
    database_url: str, tmp_path: Path
) -> None:
    hooks = Hooks()
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    settings = Settings(
        database_url=database_url, data_dir=tmp_path / "data", alert_webhook_url=hooks.url
    )
    now = [datetime(2026, 3, 10, 9, 0, tzinfo=UTC)]
    # two collector processes watching the same budgets
    trackers = [BudgetTracker(factory, settings, clock=lambda: now[0]) for _ in range(2)]
    budgets = [
        Budget(name="team-web", tag="team=web", period="day", limit_usd=10),
        Budget(name="chat-month", endpoint="chat", period="month", limit_usd=100),
    ]
    for tracker in trackers:
        tracker.set_budgets(budgets)

    def refresh_all() -> list[str]:
        return sorted(a.stable_key or "" for t in trackers for a in t.refresh())

    day = now[0]
    spend(engine, day, 7.0, tags={"team": "web"}, endpoint="chat")
    spend(engine, day, 5.0, tags={"team": "ops"}, endpoint="other")  # neither budget
    assert refresh_all() == []  # 7 of 10: below 80%
    spend(engine, day + timedelta(minutes=1), 1.5, tags={"team": "web"}, endpoint="chat")
    assert refresh_all() == ["budget:team-web:2026-03-10:80"]  # once, though two processes
    assert refresh_all() == []
    spend(engine, day + timedelta(minutes=2), 2.0, tags={"team": "web"}, endpoint="chat")
    assert refresh_all() == ["budget:team-web:2026-03-10:100"]
    assert refresh_all() == []
    assert trackers[0].spends() == [("team-web", 10.5, 10.0), ("chat-month", 10.5, 100.0)]
    # the next day is a new period: spend starts at zero, alerts may come again
    now[0] = day + timedelta(days=1)
    spend(engine, now[0], 9.0, tags={"team": "web"}, endpoint="chat")
    assert refresh_all() == ["budget:team-web:2026-03-11:80"]
    # the month budget reached 80% (19.5 + 60.5 = 80 of 100), once
    spend(engine, now[0], 60.5, endpoint="chat")
    assert refresh_all() == ["budget:chat-month:2026-03:80"]
    # the month before does not count for this month
    spend(engine, datetime(2026, 2, 27, tzinfo=UTC), 500.0, endpoint="chat")
    assert refresh_all() == []
    with factory() as session:
        stored = session.scalars(select(Alert).order_by(Alert.id)).all()
    assert [a.kind for a in stored] == ["budget"] * 4
    assert all(a.delivery_status == "sent" for a in stored)
    assert len(hooks.bodies) == 4 and {b["kind"] for b in hooks.bodies} == {"budget"}
    assert (
        "team-web" in hooks.bodies[0]["message"] and "$8.50 of $10.00" in hooks.bodies[0]["message"]
    )
    from starlette.testclient import TestClient

    from llmscope.app.server import create_app

    with TestClient(create_app(settings)) as client:  # the alert history lists them
        listed = client.get("/api/v1/alerts", params={"kind": "budget"}).json()["alerts"]
    assert [a["stable_key"] for a in listed][-1] == "budget:team-web:2026-03-10:80"
    assert len(listed) == 4 and {a["run_id"] for a in listed} == {"budget"}
    hooks.server.shutdown()
    engine.dispose()


def test_a_spent_reject_budget_answers_429_until_the_period_ends(
    start_gateway: StartGateway, sqlite_settings: Settings
) -> None:
    config = (
        PRICED
        + """
budgets:
  - {name: u-7, user: u-7, period: day, limit_usd: 0.0001, on_exceed: reject}
  - {name: bot-watch, endpoint: bot, period: month, limit_usd: 1000}
"""
    )
    running = start_gateway(sqlite_settings, config, budget_refresh_s=0.1)
    long_question = "Where is my parcel? " * 200  # ~800 tokens: $0.0024 at $3 per million
    assert ask(running.url, long_question, user_id="u-7").status_code == 200  # crosses the limit
    refused = ask(running.url, user_id="u-7")
    assert refused.status_code == 429
    assert "budget 'u-7'" in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert ask(running.url, user_id="someone-else").status_code == 200  # not covered
    metrics = httpx.get(f"{running.url}/metrics", timeout=10).text
    assert 'llmscope_refused_total{reason="budget"} 1.0' in metrics
    assert 'llmscope_budget_limit_usd{budget="u-7"} 0.0001' in metrics
    rows = wait_for_records(running.engine, 3)
    assert [r.status for r in rows].count("error") == 1  # the refused call is recorded


def test_budgets_in_the_yaml_are_checked(tmp_path: Path) -> None:
    from llmscope.collector.gateway.config import ConfigError, load_config

    path = tmp_path / "g.yaml"
    path.write_text(PRICED + "budgets:\n  - {name: a, endpoint: bot, period: week, limit_usd: 5}\n")
    with pytest.raises(ConfigError, match=r"budgets\[0\]: period"):
        load_config(path)
