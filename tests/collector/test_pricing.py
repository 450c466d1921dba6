"""Prices by name and glob, and the cost each stored record carries, against hand-made sums."""

from __future__ import annotations

import httpx
import pytest

from llmscope.collector.costs.pricing import DEFAULT_PRICES, Price, PriceTable, cost_usd
from llmscope.collector.gateway.config import ConfigError, parse_config
from tests.factories import record


def price(model: str, i: float, o: float = 0.0) -> Price:
    return Price(model=model, input_usd_per_million=i, output_usd_per_million=o)


def test_exact_name_wins_then_the_longest_glob_then_the_shipped_table() -> None:
    table = PriceTable(
        [
            price("acme-*", 1),
            price("acme-large-*", 2),
            price("acme-large-v2", 3),
            price("gpt-4o*", 9),
        ]
    )
    assert table.price("acme-small").input_usd_per_million == 1  # type: ignore[union-attr]
    assert table.price("acme-large-v1").input_usd_per_million == 2  # type: ignore[union-attr]
    assert table.price("acme-large-v2").input_usd_per_million == 3  # type: ignore[union-attr]
    assert table.price("ACME-Large-V2").input_usd_per_million == 3  # type: ignore[union-attr]
    # the YAML's glob overrides the shipped exact entry for gpt-4o-mini
    assert table.price("gpt-4o-mini").input_usd_per_million == 9  # type: ignore[union-attr]
    shipped = PriceTable()
    mini = shipped.price("gpt-4o-mini-2024-07-18")
    assert mini is not None and (mini.input_usd_per_million, mini.output_usd_per_million) == (
        0.15,
        0.60,
    )
    assert shipped.price("gpt-4o-2024-08-06").input_usd_per_million == 2.5  # type: ignore[union-attr]
    assert shipped.price("openai/gpt-4o-mini") is mini  # provider prefix
    assert shipped.price("claude-opus-4-5-20251101").input_usd_per_million == 5  # type: ignore[union-attr]
    assert shipped.price("claude-opus-4-1-20250805").input_usd_per_million == 15  # type: ignore[union-attr]
    assert shipped.price("my-own-model") is None and shipped.price(None) is None
    assert PriceTable(defaults=False).price("gpt-4o-mini") is None


def test_cost_is_tokens_times_price_per_million() -> None:
    p = price("m", 2.5, 10.0)
    assert cost_usd(p, 1_000, 500) == pytest.approx(0.0075)  # 1000*2.5e-6 + 500*10e-6
    assert cost_usd(p, 1_000, None) == pytest.approx(0.0025)
    assert cost_usd(p, None, None) is None  # no tokens: unknown, not free
    assert cost_usd(None, 10, 10) is None
    assert cost_usd(p, 0, 0) == 0.0


def test_the_shipped_table_is_well_formed() -> None:
    names = [p.model for p in DEFAULT_PRICES]
    assert len(names) == len(set(names)) and len(names) >= 30
    assert all(p.input_usd_per_million > 0 for p in DEFAULT_PRICES)


def test_bad_pricing_entries_are_named() -> None:
    endpoint = {
        "name": "a",
        "endpoint_type": "llm/v1/chat",
        "model": {"provider": "offline", "name": "x"},
    }
    with pytest.raises(ConfigError, match=r"pricing\[1\]: input_usd_per_million"):
        parse_config(
            {
                "endpoints": [endpoint],
                "pricing": [
                    {"model": "x", "input_usd_per_million": 1},
                    {"model": "y", "input_usd_per_million": -1},
                ],
            }
        )
    with pytest.raises(ConfigError, match=r"pricing\[0\]: currency: unknown field"):
        parse_config(
            {
                "endpoints": [endpoint],
                "pricing": [{"model": "x", "input_usd_per_million": 1, "currency": "EUR"}],
            }
        )


def test_rest_records_store_their_cost(live_server: str) -> None:
    batch = [
        record(id="a", model="gpt-4o-mini", input_tokens=1200, output_tokens=300),
        record(id="b", model="claude-3-5-haiku-20241022", input_tokens=2000, output_tokens=1000),
        record(id="c", model="house-model", input_tokens=50, output_tokens=50),
        record(id="d", model="gpt-4o-mini", input_tokens=None, output_tokens=None),
        record(id="e", model="house-model", cost_usd=0.042),  # the client's own figure is kept
    ]
    answer = httpx.post(f"{live_server}/api/v1/records", json={"records": batch}, timeout=10)
    assert answer.status_code == 201
    costs = {
        r: httpx.get(f"{live_server}/api/v1/records/{r}", timeout=10).json()["cost_usd"]
        for r in "abcde"
    }
    assert costs["a"] == pytest.approx(1200 * 0.15e-6 + 300 * 0.60e-6)  # 0.00036
    assert costs["b"] == pytest.approx(2000 * 0.80e-6 + 1000 * 4.0e-6)  # 0.0056
    assert costs["c"] is None and costs["d"] is None
    assert costs["e"] == 0.042
    bad = httpx.post(f"{live_server}/api/v1/records", json=record(cost_usd=-1), timeout=10)
    assert bad.status_code == 422 and "cost_usd" in bad.text
