"""The overview's figures in one statement: traffic over time (optionally split by a group),
the same by endpoint, model and template version, and the totals.

One pass over the matching records: the database reads them once (joined to each record's
latest feedback) into a materialised set, counts and sums them by bucket, endpoint, model and
template together, rolls those small groups up into each table, and picks nearest-rank latency
percentiles per bucket and overall (``percentile_disc`` on PostgreSQL; window ranks on SQLite,
which has no ordered-set aggregates). Python only puts the rows where the page wants them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Engine,
    Float,
    Integer,
    String,
    case,
    cast,
    func,
    literal,
    null,
    select,
    tuple_,
    union_all,
)

from llmscope.dashboard.data.common import TEMPLATE_KEY, THUMB, Filters, parse_bucket, time_bucket
from llmscope.dashboard.data.common import with_feedback as _with_feedback
from llmscope.db.models import Record

GROUPS = ("endpoint", "model", "template")
FIGURES = (
    "calls",
    "errors",
    "rated",
    "down",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "priced",  # calls with a cost_usd: the cost figures mean something only when some have
)


@dataclass(frozen=True)
class Traffic:
    """What the overview draws: ``series`` per bucket (and group), ``tables`` per group kind
    (busiest first), and ``totals``; every row holds the ``FIGURES`` (and p50/p95 where the
    database ranked latencies: series and totals)."""

    series: list[dict[str, Any]]
    totals: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _null(type_: Any) -> Any:
    return cast(null(), type_)


def _statement(dialect: str, filters: Filters, unit: str, by: str | None) -> Any:
    base = (
        _with_feedback(
            select(
                time_bucket(dialect, unit).label("b"),
                Record.endpoint.label("endpoint"),
                Record.model.label("model"),
                TEMPLATE_KEY.label("template"),
                case((Record.status == "error", 1), else_=0).label("err"),
                Record.input_tokens.label("tin"),
                Record.output_tokens.label("tout"),
                Record.cost_usd.label("cost"),
                case((Record.cost_usd.is_not(None), 1), else_=0).label("has_price"),
                Record.latency_ms.label("v"),
                THUMB.label("thumb"),
            ).select_from(Record)
        )
        .where(*filters.conditions())
        .cte("base")
        .prefix_with("MATERIALIZED")  # read once, used by the counts and the percentiles
    )
    fine = (
        select(
            base.c.b,
            *[base.c[g] for g in GROUPS],
            func.count().label("calls"),
            func.sum(base.c.err).label("errors"),
            func.sum(case((base.c.thumb.is_not(None), 1), else_=0)).label("rated"),
            func.sum(case((base.c.thumb == "down", 1), else_=0)).label("down"),
            func.sum(base.c.tin).label("input_tokens"),
            func.sum(base.c.tout).label("output_tokens"),
            func.sum(base.c.cost).label("cost_usd"),
            func.sum(base.c.has_price).label("priced"),
        )
        .group_by(base.c.b, *[base.c[g] for g in GROUPS])
        .cte("fine")
        .prefix_with("MATERIALIZED")
    )
    sums = [func.sum(fine.c[f]).label(f) for f in FIGURES]
    no_pct = [_null(Float).label("p50"), _null(Float).label("p95")]
    no_sums = [_null(Float if f == "cost_usd" else Integer).label(f) for f in FIGURES]
    split = fine.c[by] if by else _null(String)
    parts = [
        select(
            literal("series").label("kind"), fine.c.b, split.label("g"), *sums, *no_pct
        ).group_by(fine.c.b, split)
        if by
        else select(literal("series"), fine.c.b, split, *sums, *no_pct).group_by(fine.c.b),
        select(literal("total"), _null(String), _null(String), *sums, *no_pct),
        *[
            select(literal(g), _null(String), fine.c[g], *sums, *no_pct).group_by(fine.c[g])
            for g in GROUPS
        ],
    ]
    keys = [base.c.b, base.c[by]] if by else [base.c.b]
    if dialect == "postgresql":
        # percentile_disc is the nearest rank: the first value whose rank reaches p·n.
        pcts = [
            func.percentile_disc(q).within_group(base.c.v).label(f"p{int(q * 100)}")
            for q in (0.5, 0.95)
        ]
        g_col = base.c[by] if by else _null(String)
        parts.append(
            select(
                case((func.grouping(base.c.b) == 1, "pct_total"), else_="pct"),
                base.c.b,
                g_col,
                *no_sums,
                *pcts,
            ).group_by(func.grouping_sets(tuple_(*keys), tuple_()))
        )
    else:
        parts += _sqlite_percentiles(base, keys, by, no_sums)
    return union_all(*parts)


def _sqlite_percentiles(
    base: Any, keys: list[Any], by: str | None, no_sums: list[Any]
) -> list[Any]:
    """Per bucket (and group) and overall, the smallest latency whose rank reaches p·n."""
    ranked = (
        select(
            *[k.label(f"k{i}") for i, k in enumerate(keys)],
            base.c.v,
            func.row_number().over(partition_by=keys, order_by=base.c.v).label("rn"),
            func.count().over(partition_by=keys).label("n"),
            func.row_number().over(order_by=base.c.v).label("ra"),
            func.count().over().label("na"),
        )
        .where(base.c.v.is_not(None))
        .subquery("ranked")
    )
    r = ranked.c
    key_cols = [r[f"k{i}"] for i in range(len(keys))]
    per_key = (
        select(
            *key_cols,
            func.min(case((r.rn >= 0.5 * r.n, r.v))).label("p50"),
            func.min(case((r.rn >= 0.95 * r.n, r.v))).label("p95"),
            func.min(case((r.ra >= 0.5 * r.na, r.v))).label("a50"),
            func.min(case((r.ra >= 0.95 * r.na, r.v))).label("a95"),
        )
        .group_by(*key_cols)
        .cte("pct")
        .prefix_with("MATERIALIZED")
    )
    p = per_key.c
    return [
        select(literal("pct"), p.k0, p.k1 if by else _null(String), *no_sums, p.p50, p.p95),
        # The overall rank's thresholds were met in some group: the smallest of them is it.
        select(
            literal("pct_total"),
            _null(String),
            _null(String),
            *no_sums,
            func.min(p.a50),
            func.min(p.a95),
        ),
    ]


def _figures(row: Any) -> dict[str, int | float]:
    # Counts and token sums are integers; cost_usd (the priced calls' sum) is US dollars.
    return {
        f: float(row[3 + i] or 0.0) if f == "cost_usd" else int(row[3 + i] or 0)
        for i, f in enumerate(FIGURES)
    }


def traffic_summary(
    engine: Engine, filters: Filters, *, unit: str = "day", by: str | None = None, groups: int = 6
) -> Traffic:
    """The overview's figures for the records matching ``filters``: per ``unit`` bucket (one
    series per group of ``by`` for its ``groups`` busiest groups, else one), per endpoint,
    model and template version, and in total."""
    with engine.connect() as conn:
        rows = conn.execute(_statement(conn.dialect.name, filters, unit, by)).all()
    series: dict[tuple[Any, Any], dict[str, Any]] = {}
    pcts: dict[tuple[Any, Any], tuple[Any, Any]] = {}
    tables: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    totals: dict[str, Any] = {f: 0 for f in FIGURES} | {"p50": None, "p95": None}
    total_pct: tuple[Any, Any] = (None, None)
    for row in rows:
        kind, bucket, group = row[0], row[1], row[2]
        if kind == "series":
            series[(bucket, group)] = {"bucket": parse_bucket(bucket), "group": group}
            series[(bucket, group)].update(_figures(row))
        elif kind == "total":
            totals.update(_figures(row))
        elif kind == "pct":
            pcts[(bucket, group)] = (row[-2], row[-1])
        elif kind == "pct_total":
            total_pct = (row[-2], row[-1])
        else:
            tables[kind].append({"group": group, **_figures(row)})
    totals["p50"], totals["p95"] = total_pct
    for table in tables.values():
        table.sort(key=lambda r: (-r["calls"], str(r["group"])))
    keep = {r["group"] for r in tables[by][:groups]} if by else {None}
    out: list[dict[str, Any]] = []
    for key, point in series.items():
        if key[1] in keep:
            point["p50"], point["p95"] = pcts.get(key, (None, None))
            out.append(point)
    out.sort(key=lambda r: (r["bucket"], str(r["group"])))
    return Traffic(series=out, totals=totals, tables=tables)


def traffic(
    engine: Engine, filters: Filters, *, unit: str, by: str | None = None, groups: int = 6
) -> list[dict[str, Any]]:
    """Per time bucket (and per group of ``by``, top ``groups`` by traffic): calls, errors,
    rated and thumbs-down counts, token sums, and latency p50/p95."""
    return traffic_summary(engine, filters, unit=unit, by=by, groups=groups).series


def breakdown(engine: Engine, filters: Filters, *, by: str) -> list[dict[str, Any]]:
    """Per group of ``by`` (endpoint|model|template), busiest first: the same counts and sums
    as ``traffic`` over the whole time range."""
    return traffic_summary(engine, filters).tables[by]


def totals(engine: Engine, filters: Filters) -> dict[str, Any]:
    """The same figures as ``breakdown`` for all matching records together, with p50/p95."""
    return traffic_summary(engine, filters).totals
