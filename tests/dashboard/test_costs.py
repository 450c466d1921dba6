"""The overview's cost figures: sums of the stored cost_usd per group, against hand-made sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from llmscope.dashboard.data import Filters, cost_by, traffic_summary
from llmscope.db import make_engine
from llmscope.db.models import Record

MOMENT = datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_cost_per_endpoint_model_template_user_and_tag(database_url: str) -> None:
    engine = make_engine(database_url)
    rows = [
        # (endpoint, model, template, user, tags, cost)
        ("chat", "gpt-4o-mini", "faq", "u1", {"team": "web", "env": "prod"}, 0.25),
        ("chat", "gpt-4o-mini", "faq", "u1", {"team": "web"}, 0.5),
        ("chat", "house", None, "u2", {"team": "ops"}, None),  # no price: counted, costs nothing
        ("search", "gpt-4o", "faq", "u2", {"team": "ops", "env": "prod"}, 2.0),
        ("search", "gpt-4o", None, None, None, 1.25),
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(Record),
            [
                {
                    "id": f"c{i}",
                    "timestamp": MOMENT + timedelta(minutes=i),
                    "received_at": MOMENT,
                    "source": "api",
                    "endpoint": endpoint,
                    "model": model,
                    "template_name": template,
                    "template_version": "1" if template else None,
                    "user_id": user,
                    "tags": tags,
                    "cost_usd": cost,
                }
                for i, (endpoint, model, template, user, tags, cost) in enumerate(rows)
            ],
        )
    filters = Filters(since=MOMENT, until=MOMENT + timedelta(days=1))
    summary = traffic_summary(engine, filters)
    assert summary.totals["cost_usd"] == pytest.approx(4.0)
    by_endpoint = {r["group"]: r["cost_usd"] for r in summary.tables["endpoint"]}
    assert by_endpoint == pytest.approx({"chat": 0.75, "search": 3.25})
    by_model = {r["group"]: r["cost_usd"] for r in summary.tables["model"]}
    assert by_model == pytest.approx({"gpt-4o-mini": 0.75, "house": 0.0, "gpt-4o": 3.25})
    by_template = {r["group"]: r["cost_usd"] for r in summary.tables["template"]}
    assert by_template[next(k for k in by_template if k and k.startswith("faq"))] == 2.75
    users = cost_by(engine, filters, by="user")
    assert [(u["group"], u["calls"], u["priced"], u["cost_usd"]) for u in users] == [
        ("u2", 2, 1, 2.0),
        (None, 1, 1, 1.25),
        ("u1", 2, 2, 0.75),
    ]
    tags = cost_by(engine, filters, by="tag")
    assert [(t["group"], t["calls"], t["priced"], t["cost_usd"]) for t in tags] == [
        ("env=prod", 2, 2, 2.25),
        ("team=ops", 2, 1, 2.0),
        ("team=web", 2, 2, 0.75),
    ]
    endpoint_only = Filters(since=MOMENT, until=MOMENT + timedelta(days=1), endpoint="chat")
    assert [t["group"] for t in cost_by(engine, endpoint_only, by="tag")] == [
        "team=web",
        "env=prod",
        "team=ops",
    ]
    with pytest.raises(ValueError, match="by must be"):
        cost_by(engine, filters, by="model")
    engine.dispose()
