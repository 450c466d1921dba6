"""What the collector counts about every record it writes: its cost, its budgets, its metrics.

One :class:`Accounting` per collector process. Whatever door a record comes in by (gateway,
REST, SDK, OTLP), the write path calls :meth:`Accounting.price` on its rows before they are
stored (so ``cost_usd`` is stored with the row) and :meth:`Accounting.counted` once they count:
a gateway call when it is answered, any other record when its transaction is committed. The
gateway's config supplies the ``pricing:`` and ``budgets:`` (:meth:`configure`, on every reload).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmscope.collector.costs.budgets import Budget, BudgetTracker
from llmscope.collector.costs.pricing import Price, PriceTable
from llmscope.metrics import Metrics

__all__ = ["Accounting"]


class Accounting:
    """Prices rows, feeds the budgets and the metrics (see the module docstring)."""

    def __init__(self, metrics: Metrics, budgets: BudgetTracker) -> None:
        self.metrics = metrics
        self.budgets = budgets
        self.prices = PriceTable()

    def configure(self, pricing: Iterable[Price], budgets: Iterable[Budget]) -> None:
        """Apply a gateway config's ``pricing:`` and ``budgets:`` (at start and on reload)."""
        self.prices = PriceTable(pricing)
        self.budgets.set_budgets(list(budgets))

    def price(self, rows: Iterable[dict[str, Any]]) -> None:
        """Set ``cost_usd`` on each row that has none (a client may send its own)."""
        prices = self.prices
        for row in rows:
            if row.get("cost_usd") is None:
                row["cost_usd"] = prices.cost(row)

    def counted(self, rows: Iterable[dict[str, Any]]) -> None:
        """The rows are answered (gateway) or committed (others): metrics and budgets see them."""
        rows = list(rows)
        self.metrics.calls_committed(rows)
        if self.budgets.budgets:
            for row in rows:
                self.budgets.add(row)
