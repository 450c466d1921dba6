"""Spend on the overview: the stored ``cost_usd`` summed per user and per tag by the database.

(Per endpoint, model and template version the sums come with the other figures, in
``traffic.py``.) A tag is one ``key=value`` pair of a record's ``tags``; a record with several
tags counts for each. Records without a price (``cost_usd`` null) are counted as calls but add
nothing to the spend; ``priced`` says how many had one.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Engine, Select, case, desc, func, select, true

from llmscope.dashboard.data.common import Filters
from llmscope.dashboard.data.common import with_feedback as _with_feedback
from llmscope.db.models import Record

__all__ = ["cost_by"]


def cost_by(engine: Engine, filters: Filters, *, by: str, limit: int = 12) -> list[dict[str, Any]]:
    """Per user (``by="user"``) or per tag (``by="tag"``), the most spent first: ``group``,
    ``calls``, ``priced`` and ``cost_usd``."""
    if by not in ("user", "tag"):
        raise ValueError(f"cost_by: by must be 'user' or 'tag', not {by!r}")
    postgres = engine.dialect.name == "postgresql"
    conditions = list(filters.conditions())
    if by == "tag":  # records whose tags are a JSON object (not SQL or JSON null)
        typeof = func.jsonb_typeof if postgres else func.json_type
        conditions.append(typeof(Record.tags) == "object")
    columns = cast(Select[Any], select(Record.user_id, Record.tags, Record.cost_usd))
    matching = _with_feedback(columns.select_from(Record)).where(*conditions).subquery("matching")
    priced = func.sum(case((matching.c.cost_usd.is_not(None), 1), else_=0))
    spend = func.coalesce(func.sum(matching.c.cost_usd), 0.0)
    source: Any = matching
    if by == "user":
        keys: list[Any] = [matching.c.user_id]
    else:
        each = func.jsonb_each_text if postgres else func.json_each
        pairs = each(matching.c.tags).table_valued("key", "value")
        # A function in FROM may read the rows before it (implicitly lateral).
        source = matching.join(pairs, true())
        keys = [pairs.c.key, pairs.c.value]
    query = (
        select(*keys, func.count(), priced, spend)
        .select_from(source)
        .group_by(*keys)
        .order_by(desc(spend), desc(func.count()), *keys)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        group_name = row[0] if by == "user" else f"{row[0]}={row[1]}"
        calls, n_priced, cost = row[-3], row[-2], row[-1]
        out.append(
            {
                "group": group_name,
                "calls": int(calls),
                "priced": int(n_priced or 0),
                "cost_usd": float(cost or 0),
            }
        )
    return out
