"""Sub-clusters on a cluster's page: the breadcrumb up to the cluster of the cut, and the list
of flagged sub-clusters below it.

The report lists a flagged Ward-tree node below the cut as an entry with a ``parent`` (see
``llmscope.report``); these parts only place it. The page's figures, members and examples are
the sub-cluster's own, read by ``pages/cluster.py`` like any cluster's.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from llmscope.dashboard.components import badge, card, fmt_int, fmt_pct
from llmscope.dashboard.state import ViewState
from llmscope.report import ClusterEntry, RunReport


def kind_of(c: ClusterEntry) -> str:
    return "Sub-cluster" if c.parent is not None else "Cluster"


def title_of(c: ClusterEntry) -> str:
    return (c.summary.title if c.summary else "") or f"{kind_of(c)} {c.id}"


def flags(c: ClusterEntry) -> list[Any]:
    """Badges for what flagged the entry (drift kind, hotspot kind); "not flagged" else."""
    out: list[Any] = []
    if c.drift.flagged:
        out.append(badge(f"drift: {c.drift.kind}", "bad"))
    if c.hotspot.flagged:
        out.append(badge(f"hotspot{': ' + c.hotspot.kind if c.hotspot.kind else ''}", "bad"))
    return out or [badge("not flagged", "neutral")]


def breadcrumb(report: RunReport, cluster: ClusterEntry, state: ViewState) -> html.Nav | None:
    """All clusters › the cluster of the cut › … › this sub-cluster; None for a cluster."""
    if cluster.parent is None:
        return None
    parts: list[Any] = [dcc.Link("All clusters", href=state.href("/clusters"))]
    for above in report.lineage(cluster.id):
        parts += [
            html.Span(" › ", className="muted"),
            dcc.Link(
                f"#{above.id} {title_of(above)}",
                href=state.href(f"/clusters/{above.id}"),
                className="breadcrumb-parent",
            ),
        ]
    parts += [html.Span(" › ", className="muted"), html.Span(f"#{cluster.id} {title_of(cluster)}")]
    return html.Nav(parts, className="breadcrumb", id="breadcrumb")


def children_card(
    report: RunReport, cluster: ClusterEntry, state: ViewState
) -> html.Section | None:
    """The flagged sub-clusters directly below ``cluster``, with links; None when it has none."""
    children = report.children(cluster.id)
    if not children:
        return None
    rows = [
        html.Tr(
            [
                html.Td(
                    dcc.Link(
                        [html.Span(f"#{c.id} ", className="muted"), title_of(c)],
                        href=state.href(f"/clusters/{c.id}"),
                        className="cluster-link",
                    )
                ),
                html.Td(", ".join(c.keywords[:5]), className="keywords"),
                html.Td(fmt_int(c.size), className="num"),
                html.Td(fmt_pct(c.size / cluster.size) if cluster.size else "–", className="num"),
                html.Td(
                    f"{fmt_pct(c.feedback.down_rate)} ({fmt_int(c.feedback.down)}/"
                    f"{fmt_int(c.feedback.rated)})",
                    className="num",
                ),
                html.Td(flags(c)),
            ]
        )
        for c in children
    ]
    head = ("sub-cluster", "keywords", "size", "of this", "thumbs-down", "flags")
    return card(
        html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)],
            className="table",
            id="subclusters",
        ),
        html.P(
            "Parts of this cluster that a test on the clustering tree flagged on their own "
            "(drift or thumbs-down), which the whole cluster can dilute.",
            className="footnote",
        ),
        title=f"Flagged sub-clusters ({len(children)})",
    )
