"""The Dash app without a browser: pages rendered from seeded stores, the URL-state callbacks
through Dash's real HTTP endpoint, the CSV export, the empty states and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from dash import Dash, dcc, html
from dash.development.base_component import Component
from flask.testing import FlaskClient
from sqlalchemy import Engine

from llmscope.config import Settings
from llmscope.dashboard import charts
from llmscope.dashboard.app import (
    create_app,
    merge_query,
    point_record,
    render_path,
    triggered_changes,
)
from llmscope.dashboard.state import parse
from tests.dashboard.seed import XSS_PROMPT, XSS_RECORD_ID, SeededStore, seed_store
from tests.dashboard.topics import TOPICS


def walk(node: Any) -> Iterator[Any]:
    """Every component and string in a layout."""
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
    elif isinstance(node, Component):
        yield node
        yield from walk(getattr(node, "children", None))
    elif isinstance(node, str | int | float):
        yield str(node)


def text_of(node: Any) -> str:
    return " ".join(n for n in walk(node) if isinstance(n, str))


def by_id(node: Any, component_id: Any) -> Any:
    return next(
        c for c in walk(node) if isinstance(c, Component) and getattr(c, "id", None) == component_id
    )


@pytest.fixture
def seeded(engine: Engine) -> SeededStore:
    return seed_store(engine, records=200)


@pytest.fixture
def app(settings: Settings) -> Iterator[Dash]:
    app = create_app(settings)
    yield app
    app.server.config["LLMSCOPE_ENGINE"].dispose()


@pytest.fixture
def client(app: Dash) -> FlaskClient:
    return app.server.test_client()


def test_overview_shows_the_run_its_alerts_and_the_traffic(
    engine: Engine, seeded: SeededStore
) -> None:
    layout = render_path(engine, "/", "")
    text = text_of(layout)
    assert "Analysis run shown" in text and seeded.run_id in text
    assert f"{len(seeded.record_ids):,} records" in text
    assert "New cluster: CSV export failures after the update" in text
    for chart in ("chart-calls", "chart-down", "chart-latency", "chart-tokens"):
        figure = by_id(layout, chart).figure
        assert len(figure.data) >= 1
    calls = by_id(layout, "chart-calls").figure.data[0]
    assert sum(calls.y) == len(seeded.record_ids)
    assert "By endpoint" in text and "By template version" in text


def test_overview_split_by_model_draws_a_line_per_model(
    engine: Engine, seeded: SeededStore
) -> None:
    layout = render_path(engine, "/", "?by=model")
    names = {trace.name for trace in by_id(layout, "chart-calls").figure.data}
    assert names == {"gpt-4o", "gpt-4o-mini"}


def test_clusters_page_table_sorted_and_map_coloured(engine: Engine, seeded: SeededStore) -> None:
    layout = render_path(engine, "/clusters", "?sort=size&color=window")
    table = by_id(layout, "clusters-table")
    links = [c for c in walk(table) if isinstance(c, dcc.Link) and "/clusters/" in c.href]
    ids = [int(link.href.split("/clusters/")[1].split("?")[0]) for link in links]
    # The clusters of the cut by size, each followed by its sub-clusters (here one chain).
    report = seeded.report
    expected: list[int] = []
    for top in sorted((c for c in report.clusters if c.parent is None), key=lambda c: -c.size):
        expected.append(top.id)
        while children := report.children(expected[-1]):
            expected.append(children[0].id)
    assert ids == expected and len(ids) == len(report.clusters)
    refund, slow, today = 1, len(TOPICS), len(TOPICS) + 1
    assert ids.index(slow) == ids.index(refund) + 1 and ids.index(today) == ids.index(slow) + 1
    figure = by_id(layout, "cluster-map").figure
    names = [t["name"] for t in figure["data"]]
    assert set(names[:2]) == {"baseline", "current"}
    assert names[2].startswith(f"sub-cluster {slow} of {refund}: Refunds slow")
    assert names[3].startswith(f"sub-cluster {today} of {slow}: Refund delays")
    assert all(t["type"] == "scatter" for t in figure["data"])  # SVG: a few hundred points
    assert sum(len(t["x"]) for t in figure["data"][:2]) == len(seeded.record_ids)
    # A sub-cluster's trace draws its members again, as rings, over the parent's points.
    assert sorted(figure["data"][2]["customdata"]) == sorted(seeded.subclusters[slow])
    assert figure["data"][2]["marker"]["symbol"] == "circle-open"
    assert "Showing all" in text_of(by_id(layout, "map-caption"))


def test_clusters_filters_narrow_the_map(engine: Engine, seeded: SeededStore) -> None:
    layout = render_path(engine, "/clusters", "?feedback=down&color=feedback")
    figure = by_id(layout, "cluster-map").figure
    main = [t for t in figure["data"] if not t["name"].startswith("sub-cluster ")]
    assert [t["name"] for t in main] == ["thumbs-down"]
    rings = [t for t in figure["data"] if t["name"].startswith("sub-cluster ")]
    assert rings and all(set(t["customdata"]) <= set(main[0]["customdata"]) for t in rings)
    assert "in filter" in text_of(layout)


def test_cluster_page_says_who_wrote_the_summary(engine: Engine, seeded: SeededStore) -> None:
    problem = render_path(engine, f"/clusters/{seeded.problem_cluster}", "")
    assert text_of(by_id(problem, "summary-author")) == "LLM (gpt-4o-mini)"
    text = text_of(problem)
    assert "CSV export failures after the update" in text
    assert "Roll back to support@2" in text
    cluster = next(c for c in seeded.report.clusters if c.id == seeded.problem_cluster)
    fb = cluster.feedback
    assert f"{fb.down} down of {fb.rated} rated" in text
    assert "support@3" in text
    extractive = render_path(engine, "/clusters/0", "")
    assert text_of(by_id(extractive, "summary-author")).startswith("extractive")
    missing = render_path(engine, "/clusters/99", "")
    assert "has no cluster 99" in text_of(missing)


def test_record_text_is_a_plain_string_child_never_html(
    engine: Engine, seeded: SeededStore
) -> None:
    layout = render_path(engine, f"/records/{XSS_RECORD_ID}", "")
    pres = [c for c in walk(layout) if isinstance(c, html.Pre) and c.children == XSS_PROMPT]
    assert pres, "the prompt is shown verbatim in a <pre>"
    serialized = json.dumps(layout.to_plotly_json(), default=lambda o: o.to_plotly_json())
    assert "dangerously_allow_html" not in serialized
    assert not any(isinstance(c, dcc.Markdown) for c in walk(layout))
    history = by_id(layout, "feedback-history")
    assert "counts" in text_of(history) and "<i>still</i> broken" in text_of(history)


def test_empty_store_tells_how_to_send_a_record(engine: Engine) -> None:
    for path in ("/", "/clusters"):
        text = text_of(render_path(engine, path, ""))
        assert "No records yet" in text and "llmscope serve" in text


def test_records_without_a_run_say_to_run_analyze(engine: Engine) -> None:
    seed_store(engine, records=30, with_run=False)
    for path in ("/", "/clusters", "/clusters/1"):
        text = text_of(render_path(engine, path, ""))
        assert "No analysis run yet" in text and "llmscope analyze" in text
    # The overview still shows the traffic.
    assert "Thumbs-down rate" in text_of(render_path(engine, "/", ""))


def test_bad_link_parameters_are_named_and_ignored(engine: Engine, seeded: SeededStore) -> None:
    text = text_of(render_path(engine, "/clusters", "?color=purple&sort=size"))
    assert "color='purple' is not one of finding, cluster, window, feedback" in text
    assert "Page not found" in text_of(render_path(engine, "/nowhere", ""))


def test_view_state_round_trips_through_the_query_string() -> None:
    state = parse("?run=r1&from=2026-11-01&endpoint=a%26b&color=feedback")
    assert (state.run, state.start, state.endpoint, state.color) == (
        "r1",
        "2026-11-01",
        "a&b",
        "feedback",
    )
    assert parse(state.query()) == state
    assert (
        state.href("/clusters", color="finding")
        == "/clusters?run=r1&from=2026-11-01&endpoint=a%26b"
    )


def test_merge_query_applies_changes_and_drops_defaults() -> None:
    assert merge_query("?sort=size", {"color": "feedback"}) == "?color=feedback&sort=size"
    assert merge_query("?color=feedback", {"color": "finding"}) == ""
    assert merge_query("?endpoint=a", {"endpoint": None, "start": "2026-11-02T00:00:00"}) == (
        "?from=2026-11-02"
    )
    fired = {
        '{"key":"color","type":"view"}.value': {},
        '{"key":"time","type":"view-range"}.end_date': {},
    }
    assert triggered_changes(fired, {"color": "window", "end": "2026-11-03", "model": "x"}) == {
        "color": "window",
        "end": "2026-11-03",
    }
    assert point_record({"points": [{"customdata": "rec-1"}]}) == "rec-1"
    assert point_record(None) is None


def _post_callback(client: FlaskClient, app: Dash, needle: str, body: dict[str, Any]) -> Any:
    output = next(k for k in app.callback_map if needle in k)
    answer = client.post("/_dash-update-component", json={"output": output, **body})
    assert answer.status_code == 200, answer.text
    return answer.get_json()["response"]


def test_router_callback_over_http(app: Dash, client: FlaskClient, seeded: SeededStore) -> None:
    assert client.get("/").status_code == 200  # the Dash index (sets the server up)
    response = _post_callback(
        client,
        app,
        "page.children",
        {
            "outputs": [
                {"id": "page", "property": "children"},
                {"id": "nav", "property": "children"},
            ],
            "inputs": [
                {"id": "url", "property": "pathname", "value": f"/records/{XSS_RECORD_ID}"},
                {"id": "url", "property": "search", "value": f"?run={seeded.run_id}"},
            ],
            "changedPropIds": ["url.pathname"],
            "state": [],
        },
    )
    assert json.dumps(XSS_PROMPT) in json.dumps(response["page"]["children"])
    assert f"/clusters?run={seeded.run_id}" in json.dumps(response["nav"]["children"])


def _layout_page(layout: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The props of the layout's ``url`` Location and the children of its ``page``."""
    found: dict[str, Any] = {}
    stack: list[Any] = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") in ("url", "page"):
                found[props["id"]] = props
            stack.append(props.get("children"))
    return found["url"], found["page"].get("children")


def test_the_first_page_comes_with_the_layout_not_a_callback(
    app: Dash, client: FlaskClient, seeded: SeededStore
) -> None:
    """The layout answer holds the page its request came from (its Referer), with the URL's
    parts as the browser has them, so no router callback runs on a first visit."""
    index = client.get("/clusters?color=window")
    assert index.headers["Referrer-Policy"] == "same-origin"  # the layout request names its page
    opened = "http://localhost/clusters?color=window"
    layout = client.get("/_dash-layout", headers={"Referer": opened}).get_json()
    url, page = _layout_page(layout)
    assert url == {**url, "pathname": "/clusters", "search": "?color=window", "hash": ""}
    assert url["href"] == opened
    assert "clusters-table" in json.dumps(page) and '"window"' in json.dumps(page)
    head = index.get_data(as_text=True).split("</head>", 1)[0]  # asked while the scripts load
    assert '<link rel="preload" href="/_dash-layout" as="fetch" crossorigin="anonymous">' in head
    router = next(d for d in client.get("/_dash-dependencies").get_json() if "page" in d["output"])
    assert router["prevent_initial_call"] is True

    # No Referer (or another site's): the shell alone; the Location's first report renders it.
    for headers in ({}, {"Referer": "http://elsewhere.example/clusters"}):
        url, page = _layout_page(client.get("/_dash-layout", headers=headers).get_json())
        assert page is None and "pathname" not in url


def test_the_map_is_svg_up_to_a_few_thousand_points_then_webgl() -> None:
    def points(n: int) -> list[dict[str, Any]]:
        return [
            {"record_id": f"r{i}", "cluster_id": 0, "window": "current", "x": i / 7, "y": -i / 3,
             "thumb": None, "text": ""}
            for i in range(n)
        ]  # fmt: skip

    few = charts.cluster_map(points(charts.SVG_POINTS), "window", {0: "t"})
    assert {t["type"] for t in few["data"]} == {"scatter"}
    assert few["data"][0]["x"][:3] == [0.0, 0.1429, 0.2857]  # four decimals: finer than a pixel
    many = charts.cluster_map(points(charts.SVG_POINTS + 1), "window", {0: "t"})
    assert {t["type"] for t in many["data"]} == {"scattergl"}


def test_control_change_rewrites_the_url_over_http(
    app: Dash, client: FlaskClient, seeded: SeededStore
) -> None:
    client.get("/")
    control = {"type": "view", "key": "color"}
    response = _post_callback(
        client,
        app,
        "url.search@",
        {
            "outputs": {"id": "url", "property": "search"},
            "inputs": [
                [{"id": control, "property": "value", "value": "feedback"}],
                [],
                [],
            ],
            "changedPropIds": ['{"key":"color","type":"view"}.value'],
            "state": [{"id": "url", "property": "search", "value": "?sort=size"}],
        },
    )
    assert response == {"url": {"search": "?color=feedback&sort=size"}}


def test_csv_export_of_a_cluster(client: FlaskClient, seeded: SeededStore) -> None:
    answer = client.get(f"/export/clusters/{seeded.problem_cluster}.csv?run={seeded.run_id}")
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert sorted(r["record_id"] for r in rows) == sorted(seeded.clusters[seeded.problem_cluster])
    xss = next(r for r in rows if r["record_id"] == XSS_RECORD_ID)
    assert xss["prompt"] == XSS_PROMPT and xss["feedback"] == "down"
    assert client.get(f"/export/clusters/99.csv?run={seeded.run_id}").status_code == 404
    assert client.get("/export/clusters/1.csv?run=nope").status_code == 404


def test_a_parent_lists_its_subclusters_and_a_subcluster_shows_its_own(
    engine: Engine, seeded: SeededStore
) -> None:
    slow, today = sorted(seeded.subclusters)
    parent = render_path(engine, "/clusters/1", "")
    listed = by_id(parent, "subclusters")
    links = [c.href for c in walk(listed) if isinstance(c, dcc.Link)]
    assert links == [f"/clusters/{slow}"]  # its direct sub-clusters only
    assert "hotspot: persistent" in text_of(listed)
    assert "Refunds slow to reach the card" in text_of(listed)

    page = render_path(engine, f"/clusters/{slow}", "?run=" + seeded.run_id)
    crumbs = by_id(page, "breadcrumb")
    hrefs = [c.href.split("?")[0] for c in walk(crumbs) if isinstance(c, dcc.Link)]
    assert hrefs == ["/clusters", "/clusters/1"]
    assert "Refund timing and double charges" in text_of(crumbs)
    text = text_of(page)
    assert f"Sub-cluster {slow} of run" in text
    entry = seeded.report.cluster(slow)
    assert entry is not None
    assert f"{entry.feedback.down} down of {entry.feedback.rated} rated" in text
    shown = [c.children for c in walk(by_id(page, "cluster-records")) if isinstance(c, dcc.Link)]
    assert shown and set(shown) <= set(seeded.subclusters[slow])
    assert [c.href for c in walk(by_id(page, "subclusters")) if isinstance(c, dcc.Link)] == [
        f"/clusters/{today}?run={seeded.run_id}"
    ]
    deeper = by_id(render_path(engine, f"/clusters/{today}", ""), "breadcrumb")
    hrefs = [c.href for c in walk(deeper) if isinstance(c, dcc.Link)]
    assert hrefs == ["/clusters", "/clusters/1", f"/clusters/{slow}"]
    assert all(getattr(c, "id", None) != "breadcrumb" for c in walk(parent))


def test_a_record_page_names_the_subcluster_holding_it(engine: Engine, seeded: SeededStore) -> None:
    slow, today = sorted(seeded.subclusters)
    inner = seeded.subclusters[today][0]
    links = [
        c for c in walk(render_path(engine, f"/records/{inner}", "")) if isinstance(c, dcc.Link)
    ]
    held = [c for c in links if getattr(c, "className", None) == "record-subcluster"]
    assert [(c.children, c.href) for c in held] == [
        (f"sub-cluster {today}", f"/clusters/{today}?run={seeded.run_id}")
    ]
    elsewhere = next(r for r in seeded.record_ids if r not in seeded.subclusters[slow])
    links = [
        c for c in walk(render_path(engine, f"/records/{elsewhere}", "")) if isinstance(c, dcc.Link)
    ]
    assert all(getattr(c, "className", None) != "record-subcluster" for c in links)


def test_csv_export_of_a_subcluster_holds_its_members(
    client: FlaskClient, seeded: SeededStore
) -> None:
    slow = min(seeded.subclusters)
    answer = client.get(f"/export/clusters/{slow}.csv?run={seeded.run_id}")
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert sorted(r["record_id"] for r in rows) == sorted(seeded.subclusters[slow])


@pytest.mark.e2e
def test_cli_bad_port_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmscope", "dashboard", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "llmscope dashboard: error: argument --port: 70000 is not a port number"
    ]


def test_the_page_head_starts_loading_plotly_from_a_url_cached_for_a_year(
    client: FlaskClient,
) -> None:
    """plotly.js is fetched from the page's head (while the server renders the page), not only
    when the first chart mounts, from a fingerprinted URL the browser need not ask again."""
    page = client.get("/clusters").get_data(as_text=True)
    head = page.split("</head>", 1)[0]
    assert "window.Plotly = new Promise" in head
    url = head.split('script.src = "', 1)[1].split('"', 1)[0]
    assert url.startswith("/_dash-component-suites/plotly/package_data/plotly.v")
    answer = client.get(url)
    assert answer.status_code == 200
    assert answer.cache_control.max_age == 31_536_000
    assert b"plotly.js v" in answer.get_data()[:200]
