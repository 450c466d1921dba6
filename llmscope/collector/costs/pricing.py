"""What a call cost: a price table by model name or glob, and ``cost_usd`` for a record row.

The gateway YAML's ``pricing:`` section lists prices in US dollars per million tokens::

    pricing:
      - {model: gpt-4o-mini, input_usd_per_million: 0.15, output_usd_per_million: 0.60}
      - {model: "my-finetune-*", input_usd_per_million: 3, output_usd_per_million: 12}

over :data:`DEFAULT_PRICES`, a table for common models shipped with llmscope (list prices as
of :data:`DEFAULT_PRICES_DATE`, from :data:`DEFAULT_PRICES_SOURCE`; prices change, so check and
override them). A model's price is looked up in the YAML's entries first, then in the shipped
table; within each, an exact name wins over a glob (``*``, ``?``, ``[...]``, case-insensitive),
and among globs the longest pattern (the most specific) wins. A model written with a provider
prefix (``openai/gpt-4o``) is also looked up without it.

``cost_usd = (input_tokens * input + output_tokens * output) / 1e6``; it is ``None`` when the
model has no price or the call reported no tokens at all (an unknown cost is not a zero cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_PRICES", "DEFAULT_PRICES_DATE", "Price", "PriceTable", "cost_usd"]

DEFAULT_PRICES_DATE = "2025-11-01"
DEFAULT_PRICES_SOURCE = (
    "the providers' public list prices for standard (non-batch, non-cached) API calls: "
    "openai.com/api/pricing, anthropic.com/pricing, ai.google.dev/gemini-api/docs/pricing"
)


class Price(BaseModel):
    """One ``pricing:`` entry: a model name or glob and its prices per million tokens."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(min_length=1, max_length=256)
    input_usd_per_million: float = Field(ge=0)
    output_usd_per_million: float = Field(default=0.0, ge=0)

    @property
    def is_glob(self) -> bool:
        return any(c in self.model for c in "*?[")


def _p(model: str, input_usd: float, output_usd: float = 0.0) -> Price:
    return Price(model=model, input_usd_per_million=input_usd, output_usd_per_million=output_usd)


# (model or glob, input $/1M tokens, output $/1M tokens); globs cover dated snapshots.
DEFAULT_PRICES: tuple[Price, ...] = (
    # OpenAI
    _p("gpt-5", 1.25, 10.0),
    _p("gpt-5-2*", 1.25, 10.0),
    _p("gpt-5-mini*", 0.25, 2.0),
    _p("gpt-5-nano*", 0.05, 0.40),
    _p("gpt-4.1", 2.0, 8.0),
    _p("gpt-4.1-2*", 2.0, 8.0),
    _p("gpt-4.1-mini*", 0.40, 1.60),
    _p("gpt-4.1-nano*", 0.10, 0.40),
    _p("gpt-4o", 2.50, 10.0),
    _p("gpt-4o-2*", 2.50, 10.0),
    _p("gpt-4o-mini*", 0.15, 0.60),
    _p("gpt-4-turbo*", 10.0, 30.0),
    _p("gpt-3.5-turbo*", 0.50, 1.50),
    _p("o1", 15.0, 60.0),
    _p("o1-2*", 15.0, 60.0),
    _p("o3", 2.0, 8.0),
    _p("o3-2*", 2.0, 8.0),
    _p("o3-mini*", 1.10, 4.40),
    _p("o4-mini*", 1.10, 4.40),
    _p("text-embedding-3-small", 0.02),
    _p("text-embedding-3-large", 0.13),
    _p("text-embedding-ada-002", 0.10),
    # Anthropic
    _p("claude-opus-4-5*", 5.0, 25.0),
    _p("claude-opus-4*", 15.0, 75.0),
    _p("claude-3-opus*", 15.0, 75.0),
    _p("claude-sonnet-4*", 3.0, 15.0),
    _p("claude-3-7-sonnet*", 3.0, 15.0),
    _p("claude-3-5-sonnet*", 3.0, 15.0),
    _p("claude-haiku-4-5*", 1.0, 5.0),
    _p("claude-3-5-haiku*", 0.80, 4.0),
    _p("claude-3-haiku*", 0.25, 1.25),
    # Google
    _p("gemini-2.5-pro*", 1.25, 10.0),
    _p("gemini-2.5-flash-lite*", 0.10, 0.40),
    _p("gemini-2.5-flash*", 0.30, 2.50),
    _p("gemini-2.0-flash*", 0.10, 0.40),
)


def _find(prices: Iterable[Price], model: str) -> Price | None:
    best: Price | None = None
    folded = model.casefold()
    for price in prices:
        pattern = price.model.casefold()
        if not price.is_glob:
            if pattern == folded:
                return price
        elif fnmatchcase(folded, pattern) and (best is None or len(pattern) > len(best.model)):
            best = price
    return best


class PriceTable:
    """The YAML's prices over the shipped defaults; :meth:`price` finds a model's entry."""

    def __init__(self, prices: Iterable[Price] = (), *, defaults: bool = True) -> None:
        self.prices = tuple(prices)
        self.defaults = DEFAULT_PRICES if defaults else ()
        self._memo: dict[str, Price | None] = {}

    def price(self, model: str | None) -> Price | None:
        """The entry pricing ``model``, or None."""
        if not model:
            return None
        if model in self._memo:
            return self._memo[model]
        names = [model]
        if "/" in model:
            names.append(model.rsplit("/", 1)[1])
        found = None
        for table in (self.prices, self.defaults):
            found = next((p for p in (_find(table, n) for n in names) if p is not None), None)
            if found is not None:
                break
        if len(self._memo) < 10_000:  # bounded: model names come from clients
            self._memo[model] = found
        return found

    def cost(self, row: Mapping[str, Any]) -> float | None:
        """``cost_usd`` of a ``records`` row (from its model and token counts)."""
        return cost_usd(
            self.price(row.get("model")), row.get("input_tokens"), row.get("output_tokens")
        )


def cost_usd(
    price: Price | None, input_tokens: int | None, output_tokens: int | None
) -> float | None:
    """The cost of one call in US dollars; None without a price or without any token count."""
    if price is None or (input_tokens is None and output_tokens is None):
        return None
    total = (input_tokens or 0) * price.input_usd_per_million + (
        output_tokens or 0
    ) * price.output_usd_per_million
    return round(total / 1_000_000, 12)
