"""The clusters page (``/clusters``): the run's 2-D map, coloured by what the analysis found,
and its clusters, most severe first (the report's findings order; sortable by drift, hotspot
lift, size and thumbs-down rate), what flagged each in words, filtered by time, endpoint,
model, template, feedback."""

from __future__ import annotations

from collections import Counter
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
    graph,
    no_records,
    no_run,
    page,
    plural,
    problems_banner,
    run_selector,
    run_warnings,
    summary_author,
    untested,
)
from llmscope.dashboard.data import findings
from llmscope.dashboard.data.cache import cached
from llmscope.dashboard.state import ViewState
from llmscope.report import ClusterEntry

# The heavy reads, memoised for a few seconds (see data/cache.py): re-renders are instant.
store_status = cached(data.store_status)
cluster_counts = cached(data.cluster_counts)
map_points = cached(data.map_points)
subcluster_members = cached(data.subcluster_members)
subcluster_counts = cached(data.subcluster_counts)
filter_options = cached(data.filter_options)

COLOR_LABELS = {
    "finding": "finding",
    "cluster": "cluster",
    "window": "window",
    "feedback": "feedback",
}
KEYWORDS_SHOWN = 5
DRIFT_TONES = {
    "new": "info",
    "grew": "warn",
    "shrank": "warn",
    "vanished": "warn",
    "stable": "neutral",
    "not tested": "neutral",
}


def render(engine: Engine, state: ViewState) -> html.Div:
    status = store_status(engine)
    if status.records == 0:
        return page("Clusters", no_records(database_flag(engine)))
    found = data.run_report(engine, state.run)
    if found is None:
        note = (
            html.Div(f"No analysis run {state.run!r}.", className="notice notice-warn")
            if state.run
            else None
        )
        return page(
            "Clusters",
            *[n for n in (note, no_run(status.records, database_flag(engine))) if n is not None],
        )
    run, report = found
    runs = data.list_runs(engine)
    filters = data.Filters.from_state(state)
    counts = cluster_counts(engine, run.id, filters)
    total = sum(counts.values())
    points = map_points(engine, run.id, filters, total=total)
    clusters = data.nested_clusters(report, state.sort)
    titles = {
        c.id: (c.summary.title if c.summary else "") or ", ".join(c.keywords[:3])
        for c in report.clusters
    }
    parents = {c.id: c.parent for c in report.clusters if c.parent is not None}
    members = subcluster_members(engine, run.id) if parents else {}
    subs = len(parents)

    color = html.Div(
        [
            html.Label("Colour by", className="control-label"),
            dcc.RadioItems(
                id={"type": "view", "key": "color"},
                options=[{"label": v, "value": k} for k, v in COLOR_LABELS.items()],
                value=state.color,
                inline=True,
                className="radio",
            ),
        ],
        className="control-group",
    )
    if points.sampled:
        caption = (
            f"Showing {len(points.points):,} of {points.total:,} matching records "
            f"(every {points.stride}th record by id): the map is "
            "sampled above 20,000 points."
        )
    else:
        caption = f"Showing all {points.total:,} matching records."
    map_section = card(
        graph(
            charts.cluster_map(
                points.points,
                state.color,
                titles,
                members,
                parents,
                ranked=[c.id for c in data.sorted_clusters(report)],
                flagged={c.id for c in report.clusters if findings.flag_words(c)},
            ),
            "cluster-map",
            height=520,
        )
        if points.points
        else html.P("No records match these filters.", className="muted"),
        html.P(
            [
                caption,
                " Coloured by finding: flagged clusters in colour (the most severe on top), the "
                "rest grey."
                if state.color == "finding"
                else "",
                " Hover a point to read it; click it to open the record.",
            ],
            className="footnote",
            id="map-caption",
        ),
        title="Map of what people ask",
    )
    return page(
        "Clusters",
        *[
            c
            for c in (
                problems_banner(state),
                run_warnings(report.warnings),
                filter_bar(state, filter_options(engine), extra=[color]),
                map_section,
                card(
                    _summary_sources(report.clusters),
                    _table(
                        clusters,
                        {**counts, **subcluster_counts(engine, run.id, filters)}
                        if _is_filtered(filters) and members
                        else counts,
                        state,
                        filtered=_is_filtered(filters),
                    ),
                    title=plural(len(clusters) - subs, "cluster")
                    + (f", {plural(subs, 'sub-cluster')} nested under them" if subs else ""),
                    className="table-card",
                ),
            )
            if c is not None
        ],
        actions=run_selector(runs, state.run),
        subtitle=f"Run {run.id} · baseline {fmt_time(run.baseline_start)} → "
        f"{fmt_time(run.baseline_end)} · current {fmt_time(run.current_start)} → "
        f"{fmt_time(run.current_end)}",
    )


def _summary_sources(clusters: list[ClusterEntry]) -> html.P:
    """Who wrote the summaries, said once for the run rather than on every row."""
    authors = Counter(
        summary_author(c.summary.generated_by if c.summary else None) for c in clusters
    )
    said = "; ".join(f"{author} for {plural(n, 'cluster')}" for author, n in authors.most_common())
    return html.P(
        f"Summaries by {said}.", className="footnote summary-source", id="summary-sources"
    )


def _is_filtered(filters: data.Filters) -> bool:
    return any(
        (
            filters.since,
            filters.until,
            filters.endpoint,
            filters.model,
            filters.template,
            filters.feedback,
        )
    )


def _sort_header(label: str, key: str, state: ViewState, *, numeric: bool = True) -> html.Th:
    active = state.sort == key
    return html.Th(
        dcc.Link(
            f"{label} {'▼' if active else ''}".strip(),
            href=state.href("/clusters", sort=key),
            className="sort-link active" if active else "sort-link",
        ),
        className="num sortable" if numeric else "sortable",
    )


# The table is most of the page's components, and Dash's renderer (4.x) runs every mounted
# component's selector for each component it mounts: the first render grows with their square.
# So a cell is one element where it can be: a figure and its muted detail are two lines of one
# cell (``two-line`` in style.css), plain text needs no span. A third fewer components here
# halved the renderer's time on the demo's 37 rows (benchmarks/dashboard.py).
def _table(
    clusters: list[tuple[ClusterEntry, int]],
    counts: dict[int, int],
    state: ViewState,
    *,
    filtered: bool,
) -> Any:
    if not clusters:
        return html.P(
            "This run found no clusters (too few records, or all noise).", className="muted"
        )
    head = [
        html.Th("cluster"),
        _sort_header("flags", "severity", state, numeric=False),
        html.Th("keywords"),
        _sort_header("size", "size", state),
        *([html.Th("in filter", className="num")] if filtered else []),
        html.Th("share baseline → current", className="num"),
        _sort_header("drift", "drift", state),
        _sort_header("hotspot lift", "hotspot", state),
        _sort_header("thumbs-down", "down_rate", state),
    ]
    rows = []
    for c, depth in clusters:
        drift, hotspot, fb = c.drift, c.hotspot, c.feedback
        kind = "Sub-cluster" if c.parent is not None else "Cluster"
        title = (c.summary.title if c.summary else "") or f"{kind} {c.id}"
        words = findings.flag_words(c)
        rows.append(
            html.Tr(
                [
                    html.Td(
                        [
                            html.Span(
                                f"↳ sub-cluster of #{c.parent}",
                                className="subcluster-of muted small",
                            )
                            if c.parent is not None
                            else None,
                            dcc.Link(
                                f"#{c.id} {title}",
                                href=state.href(
                                    f"/clusters/{c.id}", sort="severity", color="finding"
                                ),
                                className="cluster-link",
                            ),
                        ],
                        style={"paddingLeft": f"{1.5 * depth:.1f}em"} if depth else None,
                    ),
                    html.Td([badge(w, "bad") for w in words], className="flags")
                    if words
                    else html.Td("not flagged", className="flags muted small"),
                    html.Td(", ".join(c.keywords[:KEYWORDS_SHOWN]), className="keywords"),
                    html.Td(fmt_int(c.size), className="num"),
                    *([html.Td(fmt_int(counts.get(c.id, 0)), className="num")] if filtered else []),
                    html.Td(
                        f"{fmt_pct(c.baseline_share)} → {fmt_pct(c.current_share)}",
                        className="num",
                    ),
                    html.Td(
                        [
                            badge(
                                drift.kind,
                                "bad" if drift.flagged else DRIFT_TONES.get(drift.kind, "neutral"),
                            ),
                            f" {fmt_num(drift.score, 2)}\nq={fmt_p(drift.q_value)}",
                        ],
                        className="num two-line",
                    ),
                    html.Td(
                        f"×{fmt_num(hotspot.lift, 2)}\nq={fmt_p(hotspot.q_value)}",
                        className="num two-line",
                    )
                    if untested(c) is None
                    else html.Td(NOT_ENOUGH_RATINGS, className="num muted small"),
                    html.Td(
                        f"{fmt_pct(fb.down_rate)}\n{fmt_int(fb.down)}/{fmt_int(fb.rated)} rated",
                        className="num two-line",
                    )
                    if fb.rated
                    else html.Td(NOT_ENOUGH_RATINGS, className="num muted small"),
                ],
                className=" ".join(
                    (["subcluster-row"] if c.parent is not None else [])
                    + (["flagged"] if words else [])
                ),
            )
        )
    noise = counts.get(-1)
    foot = html.P(
        f"Noise (records in no cluster): {fmt_int(noise)} matching records."
        if noise is not None
        else "",
        className="footnote",
    )
    return html.Div(
        [
            html.Table(
                [html.Thead(html.Tr(head)), html.Tbody(rows)],
                className="table clusters-table",
                id="clusters-table",
            ),
            foot,
        ]
    )
