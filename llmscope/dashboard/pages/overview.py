"""The overview (``/``): what the analysis found first (the run's ranked findings, each a
sentence linking to its evidence page) and the latest alerts; then which run is shown, the
traffic, thumbs-down rate, latency and tokens over time, the same by endpoint, model and
template version, and (only when some calls have a price) the cost by user and by tag."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import charts, data
from llmscope.dashboard.components import (
    NOT_ENOUGH_RATINGS,
    badge,
    card,
    database_flag,
    filter_bar,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_time,
    fmt_usd,
    graph,
    no_records,
    no_run,
    page,
    plural,
    problems_banner,
    run_selector,
    run_warnings,
    stat,
)
from llmscope.dashboard.data import findings
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
    total, breakdowns = summary.totals, summary.tables
    figures = charts.traffic_figures(
        summary.series, split is not None, unit, _covered(filters, status)
    )

    header_actions = run_selector(runs, state.run if run else None) if runs else None
    children: list[Any] = [problems_banner(state)]
    if state.run and found is None:
        children.append(
            html.Div(
                f"No analysis run {state.run!r}: showing traffic only.",
                className="notice notice-warn",
            )
        )
    priced = total["priced"] > 0
    children += [
        _findings_card(report, state) if report else None,
        card(_alerts(data.latest_alerts(engine), state), title="Latest alerts", className="alerts"),
        _run_card(run, report, state)
        if run and report
        else no_run(status.records, database_flag(engine)),
        _filters(state, options),
        html.Div(
            [
                stat("Calls", fmt_int(total["calls"]), plural(total["errors"], "error")),
                stat(
                    "Thumbs-down rate",
                    fmt_pct(total["down"] / total["rated"])
                    if total["rated"]
                    else NOT_ENOUGH_RATINGS,
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
                stat(
                    "Cost",
                    fmt_usd(total["cost_usd"]),
                    f"{fmt_int(total['priced'])} of {plural(total['calls'], 'call')} priced",
                )
                if priced
                else None,
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
            f"to {fmt_time(filters.until)}; open markers (faded bars) are a {unit} the data only "
            "partly covers, so fewer calls there are not a drop. Latency percentiles are "
            "nearest-rank, per bucket; the thumbs-down rate counts each rated call's latest "
            "feedback. Split the charts by endpoint, model or template for each one's latency.",
            className="footnote",
        ),
        html.Div(
            [
                card(_breakdown_table(breakdowns[key], state, key, priced), title=f"By {label}")
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
        )
        if priced
        else None,
    ]
    return page(
        "Overview",
        *[c for c in children if c is not None],
        actions=header_actions,
        subtitle=f"{plural(status.records, 'record')} from {fmt_time(status.first)} to "
        f"{fmt_time(status.last)}",
    )


def _covered(filters: data.Filters, status: data.StoreStatus) -> tuple[datetime, datetime] | None:
    """The time the charts' data covers: the filters' range, narrowed to the stored records'
    (the first and last bucket are partial when it starts or ends mid-day)."""
    if status.first is None or status.last is None:
        return None
    since = max(filters.since, status.first) if filters.since else status.first
    until = min(filters.until, status.last) if filters.until else status.last
    return since, until


FINDINGS_SHOWN = 5


def _findings_card(report: RunReport, state: ViewState) -> html.Section:
    """The run's findings, most severe first, each a sentence linking to its evidence page."""
    found = findings.findings(report)
    run = ViewState(run=report.run_id)
    items = []
    for f in found[:FINDINGS_SHOWN]:
        text: Any = f.message
        if f.cluster_id is not None:
            text = dcc.Link(f.message, href=run.href(f"/clusters/{f.cluster_id}"))
        items.append(
            html.Li(
                [
                    badge(
                        KIND_WORDS.get(f.kind, f.kind.replace("_", " ")),
                        KIND_TONES.get(f.kind, "neutral"),
                    ),
                    " ",
                    text,
                ],  # fmt: skip
                className="finding",
            )
        )
    more = len(found) - FINDINGS_SHOWN
    return card(
        html.Ol(items, className="findings", id="findings")
        if items
        else html.P("The analysis flagged nothing in this run.", className="muted", id="findings"),
        dcc.Link(
            f"{plural(more, 'more finding')} on the clusters list →",
            href=state.href("/clusters"),
        )
        if more > 0
        else None,
        title="What the analysis found",
        className="findings-card",
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
    flagged = [c for c in clusters if findings.flag_words(c)]
    drift = report.global_drift
    return card(
        html.Div(
            [
                stat("Run", html.Code(run.id), f"created {fmt_time(run.created_at)}"),
                stat(
                    "Baseline",
                    plural(report.baseline.records, "record"),
                    f"{fmt_time(run.baseline_start)} → {fmt_time(run.baseline_end)}",
                ),
                stat(
                    "Current",
                    plural(report.current.records, "record"),
                    f"{fmt_time(run.current_start)} → {fmt_time(run.current_end)}",
                ),
                stat(
                    "Clusters",
                    fmt_int(len(clusters)),
                    f"{fmt_int(len(flagged))} flagged",
                    tone="bad" if flagged else "",
                ),
                stat(
                    "Global drift",
                    "not tested"
                    if drift.p_value is None
                    else ("flagged" if drift.flagged else "not flagged"),
                    f"{drift.method} p={fmt_p(drift.p_value)}",
                    tone="bad" if drift.flagged else "",
                ),
            ],
            className="stats stats-compact",
        ),
        run_warnings(report.warnings),
        dcc.Link(
            "Open the clusters of this run →", href=state.href("/clusters"), className="button-link"
        ),
        title="Analysis run shown",
    )


def _breakdown_table(
    rows: list[dict[str, Any]], state: ViewState, by: str, priced: bool
) -> html.Table:
    head = html.Tr(
        [
            html.Th(by),
            html.Th("calls"),
            html.Th("down rate"),
            html.Th("tokens"),
            html.Th("cost") if priced else None,
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
                            html.Div(
                                f"{fmt_int(r['down'])}/{fmt_int(r['rated'])}",
                                className="muted small",
                            ),
                        ]
                        if r["rated"]
                        else "–",
                        className="num",
                    ),
                    html.Td(fmt_int(r["input_tokens"] + r["output_tokens"]), className="num"),
                    html.Td(fmt_usd(r["cost_usd"]), className="num") if priced else None,
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
    "eval_hotspot": "bad",
    "rephrase_hotspot": "bad",
    "regression": "bad",
    "drift": "warn",
    "new_cluster": "info",
    "global_drift": "warn",
    "budget": "warn",
}
KIND_WORDS = {
    "hotspot": "thumbs-down",
    "eval_hotspot": "evaluator",
    "rephrase_hotspot": "rephrased",
    "regression": "regression",
    "new_cluster": "new topic",
    "drift": "drift",
    "global_drift": "overall drift",
}


def _alerts(alerts: list[dict[str, Any]], state: ViewState) -> Any:
    if not alerts:
        return html.P(
            "No alerts yet. Analysis runs raise them for what they find: thumbs-down and "
            "evaluator hotspots, regressions, new and drifting clusters.",
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
