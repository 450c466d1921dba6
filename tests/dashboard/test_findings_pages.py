"""What the dashboard says about a run's findings, without a browser: the overview's lead, the
clusters list's order and words, the map's colours, a hotspot's evidence page, the numbers and
the empty states. Expected figures are counted here from the seeded rows, not by the dashboard."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dash import dcc, html
from dash.development.base_component import Component
from sqlalchemy import Engine, select, update

from llmscope.dashboard import charts
from llmscope.dashboard.app import render_path
from llmscope.dashboard.components import fmt_p, plural
from llmscope.dashboard.data import cache
from llmscope.db.models import AnalysisRun, Feedback, Record, RunAssignment
from llmscope.report import Finding, MixShare, Regression, RunReport, TemplateVersionRow
from tests.dashboard.seed import XSS_RECORD_ID, SeededStore, add_rows, plain_record, seed_store
from tests.dashboard.test_app import by_id, text_of, walk
from tests.dashboard.test_experiments_page import seed_experiment


@pytest.fixture
def seeded(engine: Engine) -> SeededStore:
    return seed_store(engine, records=300)


def rewrite(engine: Engine, run_id: str, change: Callable[[RunReport], None]) -> None:
    """Change the stored report of ``run_id`` (as another analysis run would have written it)."""
    with engine.begin() as conn:
        stored = conn.scalar(select(AnalysisRun.report).where(AnalysisRun.id == run_id))
        report = RunReport.from_stored(stored)
        change(report)
        conn.execute(
            update(AnalysisRun).where(AnalysisRun.id == run_id).values(report=report.to_json())
        )


def latest_thumbs(engine: Engine) -> dict[str, tuple[str | None, list[str]]]:
    """record id -> its newest feedback event's (thumb, tags), read plainly."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Feedback.record_id, Feedback.thumb, Feedback.tags).order_by(
                Feedback.created_at, Feedback.id
            )
        ).all()
    return {rid: (thumb, list(tags or [])) for rid, thumb, tags in rows}


def window_of(engine: Engine, run_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunAssignment.record_id, RunAssignment.window).where(
                RunAssignment.run_id == run_id
            )
        )
        return dict(rows.all())  # type: ignore[arg-type]


def components(node: Any, kind: type) -> list[Any]:
    return [c for c in walk(node) if isinstance(c, kind)]


# --- the cluster page as evidence ------------------------------------------------------------


def test_a_hotspot_page_shows_the_thumbs_down_answers_first_with_tags_and_comments(
    engine: Engine, seeded: SeededStore
) -> None:
    problem = seeded.problem_cluster
    thumbs = latest_thumbs(engine)
    downs = [rid for rid in seeded.clusters[problem] if thumbs.get(rid, (None, []))[0] == "down"]
    assert len(downs) >= 3
    layout = render_path(engine, f"/clusters/{problem}", f"?run={seeded.run_id}")
    articles = components(by_id(layout, "cluster-records"), html.Article)
    shown = min(len(downs), len(articles))
    for article in articles[:shown]:
        assert "thumbs-down" in text_of(article)
        assert "incorrect" in text_of(article)  # the tag users put on it
    xss = next(a for a in articles if XSS_RECORD_ID in text_of(a))
    assert "<i>still</i> broken" in text_of(xss)  # its comment, as typed
    text = text_of(layout)
    assert "Thumbs-down answers first" in text
    assert "What the analysis found" in text and "Thumbs-down hotspot in cluster" in text


def test_thumbs_down_per_template_endpoint_and_model_with_the_runs_q_value(
    engine: Engine, seeded: SeededStore
) -> None:
    problem = seeded.problem_cluster
    thumbs, windows = latest_thumbs(engine), window_of(engine, seeded.run_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Record.id, Record.template_name, Record.template_version).where(
                Record.id.in_(seeded.clusters[problem])
            )
        ).all()
    counted: Counter[tuple[str, str, str]] = Counter()
    for rid, name, version in rows:
        thumb = thumbs.get(rid, (None, []))[0]
        key = f"{name}@{version}"
        counted[(key, windows[rid], "calls")] += 1
        counted[(key, windows[rid], "rated")] += thumb is not None
        counted[(key, windows[rid], "down")] += thumb == "down"
    template = next(k for k, _, _ in counted)
    name, _, version = template.rpartition("@")

    def add_test(report: RunReport) -> None:
        report.template_versions = [
            TemplateVersionRow(
                template=name,
                version=version,
                against="1",
                down_rate=0.9,
                against_down_rate=0.1,
                down_q_value=0.0001234,
            )
        ]

    rewrite(engine, seeded.run_id, add_test)
    layout = render_path(engine, f"/clusters/{problem}", f"?run={seeded.run_id}")
    table = text_of(by_id(layout, "down-by-template"))
    current = (counted[(template, "current", "down")], counted[(template, "current", "rated")])
    assert f"{current[0]} of {current[1]}" in table
    assert f"{100 * current[0] / current[1]:.1f}%" in table
    assert f"q=0.00012 vs {name}@1" in table  # the run's test, to two significant digits
    assert "endpoint" in text_of(by_id(layout, "down-by-endpoint"))
    assert "model" in text_of(by_id(layout, "down-by-model"))
    day = by_id(layout, "chart-cluster-down").figure
    assert {t.name for t in day.data} == {"current"}  # the problem topic is new
    assert all(0 <= y <= 1 for t in day.data for y in t.y)


def test_tag_counts_count_thumbs_down_answers_and_never_exceed_them(
    engine: Engine, seeded: SeededStore
) -> None:
    problem = seeded.problem_cluster
    # A record whose older event was a tagged thumbs-down and whose newest is a thumbs-up, and
    # one thumbs-down carrying the same tag twice: neither may raise a count.
    ids = [rid for rid in seeded.clusters[problem] if rid != XSS_RECORD_ID]
    changed, doubled = ids[0], ids[1]
    at = datetime(2027, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            Feedback.__table__.insert(),
            [
                {"record_id": changed, "created_at": at, "thumb": "down", "tags": ["incorrect"],
                 "source": "user"},
                {"record_id": changed, "created_at": at + timedelta(seconds=1), "thumb": "up",
                 "tags": [], "source": "user"},
                {"record_id": doubled, "created_at": at, "thumb": "down",
                 "tags": ["incorrect", "incorrect"], "source": "user"},
            ],
        )  # fmt: skip
    thumbs, windows = latest_thumbs(engine), window_of(engine, seeded.run_id)
    downs = Counter(
        windows[rid] for rid in seeded.clusters[problem] if thumbs.get(rid, (None,))[0] == "down"
    )
    tagged = Counter(
        windows[rid]
        for rid in seeded.clusters[problem]
        if thumbs.get(rid, (None, []))[0] == "down" and "incorrect" in thumbs[rid][1]
    )
    layout = render_path(engine, f"/clusters/{problem}", f"?run={seeded.run_id}")
    line = text_of(by_id(layout, "down-tags"))
    assert f"current window, {downs['current']} thumbs-down: incorrect {tagged['current']}" in line
    assert tagged["current"] <= downs["current"]


def test_a_cluster_without_ratings_says_not_enough_ratings(
    engine: Engine, seeded: SeededStore
) -> None:
    quiet = next(c for c in seeded.report.clusters if c.id != seeded.problem_cluster).id

    def unrated(report: RunReport) -> None:
        entry = report.cluster(quiet)
        assert entry is not None
        entry.feedback.rated, entry.feedback.down, entry.feedback.down_rate = 0, 0, None
        entry.hotspot.lift, entry.hotspot.p_value, entry.hotspot.q_value = 0.0, 1.0, 1.0

    rewrite(engine, seeded.run_id, unrated)
    page = text_of(render_path(engine, f"/clusters/{quiet}", f"?run={seeded.run_id}"))
    stats = text_of(by_id(render_path(engine, f"/clusters/{quiet}", ""), "cluster-stats"))
    assert "not enough ratings" in stats and "×0.00" not in stats and "q=1" not in stats
    assert "0.0%" not in stats
    table = by_id(render_path(engine, "/clusters", ""), "clusters-table")
    row = next(r for r in components(table, html.Tr) if f"#{quiet} " in text_of(r))
    assert "not enough ratings" in text_of(row)
    assert "×0.00" not in text_of(row) and "0/0 rated" not in text_of(row)
    assert "×0.00" not in page


# --- the overview and the clusters list ------------------------------------------------------


def test_the_overview_leads_with_the_findings_in_the_reports_order(
    engine: Engine, seeded: SeededStore
) -> None:
    shrank = next(c.id for c in seeded.report.clusters if c.drift.kind == "shrank")

    def reorder(report: RunReport) -> None:
        report.findings = [
            Finding(kind="regression", cluster_id=shrank, metric="latency_ms", severity=99.0,
                    message=f"Slower: cluster {shrank} went from 120 ms to 900 ms"),
            *report.findings,
        ]  # fmt: skip

    rewrite(engine, seeded.run_id, reorder)
    layout = render_path(engine, "/", "")
    items = components(by_id(layout, "findings"), html.Li)
    assert text_of(items[0]).endswith(f"Slower: cluster {shrank} went from 120 ms to 900 ms")
    assert "Thumbs-down hotspot in cluster" in text_of(items[1])
    link = components(items[0], dcc.Link)[0]
    assert link.href == f"/clusters/{shrank}?run={seeded.run_id}"
    assert len(items) == 5 and "more findings on the clusters list" in text_of(layout)
    # Findings, then the alerts, then the run, KPIs and charts.
    order = [c for c in walk(layout) if isinstance(c, str)]
    first = order.index("What the analysis found")
    assert first < order.index("Latest alerts") < order.index("Analysis run shown")
    ids = [getattr(c, "id", None) for c in walk(layout) if isinstance(c, Component)]
    assert ids.index("findings") < ids.index("chart-calls")


def test_an_older_run_without_findings_shows_its_alerts_as_findings(
    engine: Engine, seeded: SeededStore
) -> None:
    with engine.begin() as conn:  # the report as runs stored it before it had findings
        stored = dict(conn.scalar(select(AnalysisRun.report).where(
            AnalysisRun.id == seeded.run_id)))  # fmt: skip
        stored.pop("findings")
        conn.execute(
            update(AnalysisRun).where(AnalysisRun.id == seeded.run_id).values(report=stored)
        )
    items = components(by_id(render_path(engine, "/", ""), "findings"), html.Li)
    links = [components(i, dcc.Link)[0].children for i in items]
    assert links == [a.message for a in seeded.report.alerts]


def test_the_clusters_list_is_most_severe_first_with_flags_in_words(
    engine: Engine, seeded: SeededStore
) -> None:
    report = seeded.report
    stable = next(c.id for c in report.clusters if c.drift.kind == "stable" and c.parent is None)

    def promote(r: RunReport) -> None:
        r.findings = [
            Finding(kind="regression", cluster_id=stable, metric="latency_ms", severity=99.0,
                    message="Slower"),
            *r.findings,
        ]  # fmt: skip
        entry = r.cluster(stable)
        assert entry is not None
        entry.keywords = ["one", "two", "three", "four", "five", "six", "seven", "eight"]

    rewrite(engine, seeded.run_id, promote)
    table = by_id(render_path(engine, "/clusters", ""), "clusters-table")
    rows = components(table, html.Tr)[1:]
    assert f"#{stable} " in text_of(rows[0])
    assert f"#{seeded.problem_cluster} " in text_of(rows[1])
    assert "thumbs-down hotspot" in text_of(rows[1]) and "new topic" in text_of(rows[1])
    assert "one, two, three, four, five" in text_of(rows[0]) and "six" not in text_of(rows[0])
    head = text_of(components(table, html.Thead))
    assert "summary by" not in head
    sources = text_of(by_id(render_path(engine, "/clusters", ""), "summary-sources"))
    llm = sum(1 for c in report.clusters if c.summary and c.summary.generated_by.startswith("llm"))
    assert f"LLM (gpt-4o-mini) for {plural(llm, 'cluster')}" in sources
    title = text_of(render_path(engine, "/clusters", f"?run={seeded.old_run_id}"))
    assert "2 clusters" in title


def test_the_map_colours_findings_puts_the_bad_on_top_and_keeps_the_legend_outside(
    engine: Engine, seeded: SeededStore
) -> None:
    figure = by_id(render_path(engine, "/clusters", ""), "cluster-map").figure
    points = [t for t in figure["data"] if t["marker"].get("symbol") != "circle-open"]
    assert points[0]["name"] == "not flagged" and points[0]["marker"]["color"] == charts.NOISE
    assert points[-1]["name"].startswith(f"{seeded.problem_cluster}: ")  # most severe on top
    assert figure["layout"]["legend"]["x"] > 1  # beside the plot, not over it
    feedback = by_id(render_path(engine, "/clusters", "?color=feedback"), "cluster-map").figure
    names = [t["name"] for t in feedback["data"] if t["marker"].get("symbol") != "circle-open"]
    assert names.index("thumbs-down") > names.index("thumbs-up")
    # Any number of clusters: never more than ten colours.
    many = [
        {"record_id": f"r{i}", "cluster_id": i % 28, "window": "current", "x": i, "y": i,
         "thumb": None, "text": ""}
        for i in range(280)
    ]  # fmt: skip
    drawn = charts.cluster_map(many, "cluster", {i: f"t{i}" for i in range(28)})
    assert len({t["marker"]["color"] for t in drawn["data"]}) <= 10


# --- numbers, charts and empty states --------------------------------------------------------


def test_p_values_plurals_and_the_run_card_read_as_people_write_them(
    engine: Engine, seeded: SeededStore
) -> None:
    assert fmt_p(0.001996007984031936) == "0.002"
    assert (fmt_p(0.41), fmt_p(1.9e-08), fmt_p(1.0)) == ("0.41", "1.9e-08", "1")
    assert (plural(1, "cluster"), plural(1000, "record")) == ("1 cluster", "1,000 records")

    def long_p(report: RunReport) -> None:
        report.global_drift.p_value = 0.001996007984031936

    rewrite(engine, seeded.run_id, long_p)
    text = text_of(render_path(engine, "/", ""))
    assert "p=0.002" in text and "0.001996" not in text
    assert "(pricing:)" not in text and "Cost by user" not in text  # nothing is priced
    with engine.begin() as conn:
        conn.execute(update(Record).where(Record.id == XSS_RECORD_ID).values(cost_usd=0.25))
    cache.clear()  # an edited old record is not a new store version: forget the memo
    priced = text_of(render_path(engine, "/", ""))
    assert "Cost by user" in priced and f"1 of {len(seeded.record_ids):,} calls priced" in priced


def test_one_day_and_partial_days_draw_sensible_axes() -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    one = [{"bucket": day, "group": None, "calls": 40, "errors": 0, "rated": 2, "down": 1,
            "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.0, "priced": 0,
            "p50": 100.0, "p95": 200.0}]  # fmt: skip
    calls = charts.traffic_figures(one, False, "day")["calls"]
    assert list(calls.layout.xaxis.range) == [day - timedelta(days=1), day + timedelta(days=1)]
    assert calls.layout.xaxis.tickformat == "%b %d"
    assert calls.layout.yaxis.rangemode == "tozero"  # not 39-41 around one point
    three = [{**one[0], "bucket": day + timedelta(days=i)} for i in range(3)]
    span = (day + timedelta(hours=15), day + timedelta(days=2, hours=9))
    figure = charts.traffic_figures(three, False, "day", span)["calls"]
    assert list(figure.data[0].marker.symbol) == ["circle-open", "circle", "circle-open"]


def test_empty_states_name_the_store_the_dashboard_reads(engine: Engine) -> None:
    flag = f"--database-url {engine.url}"
    assert f"llmscope serve {flag}" in text_of(render_path(engine, "/", ""))
    add_rows(engine, [plain_record("r-1", datetime(2026, 11, 20, tzinfo=UTC))])
    assert f"llmscope analyze {flag}" in text_of(render_path(engine, "/clusters", ""))
    evaluators = text_of(render_path(engine, "/evaluators", ""))
    assert "Add an evaluators: section" not in evaluators
    assert "sample_rate" in evaluators and f"llmscope evaluate --config gateway.yaml {flag}" in (
        evaluators
    )
    seed_experiment(engine)  # an experiment judged answers: evaluators exist and work
    judged = text_of(render_path(engine, "/evaluators", ""))
    assert "Evaluators are configured and judge experiments" in judged


def test_a_regression_shows_both_windows_and_what_moved_underneath(
    engine: Engine, seeded: SeededStore
) -> None:
    shrank = next(c for c in seeded.report.clusters if c.drift.kind == "shrank")

    def slower(report: RunReport) -> None:
        entry = report.cluster(shrank.id)
        assert entry is not None
        entry.regressions = {
            "latency_ms": Regression(baseline=146.0, current=1077.0, ratio=7.38, p_value=2e-9,
                                     q_value=3.1e-8, flagged=True, method="Mann-Whitney U"),
            "error_rate": Regression(baseline=0.0, current=0.0),
        }  # fmt: skip
        entry.mix = {
            "endpoint": {
                "support-chat": MixShare(baseline=50, current=0, baseline_share=1.0,
                                         current_share=0.0),
                "support-chat-large": MixShare(baseline=0, current=32, baseline_share=0.0,
                                               current_share=1.0),
            }
        }  # fmt: skip

    rewrite(engine, seeded.run_id, slower)
    layout = render_path(engine, f"/clusters/{shrank.id}", "")
    table = text_of(by_id(layout, "cluster-regressions"))
    assert "146 ms" in table and "1,077 ms" in table and "×7.38" in table
    assert "q=3.1e-08" in table and "too few calls to test" in table
    moved = text_of(by_id(layout, "cluster-mix"))
    assert "support-chat-large" in moved and "32 (100.0%)" in moved
    assert "slower" in text_of(layout)  # the flag, in words
    # Both windows' latencies, side by side rather than pooled.
    windows = window_of(engine, seeded.run_id)
    members = seeded.clusters[shrank.id]
    figure = by_id(layout, "dist-latency_ms").figure
    assert [t.name for t in figure.data] == [
        f"{w} ({sum(windows[m] == w for m in members):,} calls)" for w in ("baseline", "current")
    ]
