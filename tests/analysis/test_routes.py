"""The traffic-split view: each route destination against the route's others, on known inputs."""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np
import pytest

from llmscope.analysis.routes import route_destinations
from llmscope.report import RouteDestinationRow


def fisher_two_sided(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p of [[a, b], [c, d]], by summing hypergeometric tables by hand."""
    row1, col1, n = a + b, a + c, a + b + c + d

    def prob(x: int) -> float:
        return comb(col1, x) * comb(n - col1, row1 - x) / comb(n, row1)

    observed = prob(a)
    low, high = max(0, row1 + col1 - n), min(row1, col1)
    return sum(prob(x) for x in range(low, high + 1) if prob(x) <= observed * (1 + 1e-7))


def calls(endpoint: str, n: int, route: str | None = "chat") -> list[dict[str, Any]]:
    return [{"route": route, "endpoint": endpoint} for _ in range(n)]


def test_each_destination_is_tested_against_the_others_on_the_whole_run_and_per_cluster() -> None:
    records = calls("big-model", 10) + calls("small-model", 10)
    down = [True] * 8 + [False] * 2 + [True] * 1 + [False] * 9
    labels = np.zeros(len(records), dtype=np.int64)
    rows = route_destinations(records, labels, down)
    assert [(r["cluster_id"], r["endpoint"]) for r in rows] == [
        (None, "big-model"),
        (None, "small-model"),
        (0, "big-model"),
        (0, "small-model"),
    ]
    big = rows[0]
    assert big["records"] == 10 and big["rated"] == 10
    assert big["down_rate"] == pytest.approx(0.8)
    assert big["others_down_rate"] == pytest.approx(0.1)
    assert big["down_p_value"] == pytest.approx(fisher_two_sided(8, 2, 1, 9))
    assert big["down_p_value"] < 0.01
    # four tests with the same p: BH leaves each q equal to p
    assert big["down_q_value"] == pytest.approx(big["down_p_value"])


def test_evaluator_fail_rates_per_destination() -> None:
    records = calls("a", 10) + calls("b", 10)
    passed = {"correctness": [False] * 6 + [True] * 4 + [True] * 9 + [None]}
    rows = route_destinations(records, np.full(20, -1), [None] * 20, passed)
    assert [r["endpoint"] for r in rows] == ["a", "b"]  # noise records: whole-run rows only
    entry = rows[0]["evaluations"]["correctness"]
    assert entry["evaluated"] == 10 and entry["others_evaluated"] == 9
    assert entry["fail_rate"] == pytest.approx(0.6) and entry["others_fail_rate"] == 0.0
    assert entry["p_value"] == pytest.approx(fisher_two_sided(6, 4, 0, 9))
    assert rows[0]["down_p_value"] is None and rows[0]["rated"] == 0


def test_no_rows_without_a_split() -> None:
    unrouted = calls("a", 5, route=None) + calls("b", 5, route=None)
    assert route_destinations(unrouted, np.zeros(10, dtype=np.int64), [True] * 10) == []
    one_destination = calls("a", 10)
    assert route_destinations(one_destination, np.zeros(10, dtype=np.int64), [True] * 10) == []
    # a cluster that saw only one destination gets no per-cluster row
    records = calls("a", 4) + calls("b", 4)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rows = route_destinations(records, labels, [False] * 8)
    assert {r["cluster_id"] for r in rows} == {None}


def test_rows_validate_as_the_report_model() -> None:
    records = calls("a", 3) + calls("b", 3)
    rows = route_destinations(records, np.zeros(6, dtype=np.int64), [True, False] * 3)
    typed = [RouteDestinationRow.model_validate(r) for r in rows]
    assert typed[0].route == "chat" and typed[0].cluster_id is None
    assert "evaluations" not in typed[0].model_dump(mode="json")  # left out while empty


def test_the_job_loads_each_records_route(database_url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from llmscope.analysis.job import load_records
    from llmscope.analysis.windows import Window
    from llmscope.db import make_engine
    from llmscope.db.models import Record

    moment = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add_all(
            Record(id=f"r{i}", timestamp=moment, endpoint=endpoint, route="chat", prompt="hi")
            for i, endpoint in enumerate(("big-model", "small-model"))
        )
        session.commit()
        loaded = load_records(
            session,
            Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)),
            Window(datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)),
        )
    engine.dispose()
    assert [(r["route"], r["endpoint"]) for r in loaded] == [
        ("chat", "big-model"),
        ("chat", "small-model"),
    ]
