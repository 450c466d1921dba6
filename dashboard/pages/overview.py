"""The overview (``/``): traffic, thumbs-down rate, latency and tokens over time, the same by
endpoint, model and template version (with their cost), the cost by user and by tag, the latest
alerts, and which analysis run is shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import charts, data
from llmscope.dashboard.components import (
    badge,
    card,
    database_flag,
    filter_bar,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_time,
    fmt_usd,
    graph,
    no_records,
    no_run,
    page,
    problems_banner,
    run_selector,
    stat,
)
from llmscope.dashboard.data.cache import cached
from llmscope.dashboard.state import ViewState
from llmscope.report import RunReport

# The heavy reads, memoised for a few seconds (see data/cache.py): re-renders are instant.
store_status = cached(data.store_status)
traffic_summary = cached(data.traffic_summary)
filter_options = cached(data.filter_options)
cost_by = cached(data.cost_by)

BREAKDOWNS = (("endpoint", "endpoint"), ("model", "model"), ("template", "template version"))
SPLITS = {"none": "nothing", "endpoint": "endpoint", "model": "model", "template": "template"}


def render(engine: Engine, state: ViewState) -> html.Div:
    status = store_status(engine)
    if status.records == 0:
        return page("Overview", no_records(database_flag(engine)))
    found = data.run_report(engine, state.run)
    runs = data.list_runs(engine)
    run, report = found if found else (None, None)
    # Default range: the run's baseline and current windows, else the last week of traffic.
    if run is not None:
        since, until = run.baseline_start, run.current_end
    else:
        assert status.last is not None
        until = status.last + timedelta(seconds=1)
        since = until - timedelta(days=7)
    filters = data.Filters.from_state(state, since, until)
    unit = data.bucket_unit(filters.since, filters.until)
    split = state.by if state.by != "none" else None
    query = filters.within(status.first, status.last)
    summary = traffic_summary(engine, query, unit=unit, by=split)
    options = filter_options(engine)
    figures = charts.traffic_figures(summary.series, split is not None)
    total, breakdowns = summary.totals, summary.tables

    header_actions = run_selector(runs, state.run if run else None) if runs else None
    children: list[Any] = [problems_banner(state)]
    if state.run and found is None:
        children.append(
            html.Div(
                f"No analysis run {state.run!r}: showing traffic only.",
                className="notice notice-warn",
            )
        )
    children += [
        _run_card(run, report, state)
        if run and report
        else no_run(status.records, database_flag(engine)),
        _filters(state, options),
        html.Div(
            [
                stat("Calls", fmt_int(total["calls"]), f"{fmt_int(total['errors'])} errors"),
                stat(
                    "Thumbs-down rate",
                    fmt_pct(total["down"] / total["rated"]) if total["rated"] else "–",
                    f"{fmt_int(total['down'])} down of {fmt_int(total['rated'])} rated",
                    tone="bad" if total["rated"] and total["down"] / total["rated"] > 0.2 else "",
                ),
                stat(
                    "Latency p50",
                    f"{fmt_num(total['p50'], 0)} ms",
                    f"p95 {fmt_num(total['p95'], 0)} ms",
                ),
                stat(
                    "Tokens",
                    fmt_int(total["input_tokens"] + total["output_tokens"]),
                    f"{fmt_int(total['input_tokens'])} in · {fmt_int(total['output_tokens'])} out",
                ),
                stat("Cost", fmt_usd(total["cost_usd"]), "calls with a price (pricing:)"),
            ],
            className="stats",
        ),
        html.Div(
            [
                card(graph(figures["calls"], "chart-calls")),
                card(graph(figures["down"], "chart-down")),
                card(graph(figures["latency"], "chart-latency")),
                card(graph(figures["tokens"], "chart-tokens")),
            ],
            className="grid-2",
        ),
        html.P(
            f"{'Hourly' if unit == 'hour' else 'Daily'} buckets from {fmt_time(filters.since)} "
            f"to {fmt_time(filters.until)}. Latency percentiles are nearest-rank, per bucket; "
            "the thumbs-down rate counts each rated call's latest feedback. Split the charts by "
            "endpoint, model or template for each one's latency.",
            className="footnote",
        ),
        html.Div(
            [
                card(_breakdown_table(breakdowns[key], state, key), title=f"By {label}")
                for key, label in BREAKDOWNS
            ],
            className="grid-3",
        ),
        _evaluators_card(engine, state),
        html.Div(
            [
                card(_cost_table(cost_by(engine, query, by=key), key), title=f"Cost by {key}")
                for key in ("user", "tag")
            ],
            className="grid-2",
        ),
        card(_alerts(data.latest_alerts(engine), state), title="Latest alerts"),
    ]
    return page(
        "Overview",
        *[c for c in children if c is not None],
        actions=header_actions,
        subtitle=f"{status.records:,} records from {fmt_time(status.first)} to "
        f"{fmt_time(status.last)}",
    )


def _filters(state: ViewState, options: dict[str, list[str]]) -> html.Div:
    split = html.Div(
        [
            html.Label("Split charts by", className="control-label"),
            dcc.RadioItems(
                id={"type": "view", "key": "by"},
                options=[{"label": v, "value": k} for k, v in SPLITS.items()],
                value=state.by,
                inline=True,
                className="radio",
            ),
        ],
        className="control-group",
    )
    return filter_bar(state, options, feedback=False, extra=[split])


def _evaluators_card(engine: Engine, state: ViewState) -> html.Section | None:
    """Each evaluator's fail rate per day, when anything has been evaluated."""
    rows = data.fail_rate_by_day(engine)
    if not rows:
        return None
    return card(
        graph(charts.fail_rate_figure(rows), "chart-fail-rate"),
        dcc.Link("Evaluators: versions, cost and agreement with users →",
                 href=state.href("/evaluators")),
        title="Evaluations",
    )  # fmt: skip


def _run_card(run: data.RunInfo, report: RunReport, state: ViewState) -> html.Section:
    clusters = report.clusters
    flagged = [c for c in clusters if c.drift.flagged or c.hotspot.flagged]
    drift = report.global_drift
    return card(
        html.Div(
            [
                stat("Run", html.Code(run.id), f"created {fmt_time(run.created_at)}"),
                stat(
                    "Baseline",
                    f"{fmt_int(report.baseline.records)} records",
                    f"{fmt_time(run.baseline_start)} → {fmt_time(run.baseline_end)}",
                ),
                stat(
                    "Current",
                    f"{fmt_int(report.current.records)} records",
                    f"{fmt_time(run.current_start)} → {fmt_time(run.current_end)}",
                ),
                stat(
                    "Clusters",
                    fmt_int(len(clusters)),
                    f"{len(flagged)} flagged",
                    tone="bad" if flagged else "",
                ),
                stat(
                    "Global drift",
                    "flagged" if drift.flagged else "not flagged",
                    f"{drift.method} p={drift.p_value}",
                    tone="bad" if drift.flagged else "",
                ),
            ],
            className="stats stats-compact",
        ),
        dcc.Link(
            "Open the clusters of this run →", href=state.href("/clusters"), className="button-link"
        ),
        title="Analysis run shown",
    )


def _breakdown_table(rows: list[dict[str, Any]], state: ViewState, by: str) -> html.Table:
    head = html.Tr(
        [
            html.Th(by),
            html.Th("calls"),
            html.Th("down rate"),
            html.Th("tokens"),
            html.Th("cost"),
        ]
    )
    body = []
    for r in rows[:12]:
        value = r["group"]
        label = dcc.Link(str(value), href=state.href("/", **{by: value})) if value else "(none)"
        body.append(
            html.Tr(
                [
                    html.Td(label),
                    html.Td(fmt_int(r["calls"]), className="num"),
                    html.Td(
                        [
                            fmt_pct(r["down"] / r["rated"]),
                            html.Div(f"{r['down']}/{r['rated']}", className="muted small"),
                        ]
                        if r["rated"]
                        else "–",
                        className="num",
                    ),
                    html.Td(fmt_int(r["input_tokens"] + r["output_tokens"]), className="num"),
                    html.Td(fmt_usd(r["cost_usd"]), className="num"),
                ]
            )
        )
    return html.Table([html.Thead(head), html.Tbody(body)], className="table")


def _cost_table(rows: list[dict[str, Any]], by: str) -> html.Table:
    head = html.Tr([html.Th(by), html.Th("calls"), html.Th("priced"), html.Th("cost")])
    body = [
        html.Tr(
            [
                html.Td(str(r["group"]) if r["group"] is not None else "(none)"),
                html.Td(fmt_int(r["calls"]), className="num"),
                html.Td(fmt_int(r["priced"]), className="num"),
                html.Td(fmt_usd(r["cost_usd"]), className="num"),
            ]
        )
        for r in rows
    ]
    return html.Table([html.Thead(head), html.Tbody(body)], className="table")


KIND_TONES = {
    "hotspot": "bad",
    "drift": "warn",
    "new_cluster": "info",
    "global_drift": "warn",
    "budget": "warn",
}


def _alerts(alerts: list[dict[str, Any]], state: ViewState) -> Any:
    if not alerts:
        return html.P(
            "No alerts yet. Analysis runs raise them for drifting clusters, new "
            "clusters and thumbs-down hotspots.",
            className="muted",
        )
    items = []
    for a in alerts:
        target: Any = a["message"]
        if a["cluster_id"] is not None:
            target = dcc.Link(
                a["message"], href=ViewState(run=a["run_id"]).href(f"/clusters/{a['cluster_id']}")
            )
        items.append(
            html.Li(
                [
                    badge(a["kind"].replace("_", " "), KIND_TONES.get(a["kind"], "neutral")),
                    html.Span(target, className="alert-message"),
                    html.Span(
                        f"{fmt_time(a['created_at'])} · {a['delivery_status']}",
                        className="muted alert-meta",
                    ),
                ],
                className="alert-item",
            )
        )
    return html.Ul(items, className="alert-list")
