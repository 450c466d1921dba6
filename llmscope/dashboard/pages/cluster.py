"""One cluster (``/clusters/<id>``): its summary and who wrote it, keywords, share over time,
thumbs-down and rephrase rates as the report gives them, how its sessions ended, answers users
rephrased, latency and token distributions, template versions, example records, and a CSV
export of all its records."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import charts, data, tryfix
from llmscope.dashboard.components import (
    FEEDBACK_LABELS,
    NOT_ENOUGH_RATINGS,
    badge,
    card,
    database_flag,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_time,
    fmt_usd,
    graph,
    no_run,
    page,
    plural,
    problems_banner,
    stat,
    summary_author,
    text_block,
    thumb_badge,
    untested,
)
from llmscope.dashboard.data import findings
from llmscope.dashboard.data.cache import cached
from llmscope.dashboard.data.clusters import ClusterRecord
from llmscope.dashboard.data.evidence import report_tests
from llmscope.dashboard.pages import experiments, subclusters
from llmscope.dashboard.state import ViewState
from llmscope.report import ClusterEntry, ClusterSummary, RunReport, TemplateVersionRow


def render(engine: Engine, state: ViewState, cluster_id: int) -> html.Div:
    found = data.run_report(engine, state.run)
    if found is None:
        return page(
            f"Cluster {cluster_id}",
            no_run(data.store_status(engine).records, database_flag(engine)),
        )
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
    found_here = findings.of_cluster(report, cluster_id)
    # A thumbs-down hotspot's evidence is its thumbs-down answers: they come first.
    down_first = cluster.hotspot.flagged or any(f.kind == "hotspot" for f in found_here)
    records = data.cluster_records(
        engine,
        run.id,
        cluster_id,
        data.Filters(feedback=state.feedback),
        first=cluster.examples,
        members=members,
        down_first=down_first and not state.feedback,
    )
    values = cluster_values(engine, run.id, cluster_id, members=_key(members))
    failing = any(e.flagged for e in cluster.evaluations.values())
    evaluations = (
        _evaluations(cluster, data.failing_examples(engine, run.id, cluster_id))
        if cluster.evaluations
        else None
    )
    regressions = _regressions(cluster)
    regressed = any(r.flagged for r in cluster.regressions.values())
    rephrases = _rephrases(cluster, data.rephrase_pairs(engine, run.id, cluster_id), state)
    rephrased = cluster.implicit is not None and cluster.implicit.rephrase.flagged
    tags = down_tags(engine, run.id, cluster_id, _key(members))
    down = down_by(engine, run.id, cluster_id, _key(members))
    return page(
        title,
        *[
            c
            for c in (
                subclusters.breadcrumb(report, cluster, state) or back,
                problems_banner(state),
                _findings(found_here, cluster),
                _stats(cluster),
                _sessions(cluster, _ended_badly(engine, run.id, cluster), state),
                evaluations if failing else None,
                regressions if regressed else None,
                _tool_failures(tool_failures(engine, run.id, cluster_id, _key(members))),
                rephrases if rephrased else None,
                card(
                    _down_tables(down, report, cluster),
                    title="Thumbs-down by template version, endpoint and model",
                    className="evidence-card",
                ),
                html.Div(
                    [
                        card(
                            graph(
                                charts.down_rate_figure(
                                    down_by_day(engine, run.id, cluster_id, _key(members))
                                ),
                                "chart-cluster-down",
                            ),
                            title="Thumbs-down rate per day",
                        ),
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
                    ],
                    className="grid-2",
                ),
                card(
                    _feedback_filter(state, down_first),
                    _tag_counts(tags, down["model"]),
                    _records(records, state),
                    title="Thumbs-down answers first" if down_first else "Example records",
                    className="records-card",
                ),
                _summary(cluster, summary),
                experiments.try_a_fix(
                    engine,
                    state,
                    cluster_id,
                    tryfix.panel(cluster_id, run.id),
                    database_flag(engine),
                ),
                subclusters.children_card(report, cluster, state),
                evaluations if not failing else None,
                regressions if not regressed else None,
                rephrases if not rephrased else None,
                card(_templates(cluster), title="Template versions (calls)"),
                html.Div(
                    [
                        card(graph(charts.distribution_figure(values, key, label), f"dist-{key}"))
                        for key, label in DISTRIBUTIONS
                    ],
                    className="grid-3",
                ),
            )
            if c is not None
        ],
        actions=html.A(
            f"⬇ Download CSV ({plural(cluster.size, 'record')})",
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


METRICS: dict[str, tuple[str, Any]] = {
    "latency_ms": ("median latency", lambda v: f"{fmt_num(v, 0)} ms"),
    "output_tokens": ("median output tokens", lambda v: fmt_num(v, 0)),
    "cost_usd": ("mean cost per priced call", fmt_usd),
    "error_rate": ("error rate", fmt_pct),
}


def _regressions(cluster: ClusterEntry) -> html.Section | None:
    """The run's per-call metric tests, baseline window against current, and what moved
    underneath: each endpoint's, model's and template version's share of the cluster's calls
    per window (the report's ``mix``), largest change first."""
    if not cluster.regressions:
        return None
    rows = []
    for metric, r in cluster.regressions.items():
        label, show = METRICS.get(metric, (metric, lambda v: fmt_num(v, 2)))
        rows.append(
            html.Tr(
                [
                    html.Td(label),
                    html.Td(
                        "–" if r.baseline is None else show(r.baseline),
                        className="num",
                    ),
                    html.Td("–" if r.current is None else show(r.current), className="num"),
                    html.Td("–" if r.ratio is None else f"×{fmt_num(r.ratio, 2)}", className="num"),
                    html.Td(
                        f"p={fmt_p(r.p_value)} · q={fmt_p(r.q_value)}"
                        if r.p_value is not None
                        else "too few calls to test",
                        className="small",
                    ),
                    html.Td(badge("flagged", "bad") if r.flagged else badge("not flagged")),
                ]
            )
        )
    head = ("metric", "baseline", "current", "ratio", "test", "")
    moved = []
    for dimension, shares in sorted(cluster.mix.items()):
        changes = sorted(
            shares.items(),
            key=lambda kv: -abs((kv[1].current_share or 0) - (kv[1].baseline_share or 0)),
        )
        for value, m in changes[:3]:
            moved.append(
                html.Tr(
                    [
                        html.Td(dimension),
                        html.Td(html.Code(value)),
                        html.Td(f"{fmt_int(m.baseline)} ({fmt_pct(m.baseline_share)})",
                                className="num"),
                        html.Td(f"{fmt_int(m.current)} ({fmt_pct(m.current_share)})",
                                className="num"),
                    ]
                )
            )  # fmt: skip
    return card(
        html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)],
            className="table",
            id="cluster-regressions",
        ),
        html.H3("What moved underneath", className="card-subtitle") if moved else None,
        html.Table(
            [
                html.Thead(html.Tr([html.Th(h) for h in ("by", "", "baseline calls",
                                                        "current calls")])),
                html.Tbody(moved),
            ],
            className="table",
            id="cluster-mix",
        )
        if moved
        else None,
        title="Per-call metrics, baseline window against current",
    )  # fmt: skip


# The evidence's reads, memoised for a few seconds (see data/cache.py): re-renders are instant.
down_by = cached(data.down_by)
down_by_day = cached(data.down_by_day)
down_tags = cached(data.down_tags)
tool_failures = cached(data.tool_failures)
cluster_values = cached(data.cluster_values)

DISTRIBUTIONS = (
    ("latency_ms", "Latency (ms) by window"),
    ("output_tokens", "Output tokens by window"),
    ("input_tokens", "Input tokens by window"),
)


def _key(members: list[str] | None) -> tuple[str, ...] | None:
    """A sub-cluster's member ids as a memo key (the memo needs hashable arguments)."""
    return None if members is None else tuple(members)


def _findings(found: list[findings.Finding], cluster: ClusterEntry) -> html.Section:
    """Why the cluster is on anyone's list: its findings in the analysis' words, else so."""
    words = findings.flag_words(cluster)
    items = [html.Li(f.message) for f in found]
    return card(
        html.Div([badge(w, "bad") for w in words], className="flags-row")
        if words
        else html.P("Nothing flagged this cluster in this run.", className="muted"),
        html.Ul(items, className="plain-list", id="cluster-findings") if items else None,
        title="What the analysis found",
    )


def _rate(calls: int, down: int, rated: int) -> Any:
    if not calls:
        return html.Span("no calls", className="muted")
    if not rated:
        return html.Span(NOT_ENOUGH_RATINGS, className="muted")
    return [
        fmt_pct(down / rated),
        html.Div(f"{fmt_int(down)} of {fmt_int(rated)}", className="muted small"),
    ]


def _q_values(report: RunReport, cluster: ClusterEntry) -> dict[str, dict[Any, str]]:
    """The report's tests of a thumbs-down rate per template version (run-wide, against the
    version before) and per route destination (in this cluster), as "q=... vs ..." text."""
    out: dict[str, dict[Any, str]] = {"template": {}, "endpoint": {}, "model": {}}
    for dimension, tests in report_tests(report, cluster.id).items():
        for group, t in tests.items():
            against = (
                f"{t.template}@{t.against} (all clusters)"
                if isinstance(t, TemplateVersionRow)
                else f"route {t.route}'s others"
            )
            out[dimension][group] = f"q={fmt_p(t.down_q_value)} vs {against}"
    return out


def _down_tables(
    rows: dict[str, list[dict[str, Any]]], report: RunReport, cluster: ClusterEntry
) -> html.Div:
    tests = _q_values(report, cluster)
    tables = []
    for dimension, label in (("template", "template@version"), ("endpoint", "endpoint"),
                             ("model", "model")):  # fmt: skip
        body = [
            html.Tr(
                [
                    html.Td(html.Code(str(r["group"])) if r["group"] else "(none)"),
                    html.Td(
                        f"{fmt_int(r['baseline_calls'])} → {fmt_int(r['current_calls'])}",
                        className="num",
                    ),
                    html.Td(
                        _rate(r["baseline_calls"], r["baseline_down"], r["baseline_rated"]),
                        className="num",
                    ),
                    html.Td(
                        _rate(r["current_calls"], r["current_down"], r["current_rated"]),
                        className="num",
                    ),
                    html.Td(tests[dimension].get(r["group"], "–"), className="small"),
                ]
            )
            for r in rows[dimension]
        ]
        head = (label, "calls baseline → current", "thumbs-down baseline", "thumbs-down current",
                "test")  # fmt: skip
        tables.append(
            html.Table(
                [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
                className="table",
                id=f"down-by-{dimension}",
            )
        )
    return html.Div(
        [
            *tables,
            html.P(
                "Rates of each window's rated calls (a call's newest thumb counts); the tests "
                "are the analysis run's, where it made one.",
                className="footnote",
            ),
        ]
    )


def _tag_counts(tags: dict[str, Any], rows: list[dict[str, Any]]) -> html.P:
    """Tags on the thumbs-down answers, per window, next to how many there are ("current
    window, 23 thumbs-down: incorrect 18, outdated 17"): no tag count exceeds its total."""
    parts = []
    for window in ("current", "baseline"):
        counted, downs = tags.get(window), sum(r[f"{window}_down"] for r in rows)
        if counted:
            parts.append(
                f"{window} window, {fmt_int(downs)} thumbs-down: "
                + ", ".join(f"{tag} {fmt_int(n)}" for tag, n in counted.most_common(5))
            )
    text = (
        "Tags on the thumbs-down answers (an answer counts once per tag) · " + " · ".join(parts)
        if parts
        else "No thumbs-down answer of this cluster carries a tag."
    )
    return html.P(text, className="small", id="down-tags")


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
                fmt_pct(fb.down_rate) if fb.rated else NOT_ENOUGH_RATINGS,
                f"{fmt_int(fb.down)} down of {fmt_int(fb.rated)} rated in the current window"
                + (" (few ratings: read with care)" if 0 < fb.rated < 20 else "")
                if fb.rated
                else "no rated answer in the current window",
                tone="bad" if hotspot.flagged else "",
            ),
            _rephrase_stat(c),
            stat(
                "Hotspot lift",
                f"×{fmt_num(hotspot.lift, 2)}" if untested(c) is None else NOT_ENOUGH_RATINGS,
                [
                    f"p={fmt_p(hotspot.p_value)} · q={fmt_p(hotspot.q_value)} ",
                    badge("flagged", "bad") if hotspot.flagged else badge("not flagged", "neutral"),
                ]
                if untested(c) is None
                else untested(c),
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


def _ended_badly(engine: Engine, run_id: str, c: ClusterEntry) -> list[str]:
    if c.sessions is None or not c.sessions.ended_badly:
        return []  # nothing to link to: no read
    return data.ended_badly(engine, run_id, c.id)


def _sessions(c: ClusterEntry, examples: list[str], state: ViewState) -> html.P | None:
    """One line on how the sessions that ended in this cluster ended, with links to a few of
    those that ended badly."""
    s = c.sessions
    if s is None or not s.sessions:
        return None
    line: list[Any] = [
        f"{fmt_int(s.ended_badly)} of its {plural(s.sessions, 'session')} ended badly: "
        f"{fmt_int(s.ended_thumbs_down)} with a thumbs-down, "
        f"{fmt_int(s.ended_rephrase)} with a rephrase"
    ]
    if examples:
        line.append(" (")
        for i, sid in enumerate(examples):
            line += [
                ", " if i else "",
                dcc.Link(sid, href=state.href(f"/sessions/{quote(sid, safe='')}")),
            ]
        line.append(")")
    return html.P(line, className="session-outcomes", id="cluster-sessions")


def _rephrase_stat(c: ClusterEntry) -> html.Div | None:
    """The rephrase rate beside the thumbs-down rate: what users said without rating."""
    if c.implicit is None:
        return None
    r = c.implicit.rephrase
    return stat(
        "Rephrased",
        fmt_pct(r.current_rate) if r.current_rate is not None else "no conversations",
        [
            f"{fmt_int(r.current)} answers asked again in other words (current) · "
            f"baseline {fmt_pct(r.baseline_rate)} · q={fmt_p(r.q_value)} ",
            badge(f"flagged ({r.kind})", "bad") if r.flagged else badge("not flagged", "neutral"),
        ],
        tone="bad" if r.flagged else "",
    )


def _rephrases(
    c: ClusterEntry, pairs: list[dict[str, Any]], state: ViewState
) -> html.Section | None:
    """Answers the user followed with the same question in other words (answer → rephrase)."""
    if c.implicit is None:
        return None
    if not pairs:
        return card(
            html.P("No answer of this cluster was followed by a rephrased question."),
            title="Answers users rephrased",
        )
    items = [
        html.Li(
            [
                html.Div(
                    [
                        dcc.Link(html.Code(p["id"]), href=state.href(f"/records/{p['id']}")),
                        html.Span(" asked: "),
                        text_block(p["question"]),
                    ],
                    className="pair-question",
                ),
                html.Div([html.Span("answer: "), text_block(p["answer"])]),
                html.Div(
                    [
                        html.Span("→ then asked again: "),
                        dcc.Link(
                            html.Code(p["rephrase_id"]),
                            href=state.href(f"/records/{p['rephrase_id']}"),
                        ),
                        html.Span(" "),
                        text_block(p["rephrase"]),
                    ],
                    className="pair-rephrase",
                ),
            ],
            className="rephrase-pair",
        )
        for p in pairs
    ]
    return card(
        html.P(
            "The next turn of the same session (or user) asked the same question in other "
            "words: the answer did not help."
        ),
        html.Ul(items, className="rephrase-pairs", id="cluster-rephrases"),
        title="Answers users rephrased",
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


def _feedback_filter(state: ViewState, down_first: bool) -> html.Div:
    default = (
        "thumbs-down first, then examples, then newest"
        if down_first
        else "examples first, then newest"
    )
    return html.Div(
        [
            html.Label("Show", className="control-label"),
            dcc.RadioItems(
                id={"type": "view", "key": "feedback"},
                options=[{"label": default, "value": ""}]
                + [{"label": v, "value": k} for k, v in FEEDBACK_LABELS.items()],
                value=state.feedback or "",
                inline=True,
                className="radio",
            ),
        ],
        className="control-group",
    )


def _records(records: list[ClusterRecord], state: ViewState) -> Any:
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
                            *[badge(t, "warn") for t in dict.fromkeys(r["feedback_tags"] or ())],
                        ],
                        className="record-head",
                    ),
                    html.Div([html.Div("Prompt", className="field-label"), text_block(r["text"])]),
                    html.Div(
                        [html.Div("Response", className="field-label"), text_block(r["response"])]
                    ),
                    html.Div(
                        [
                            html.Span("Their comment: ", className="muted"),
                            html.Q(r["comment"], className="feedback-comment"),
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


def _tool_failures(counts: dict[str, dict[str, int]]) -> Any:
    """How often the tool calls that followed this cluster's answers (in their agents' traces)
    failed, per window: a figure, not a test."""
    if not counts:
        return None
    lines = []
    for window in ("current", "baseline"):
        if window in counts:
            c = counts[window]
            lines.append(
                html.Li(
                    f"{window} window: {c['failed']:,} of {plural(c['tools'], 'call')} followed "
                    f"by a tool call saw a tool fail ({fmt_pct(c['failed'] / c['tools'])})",
                    className="tool-failures",
                )
            )
    return card(
        html.Ul(lines, className="plain-list", id="cluster-tool-failures"),
        html.P(
            "From the agents' traces: a tool step that failed after the call, in the same trace. "
            "A figure, not a tested finding.",
            className="muted",
        ),
        title="Tool calls after these answers",
    )
