"""Plotly figures drawn from what the read queries return (no numbers are made here).

Hover text is HTML-escaped: Plotly renders a few tags in hover labels, and record text must be
shown as typed.
"""

from __future__ import annotations

import html as htmllib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go

from llmscope.report import deepest_subcluster

PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#EECA3B",
    "#BAB0AC",
)
NOISE = "#C9CED6"
# Rings around a sub-cluster's points: dark, so they read on every colouring of the map.
SUBCLUSTER_COLORS = ("#111827", "#7C3AED", "#B91C1C", "#047857")
WINDOW_COLORS = {"baseline": "#8DA0CB", "current": "#F58518"}
FEEDBACK_COLORS = {"down": "#D62728", "up": "#2CA02C", None: "#C9CED6"}
FEEDBACK_NAMES = {"down": "thumbs-down", "up": "thumbs-up", None: "unrated"}


def _layout(fig: go.Figure, title: str | None = None, **extra: Any) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0, "font": {"size": 14}} if title else None,
        margin={"l": 48, "r": 12, "t": 36 if title else 12, "b": 36},
        legend={"orientation": "h", "y": -0.18, "x": 0},
        hovermode="x unified",
        font={"family": "Inter, system-ui, sans-serif", "size": 12},
        **extra,
    )
    return fig


WIDTHS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


def time_axis(fig: go.Figure, buckets: list[datetime | str], unit: str) -> go.Figure:
    """A time axis that reads on any span: ticks on whole days (hours) labelled as such, and a
    lone bucket in the middle of a range one bucket wide on each side (Plotly's own range
    around one point is a millisecond: ticks like 23:59:59.999)."""
    width = WIDTHS[unit]
    distinct = sorted(
        {b if isinstance(b, datetime) else datetime.fromisoformat(b) for b in buckets}
    )
    axis: dict[str, Any] = {
        "type": "date",
        "tickformat": "%b %d" if unit == "day" else "%H:%M<br>%b %d",
    }
    if unit == "day" and len(distinct) <= 10:
        axis["dtick"] = 86_400_000  # one tick a day: no half-day ticks repeating a date
    if len(distinct) == 1:
        axis["range"] = [distinct[0] - width, distinct[0] + width]
    fig.update_xaxes(**axis)
    return fig


def partial(bucket: datetime, unit: str, span: tuple[datetime, datetime] | None) -> bool:
    """Does ``bucket`` cover only part of its day (hour) of ``span``, the time the data covers
    (the first and last day of a window that starts or ends mid-day)?"""
    if span is None:
        return False
    return bucket < span[0] or bucket + WIDTHS[unit] > span[1]


def _series(rows: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["group"]].append(row)
    return grouped


def _name(group: Any) -> str:
    return "all" if group is None else str(group)


def traffic_figures(
    rows: list[dict[str, Any]],
    split: bool,
    unit: str = "day",
    span: tuple[datetime, datetime] | None = None,
) -> dict[str, go.Figure]:
    """Calls, thumbs-down rate, latency p50/p95 and tokens over time, one line per group.

    Buckets only partly inside ``span`` (a first or last day that starts or ends mid-day) are
    drawn as open markers (faded bars) and say so on hover, so fewer calls there do not read
    as a traffic drop."""
    calls, down, latency, tokens = go.Figure(), go.Figure(), go.Figure(), go.Figure()
    for i, (group, series) in enumerate(_series(rows).items()):
        color = PALETTE[i % len(PALETTE)]
        x = [r["bucket"] for r in series]
        cut = [partial(b, unit, span) for b in x]
        symbols = ["circle-open" if c else "circle" for c in cut]
        note = [f" (partial {unit})" if c else "" for c in cut]
        name = _name(group) if split else "calls"
        calls.add_trace(
            go.Scatter(
                x=x,
                y=[r["calls"] for r in series],
                name=name,
                line={"color": color},
                marker={"symbol": symbols, "size": 8},
                customdata=note,
                hovertemplate="%{y:,}%{customdata}",
                mode="lines+markers",
            )
        )
        rated = [r for r in series if r["rated"]]
        down.add_trace(
            go.Scatter(
                x=[r["bucket"] for r in rated],
                y=[r["down"] / r["rated"] for r in rated],
                customdata=[[r["down"], r["rated"]] for r in rated],
                hovertemplate="%{y:.0%} (%{customdata[0]:,} of %{customdata[1]:,} rated)",
                name=_name(group) if split else "thumbs-down rate",
                line={"color": color},
                mode="lines+markers",
                marker={"size": 4},
            )
        )
        for label, key, dash in (("p50", "p50", "solid"), ("p95", "p95", "dot")):
            latency.add_trace(
                go.Scatter(
                    x=x,
                    y=[r[key] for r in series],
                    name=f"{_name(group)} {label}" if split else label,
                    line={
                        "color": color if split else PALETTE[0 if key == "p50" else 3],
                        "dash": dash,
                    },
                    mode="lines+markers",
                )
            )
        if split:
            tokens.add_trace(
                go.Scatter(
                    x=x,
                    y=[r["input_tokens"] + r["output_tokens"] for r in series],
                    name=_name(group),
                    line={"color": color},
                    marker={"symbol": symbols, "size": 8},
                    mode="lines+markers",
                )
            )
        else:
            faded = [0.45 if c else 1.0 for c in cut]
            for j, (key, label) in enumerate(
                (("input_tokens", "input"), ("output_tokens", "output"))
            ):
                tokens.add_trace(
                    go.Bar(
                        x=x,
                        y=[r[key] for r in series],
                        name=label,
                        marker={"color": PALETTE[j], "opacity": faded},
                        customdata=note,
                        hovertemplate="%{y:,}%{customdata}",
                    )
                )
    buckets = [r["bucket"] for r in rows]
    _layout(calls, "Calls", yaxis={"rangemode": "tozero"})
    _layout(
        down,
        "Thumbs-down rate (of rated calls)",
        yaxis={"tickformat": ".0%", "rangemode": "tozero"},
    )
    _layout(latency, "Latency p50 / p95 (ms)", yaxis={"rangemode": "tozero"})
    _layout(tokens, "Tokens" + (" (input + output)" if split else ""), barmode="stack")
    figures = {"calls": calls, "down": down, "latency": latency, "tokens": tokens}
    for figure in figures.values():
        time_axis(figure, buckets, unit)
    return figures


def down_rate_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """A cluster's thumbs-down rate per day (of its rated calls), one series per window; days
    without a rating are left out (no rate to draw)."""
    fig = go.Figure()
    for window in ("baseline", "current"):
        series = [r for r in rows if r["window"] == window and r["rated"]]
        if not series:
            continue
        fig.add_trace(
            go.Scatter(
                x=[r["bucket"] for r in series],
                y=[r["down"] / r["rated"] for r in series],
                customdata=[[r["down"], r["rated"]] for r in series],
                hovertemplate="%{y:.0%} (%{customdata[0]:,} of %{customdata[1]:,} rated)",
                name=window,
                mode="lines+markers",
                line={"color": WINDOW_COLORS[window]},
            )
        )
    _layout(fig, None, yaxis={"tickformat": ".0%", "range": [0, 1.05]})
    return time_axis(fig, [r["bucket"] for r in rows if r["rated"]], "day")


OTHER = "other"  # the grey group of clusters without a colour of their own
COLOURED = len(PALETTE) - 1  # one palette colour stays free: at most 10 colours with the grey
FEEDBACK_ORDER = {None: 0, "up": 1, "down": 2}  # thumbs-down drawn last: on top


# Up to this many points the map is SVG, above it WebGL. Creating a WebGL context and compiling
# its shaders costs a fixed few hundred milliseconds (most of a second where Chromium draws
# without a GPU), which SVG does not pay; SVG's cost grows with the points instead, and 20,000
# of them took about twice as long to draw as in WebGL (benchmarks/dashboard.py).
SVG_POINTS = 5_000
COORDINATE_DIGITS = 4  # a map coordinate's decimals: finer than a pixel, and a smaller page


def _label(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cluster_map(
    points: list[dict[str, Any]],
    color: str,
    titles: dict[int, str],
    subclusters: dict[int, list[str]] | None = None,
    parents: dict[int, int] | None = None,
    ranked: list[int] | None = None,
    flagged: set[int] | None = None,
) -> dict[str, Any]:
    """The 2-D map as one trace per colour group, SVG up to ``SVG_POINTS`` points and WebGL
    above (a plain dict: 20k points need no validation pass).

    ``ranked`` lists the clusters most severe first (the report's findings order) and
    ``flagged`` the ones a finding names. Coloured by ``finding``, the first flagged ones get
    a colour each and every other cluster is grey; by ``cluster``, the first clusters of
    ``ranked`` do: never more than ten colours. The bad and the new are drawn last, on top:
    the most severe cluster, the current window, the thumbs-down. The legend sits outside the
    plot, to its right.

    ``subclusters`` (sub-cluster id -> its record ids) and ``parents`` (sub-cluster id -> the
    entry above it) add one trace per sub-cluster on top: its drawn points again as open
    rings named "sub-cluster N of M", so they stand out while the parent's trace still
    covers them (a legend click hides either)."""
    subclusters, parents = subclusters or {}, parents or {}
    held = deepest_subcluster(parents, subclusters) if subclusters else {}
    ranked = ranked if ranked is not None else sorted(titles)
    chosen = [c for c in ranked if color != "finding" or c in (flagged or set())][:COLOURED]
    rank = {c: i for i, c in enumerate(chosen)}
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        if color in ("cluster", "finding"):
            key = p["cluster_id"] if p["cluster_id"] in rank else OTHER
        else:
            key = p["window"] if color == "window" else p["thumb"]
        groups[key].append(p)

    def order(key: Any) -> tuple[int, str]:
        if color in ("cluster", "finding"):  # grey first, the most severe last (on top)
            return (-len(rank) - 1, "") if key == OTHER else (-rank[key], "")
        if color == "feedback":
            return (FEEDBACK_ORDER.get(key, 0), str(key))
        return (0, str(key))  # baseline, then current

    kind = "scatter" if len(points) <= SVG_POINTS else "scattergl"
    traces = []
    for key in sorted(groups, key=order):
        pts = groups[key]
        legendrank = 1000
        if color in ("cluster", "finding"):
            if key == OTHER:
                name = "not flagged" if color == "finding" else "other clusters"
                marker_color = NOISE
            else:
                name, marker_color = _label(f"{key}: {titles.get(key, '')}"), PALETTE[rank[key]]
                legendrank = rank[key]
        elif color == "window":
            name, marker_color = str(key), WINDOW_COLORS.get(key, NOISE)
        else:
            name, marker_color = FEEDBACK_NAMES.get(key, str(key)), FEEDBACK_COLORS.get(key, NOISE)
        traces.append(
            {
                "type": kind,
                "mode": "markers",
                "name": name,
                "legendrank": legendrank,
                "x": [round(p["x"], COORDINATE_DIGITS) for p in pts],
                "y": [round(p["y"], COORDINATE_DIGITS) for p in pts],
                "customdata": [p["record_id"] for p in pts],
                "text": [_hover(p, held.get(p["record_id"])) for p in pts],
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {
                    "size": 5,
                    "color": marker_color,
                    "opacity": 0.45 if marker_color == NOISE else 0.8,
                },
            }
        )
    for sub in sorted(subclusters):
        ids = set(subclusters[sub])
        pts = [p for p in points if p["record_id"] in ids]
        if not pts:
            continue
        traces.append(
            {
                "type": kind,
                "mode": "markers",
                "name": _label(
                    f"sub-cluster {sub} of {parents.get(sub, '?')}: {titles.get(sub, '')}", 48
                ),
                "legendrank": 999,
                "x": [round(p["x"], COORDINATE_DIGITS) for p in pts],
                "y": [round(p["y"], COORDINATE_DIGITS) for p in pts],
                "customdata": [p["record_id"] for p in pts],
                "text": [_hover(p, held.get(p["record_id"])) for p in pts],
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {
                    "size": 9,
                    "symbol": "circle-open",
                    "color": SUBCLUSTER_COLORS[sub % len(SUBCLUSTER_COLORS)],
                    "line": {"width": 1.5},
                },
            }
        )
    return {
        "data": traces,
        "layout": {
            "template": "plotly_white",
            "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            # Outside the plot, to its right: the points keep the whole plot area.
            "legend": {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
            "hovermode": "closest",
            "dragmode": "pan",
            "uirevision": color,
        },
    }


def _hover(point: dict[str, Any], subcluster: int | None = None) -> str:
    cluster = "noise" if point["cluster_id"] == -1 else f"cluster {point['cluster_id']}"
    if subcluster is not None:
        cluster += f" › sub-cluster {subcluster}"
    thumb = point["thumb"] or "unrated"
    return (
        f"<b>{htmllib.escape(point['record_id'])}</b> · {cluster} · {point['window']} · {thumb}"
        f"<br>{htmllib.escape(point['text'])}"
    )


def share_figure(rows: list[dict[str, Any]], baseline_share: Any, current_share: Any) -> go.Figure:
    """The cluster's share of each day's analysed records, by window, with the report's
    per-window shares as reference lines."""
    fig = go.Figure()
    for window in ("baseline", "current"):
        series = [r for r in rows if r["window"] == window]
        fig.add_trace(
            go.Bar(
                x=[r["day"] for r in series],
                y=[r["n"] / r["total"] if r["total"] else 0 for r in series],
                customdata=[[r["n"], r["total"]] for r in series],
                hovertemplate="%{y:.1%} (%{customdata[0]} of %{customdata[1]})",
                name=f"{window} (daily share)",
                marker_color=WINDOW_COLORS[window],
            )
        )
    for window, value in (("baseline", baseline_share), ("current", current_share)):
        if value is not None:
            fig.add_hline(
                y=float(value),
                line_dash="dot",
                line_color=WINDOW_COLORS[window],
                annotation_text=f"{window} share {float(value):.1%}",
                annotation_position="top left",
            )
    _layout(fig, None, yaxis={"tickformat": ".0%", "rangemode": "tozero"})
    return time_axis(fig, [r["day"] for r in rows], "day")


def distribution_figure(
    values: dict[str, dict[str, list[float]]], key: str, title: str
) -> go.Figure:
    """One metric's distribution in each window, side by side on one axis (each window's
    calls as a percentage of that window, so a busier window does not look larger)."""
    fig = go.Figure()
    for window in ("baseline", "current"):
        found = values.get(window, {}).get(key, [])
        if not found:
            continue
        fig.add_trace(
            go.Histogram(
                x=found,
                name=f"{window} ({len(found):,} calls)",
                marker_color=WINDOW_COLORS[window],
                opacity=0.7,
                nbinsx=30,
                histnorm="percent",
            )
        )
    _layout(fig, title, barmode="group", yaxis={"ticksuffix": "%"})
    fig.update_layout(hovermode="closest")
    return fig


def fail_rate_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """Each evaluator's fail rate per day (of the records' time), one line per evaluator."""
    fig = go.Figure()
    by_evaluator: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_evaluator[row["evaluator"]].append(row)
    for i, (name, series) in enumerate(sorted(by_evaluator.items())):
        fig.add_trace(
            go.Scatter(
                x=[r["bucket"] for r in series],
                y=[r["fail_rate"] for r in series],
                customdata=[[r["failed"], r["evaluated"]] for r in series],
                hovertemplate="%{y:.1%} (%{customdata[0]} of %{customdata[1]})",
                mode="lines+markers",
                name=htmllib.escape(name),
                line_color=PALETTE[i % len(PALETTE)],
            )
        )
    _layout(fig, "Evaluator fail rate", yaxis={"tickformat": ".0%", "rangemode": "tozero"})
    return time_axis(fig, [r["bucket"] for r in rows], "day")


def warm_up() -> None:
    """Build and serialise one small figure of every kind, so the first page a person opens
    does not pay for Plotly's lazy imports, validators and template (about a second, cold)."""
    from plotly.io import to_json

    day = datetime(2000, 1, 1)
    row = {
        "bucket": day, "group": None, "calls": 1, "rated": 1, "down": 0, "p50": 1.0,
        "p95": 1.0, "input_tokens": 1, "output_tokens": 1,
    }  # fmt: skip
    figures: list[Any] = list(traffic_figures([row], split=False).values())
    figures += traffic_figures([row], split=True).values()
    figures.append(down_rate_figure([{**row, "window": "baseline"}]))
    figures.append(share_figure([{"day": day, "window": "current", "n": 1, "total": 1}], 0.5, 0.5))
    figures.append(distribution_figure({"current": {"latency_ms": [1.0]}}, "latency_ms", "t"))
    figures.append(fail_rate_figure([{**row, "evaluator": "e", "fail_rate": 0.0, "failed": 0,
                                      "evaluated": 1}]))  # fmt: skip
    for figure in figures:
        to_json(figure)
