"""One cluster (``/clusters/<id>``): its summary and who wrote it, keywords, share over time,
thumbs-down rate as the report gives it, latency and token distributions, template versions,
example records, and a CSV export of all its records."""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import charts, data, tryfix
from llmscope.dashboard.components import (
    FEEDBACK_LABELS,
    badge,
    card,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_time,
    graph,
    no_run,
    page,
    problems_banner,
    stat,
    summary_author,
    text_block,
    thumb_badge,
)
from llmscope.dashboard.pages import experiments, subclusters
from llmscope.dashboard.state import ViewState
from llmscope.report import ClusterEntry, ClusterSummary


def render(engine: Engine, state: ViewState, cluster_id: int) -> html.Div:
    found = data.run_report(engine, state.run)
    if found is None:
        return page(f"Cluster {cluster_id}", no_run(data.store_status(engine).records))
    run, report = found
    cluster = data.find_cluster(report, cluster_id)
    back = dcc.Link("← All clusters", href=state.href("/clusters"), className="back-link")
    if cluster is None:
        return page(
            f"Cluster {cluster_id}",
            back,
            card(html.P(f"Run {run.id} has no cluster {cluster_id}."), title="Not found"),
        )
    summary = cluster.summary
    title = subclusters.title_of(cluster)
    members = data.members_of(engine, run.id, cluster)  # None: a cluster of the cut
    export = ViewState(run=run.id).href(f"/export/clusters/{cluster_id}.csv")
    records = data.cluster_records(
        engine,
        run.id,
        cluster_id,
        data.Filters(feedback=state.feedback),
        first=cluster.examples,
        members=members,
    )
    values = data.cluster_values(engine, run.id, cluster_id, members=members)
    return page(
        title,
        *[
            c
            for c in (
                subclusters.breadcrumb(report, cluster, state) or back,
                problems_banner(state),
                _summary(cluster, summary),
                _stats(cluster),
                subclusters.children_card(report, cluster, state),
                _evaluations(cluster, data.failing_examples(engine, run.id, cluster_id))
                if cluster.evaluations
                else None,
                html.Div(
                    [
                        card(
                            graph(
                                charts.share_figure(
                                    data.share_by_day(engine, run.id, cluster_id, members),
                                    cluster.baseline_share,
                                    cluster.current_share,
                                )
                            ),
                            title="Share of each day's records",
                        ),
                        card(_templates(cluster), title="Template versions"),
                    ],
                    className="grid-2-1",
                ),
                html.Div(
                    [
                        card(
                            graph(
                                charts.distribution_figure(values, ("latency_ms",), "Latency (ms)")
                            )
                        ),
                        card(
                            graph(
                                charts.distribution_figure(
                                    values, ("input_tokens", "output_tokens"), "Tokens per call"
                                )
                            )
                        ),
                    ],
                    className="grid-2",
                ),
                experiments.try_a_fix(engine, state, cluster_id, tryfix.panel(cluster_id, run.id)),
                card(
                    _feedback_filter(state),
                    _records(records, state),
                    title="Example records",
                    className="records-card",
                ),
            )
            if c is not None
        ],
        actions=html.A(
            f"⬇ Download CSV ({fmt_int(cluster.size)} records)",
            href=export,
            download=f"cluster-{cluster_id}-{run.id}.csv",
            className="button",
            id="export-link",
        ),
        subtitle=[
            html.Span(f"{subclusters.kind_of(cluster)} {cluster_id} of run "),
            html.Code(run.id),
            html.Span(f" · created {fmt_time(run.created_at)}"),
        ],
    )


def _summary(cluster: ClusterEntry, summary: ClusterSummary | None) -> html.Section:
    parts: list[Any] = [
        html.Div(
            [
                html.Span("Summary written by ", className="muted"),
                html.Strong(
                    summary_author(summary.generated_by if summary else None), id="summary-author"
                ),
            ],
            className="summary-author",
        ),
        html.P(
            (summary.text if summary else "") or "No summary stored for this cluster.",
            className="summary",
        ),
    ]
    lines = (
        (("Likely root cause", summary.root_cause), ("Suggested fix", summary.suggested_fix))
        if summary
        else ()
    )
    for label, said in lines:
        if said:
            parts.append(
                html.Div([html.Strong(f"{label}: "), html.Span(said)], className="summary-line")
            )
    parts.append(
        html.Div(
            [badge(k, "keyword") for k in cluster.keywords],
            className="keywords-row",
            id="cluster-keywords",
        )
    )
    return card(*parts, title="Summary")


def _stats(c: ClusterEntry) -> html.Div:
    drift, hotspot, fb, lat, tok = c.drift, c.hotspot, c.feedback, c.latency_ms, c.tokens
    return html.Div(
        [
            stat(
                "Size",
                fmt_int(c.size),
                f"{fmt_int(c.baseline_count)} baseline · {fmt_int(c.current_count)} current",
            ),
            stat(
                "Share",
                f"{fmt_pct(c.baseline_share)} → {fmt_pct(c.current_share)}",
                "baseline → current",
            ),
            stat(
                "Drift",
                [
                    drift.kind,
                    " ",
                    badge("flagged", "bad") if drift.flagged else badge("not flagged", "neutral"),
                ],
                f"score {fmt_num(drift.score, 2)} · p={fmt_p(drift.p_value)} · "
                f"q={fmt_p(drift.q_value)}",
                tone="bad" if drift.flagged else "",
            ),
            stat(
                "Thumbs-down",
                fmt_pct(fb.down_rate),
                f"{fmt_int(fb.down)} down of {fmt_int(fb.rated)} rated"
                + (" (few ratings: read with care)" if fb.rated < 20 else ""),
                tone="bad" if hotspot.flagged else "",
            ),
            stat(
                "Hotspot lift",
                f"×{fmt_num(hotspot.lift, 2)}",
                [
                    f"p={fmt_p(hotspot.p_value)} · q={fmt_p(hotspot.q_value)} ",
                    badge("flagged", "bad") if hotspot.flagged else badge("not flagged", "neutral"),
                ],
                tone="bad" if hotspot.flagged else "",
            ),
            stat("Latency", f"{fmt_num(lat.p50, 0)} ms", f"p95 {fmt_num(lat.p95, 0)} ms"),
            stat(
                "Tokens (p50)",
                f"{fmt_num(tok.input_p50, 0)} in",
                f"{fmt_num(tok.output_p50, 0)} out",
            ),
        ],
        className="stats",
        id="cluster-stats",
    )


def _evaluations(c: ClusterEntry, failing: list[dict[str, Any]]) -> html.Section:
    """Each evaluator's failures in the cluster (current window) and answers it failed."""
    rows = [
        html.Tr(
            [
                html.Td(name),
                html.Td(f"{fmt_int(e.failed)} failed of {fmt_int(e.evaluated)} evaluated"),
                html.Td(fmt_pct(e.fail_rate)),
                html.Td(f"×{fmt_num(e.lift, 2)}"),
                html.Td(f"p={fmt_p(e.p_value)} · q={fmt_p(e.q_value)}"),
                html.Td(badge("flagged", "bad") if e.flagged else badge("not flagged", "neutral")),
            ]
        )
        for name, e in sorted(c.evaluations.items())
    ]
    headers = ("evaluator", "failures", "fail rate", "lift", "test", "")
    examples = [
        html.Div(
            [
                html.Div(
                    [
                        dcc.Link(html.Code(f["id"]), href=f"/records/{f['id']}"),
                        " ",
                        badge(f"{f['evaluator']}: fail", "bad"),
                    ],
                    className="record-head",
                ),
                html.Div("Request", className="field-label"),
                text_block(f["text"]),
                html.Div("Answer", className="field-label"),
                text_block(f["response"]),
                html.Div("Why it failed", className="field-label"),
                text_block(f["justification"]),
            ],
            className="record",
        )
        for f in failing
    ]
    return card(
        html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
            className="table",
            id="cluster-evaluations",
        ),
        html.P(
            "Few evaluated answers make a rate uncertain: read the counts, not only the rate.",
            className="footnote",
        ),
        html.Div(examples, className="records", id="failing-examples")
        if examples
        else html.P("No failing answer of this cluster is stored.", className="muted"),
        title="Evaluators",
    )


def _templates(c: ClusterEntry) -> Any:
    templates = c.templates
    if not templates:
        return html.P("No templates recorded for these calls.", className="muted")
    size = sum(templates.values()) or 1
    rows = [
        html.Tr(
            [
                html.Td(html.Code(name)),
                html.Td(fmt_int(n), className="num"),
                html.Td(fmt_pct(n / size), className="num"),
            ]
        )
        for name, n in sorted(templates.items(), key=lambda kv: -kv[1])
    ]
    return html.Table(
        [
            html.Thead(
                html.Tr([html.Th("template@version"), html.Th("calls"), html.Th("of cluster")])
            ),
            html.Tbody(rows),
        ],
        className="table",
    )


def _feedback_filter(state: ViewState) -> html.Div:
    return html.Div(
        [
            html.Label("Show", className="control-label"),
            dcc.RadioItems(
                id={"type": "view", "key": "feedback"},
                options=[{"label": "examples first, then newest", "value": ""}]
                + [{"label": v, "value": k} for k, v in FEEDBACK_LABELS.items()],
                value=state.feedback or "",
                inline=True,
                className="radio",
            ),
        ],
        className="control-group",
    )


def _records(records: list[dict[str, Any]], state: ViewState) -> Any:
    if not records:
        return html.P("No records of this cluster match.", className="muted")
    items = []
    for r in records:
        href = state.href(f"/records/{r['id']}", feedback=None)
        template = (
            f"{r['template_name']}@{r['template_version'] or '-'}"
            if r["template_name"]
            else "no template"
        )
        items.append(
            html.Article(
                [
                    html.Div(
                        [
                            dcc.Link(r["id"], href=href, className="record-link"),
                            html.Span(
                                f"{fmt_time(r['timestamp'])} · {r['window']} · "
                                f"{r['endpoint'] or '–'} · {r['model'] or '–'} · {template}",
                                className="muted small",
                            ),
                            thumb_badge(r["thumb"]),
                        ],
                        className="record-head",
                    ),
                    html.Div([html.Div("Prompt", className="field-label"), text_block(r["text"])]),
                    html.Div(
                        [html.Div("Response", className="field-label"), text_block(r["response"])]
                    ),
                    html.Div(
                        [
                            html.Span("Feedback comment: ", className="muted"),
                            html.Span(r["comment"]),
                        ],
                        className="small",
                    )
                    if r["comment"]
                    else None,
                ],
                className="record",
            )
        )
    return html.Div(items, className="records", id="cluster-records")
