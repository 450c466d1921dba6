"""The dashboard's read queries on SQLite and PostgreSQL: small hand-made stores with known
answers, and a seeded store whose membership the factory knows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from llmscope.dashboard import data
from llmscope.dashboard.export import safe_cell
from tests.dashboard.seed import XSS_RECORD_ID, SeededStore, add_rows, plain_record, seed_store

T0 = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)


@pytest.fixture
def seeded(engine: Engine) -> SeededStore:
    return seed_store(engine, records=300)


@pytest.fixture
def small(engine: Engine) -> Engine:
    """Four calls with latencies 100..400 ms; feedback histories where the latest event counts."""
    add_rows(
        engine,
        [
            plain_record("a", T0, latency_ms=400.0, template_name="support", template_version="2"),
            plain_record("b", T0 + timedelta(minutes=50), latency_ms=100.0, endpoint="billing"),
            plain_record("c", T0 + timedelta(hours=1), latency_ms=300.0, model="gpt-4o"),
            plain_record("d", T0 + timedelta(hours=1, minutes=5), latency_ms=200.0, status="error"),
            plain_record("internal", T0, latency_ms=9999.0, internal=True),
        ],
        [
            ("a", "up", T0 + timedelta(minutes=1)),
            ("a", "down", T0 + timedelta(minutes=2)),  # changed their mind: down counts
            ("b", "down", T0 + timedelta(minutes=51)),
            ("b", "up", T0 + timedelta(minutes=52)),  # up counts
            ("c", "down", T0 + timedelta(hours=1, minutes=1)),
        ],
    )
    return engine


def test_totals_count_latest_feedback_and_nearest_rank_percentiles(small: Engine) -> None:
    total = data.totals(small, data.Filters())
    assert total["calls"] == 4  # the internal call is left out
    assert total["errors"] == 1
    assert (total["rated"], total["down"]) == (3, 2)
    assert (total["p50"], total["p95"]) == (200.0, 400.0)
    assert (total["input_tokens"], total["output_tokens"]) == (40, 20)


def test_traffic_buckets_by_hour_in_utc(small: Engine) -> None:
    rows = data.traffic(small, data.Filters(), unit="hour")
    assert [(r["bucket"], r["calls"], r["down"], r["rated"]) for r in rows] == [
        (datetime(2026, 11, 20, 10, tzinfo=UTC), 2, 1, 2),
        (datetime(2026, 11, 20, 11, tzinfo=UTC), 2, 1, 1),
    ]
    assert [(r["p50"], r["p95"]) for r in rows] == [(100.0, 400.0), (200.0, 300.0)]


def test_traffic_split_by_endpoint_and_breakdown_by_template(small: Engine) -> None:
    rows = data.traffic(small, data.Filters(), unit="day", by="endpoint")
    assert {(r["group"], r["calls"]) for r in rows} == {("chat", 3), ("billing", 1)}
    by_template = data.breakdown(small, data.Filters(), by="template")
    assert [(r["group"], r["calls"]) for r in by_template] == [("(none)@-", 3), ("support@2", 1)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (data.Filters(endpoint="billing"), 1),
        (data.Filters(model="gpt-4o"), 1),
        (data.Filters(template="support@2"), 1),
        (data.Filters(feedback="down"), 2),
        (data.Filters(feedback="up"), 1),
        (data.Filters(feedback="unrated"), 1),
        (data.Filters(since=T0 + timedelta(minutes=30)), 3),
        (data.Filters(until=T0 + timedelta(minutes=30)), 1),
    ],
)
def test_filters_narrow_the_records(small: Engine, filters: data.Filters, expected: int) -> None:
    assert data.totals(small, filters)["calls"] == expected


def test_filter_options_and_store_status(small: Engine) -> None:
    assert data.filter_options(small) == {
        "endpoint": ["billing", "chat"],
        "model": ["gpt-4o", "gpt-4o-mini"],
        "template": ["support@2"],
    }
    status = data.store_status(small)
    assert (status.records, status.runs) == (4, 0)
    assert data.run_report(small, None) is None


def test_runs_newest_first_and_report_as_stored(engine: Engine, seeded: SeededStore) -> None:
    assert [r.id for r in data.list_runs(engine)] == [seeded.run_id, seeded.old_run_id]
    run, report = data.run_report(engine, None)  # type: ignore[misc]
    assert run.id == seeded.run_id
    assert report == seeded.report
    assert data.run_report(engine, "no-such-run") is None


def test_cluster_counts_match_the_assignments(engine: Engine, seeded: SeededStore) -> None:
    counts = data.cluster_counts(engine, seeded.run_id, data.Filters())
    assert counts == {cid: len(ids) for cid, ids in seeded.clusters.items()}
    only_billing = data.cluster_counts(engine, seeded.run_id, data.Filters(endpoint="billing-chat"))
    assert set(only_billing) <= {-1, 1}  # refunds are the only billing topic


def test_map_points_all_when_few_and_a_stable_stride_sample_when_many(
    engine: Engine, seeded: SeededStore
) -> None:
    total = len(seeded.record_ids)
    full = data.map_points(engine, seeded.run_id, data.Filters(), total=total)
    assert not full.sampled and len(full.points) == total
    sample = data.map_points(engine, seeded.run_id, data.Filters(), total=total, limit=50)
    assert sample.sampled and 40 <= len(sample.points) <= 50
    again = data.map_points(engine, seeded.run_id, data.Filters(), total=total, limit=50)
    assert [p["record_id"] for p in again.points] == [p["record_id"] for p in sample.points]
    by_id = {p["record_id"]: p for p in full.points}
    for point in sample.points:
        assert point["cluster_id"] == seeded.cluster_of[point["record_id"]]
        assert by_id[point["record_id"]] == point


def test_map_point_text_previews_chat_messages(engine: Engine, seeded: SeededStore) -> None:
    points = data.map_points(engine, seeded.run_id, data.Filters(), total=1000).points
    chat = next(p for p in points if p["record_id"] == "rec-000000")  # every 3rd is a chat
    assert chat["text"].endswith("(order 1000)")
    assert not chat["text"].startswith("[")


def test_sorted_clusters_by_each_key(seeded: SeededStore) -> None:
    report = seeded.report
    assert data.sorted_clusters(report, "hotspot")[0].id == seeded.problem_cluster
    assert data.sorted_clusters(report, "drift")[0].id == seeded.problem_cluster
    sizes = [c.size for c in data.sorted_clusters(report, "size")]
    assert sizes == sorted(sizes, reverse=True)


def test_cluster_records_show_the_report_examples_first(
    engine: Engine, seeded: SeededStore
) -> None:
    cluster = data.find_cluster(seeded.report, seeded.problem_cluster)
    assert cluster is not None
    rows = data.cluster_records(
        engine, seeded.run_id, seeded.problem_cluster, data.Filters(), first=cluster.examples
    )
    assert rows[0]["id"] == XSS_RECORD_ID
    assert rows[0]["thumb"] == "down" and rows[0]["comment"] == "<i>still</i> broken"
    assert rows[0]["text"].startswith("<script>")
    assert all(seeded.cluster_of[r["id"]] == seeded.problem_cluster for r in rows)
    down = data.cluster_records(
        engine, seeded.run_id, seeded.problem_cluster, data.Filters(feedback="down")
    )
    assert down and all(r["thumb"] == "down" for r in down)


def test_share_by_day_covers_every_analysed_record(engine: Engine, seeded: SeededStore) -> None:
    rows = data.share_by_day(engine, seeded.run_id, seeded.problem_cluster)
    assert sum(r["total"] for r in rows) == len(seeded.record_ids)
    assert sum(r["n"] for r in rows) == len(seeded.clusters[seeded.problem_cluster])
    # The problem cluster is new: it has no baseline days.
    assert all(r["n"] == 0 for r in rows if r["window"] == "baseline")


def test_export_rows_hold_every_record_of_the_cluster(engine: Engine, seeded: SeededStore) -> None:
    rows = list(data.export_rows(engine, seeded.run_id, seeded.problem_cluster))
    assert sorted(r[0] for r in rows) == sorted(seeded.clusters[seeded.problem_cluster])
    assert len(rows[0]) == len(data.EXPORT_COLUMNS)
    values = data.cluster_values(engine, seeded.run_id, seeded.problem_cluster)
    for window in ("baseline", "current"):  # each window's values, not pooled
        assert len(values[window]["latency_ms"]) == sum(r[2] == window for r in rows)


def test_csv_cells_that_look_like_formulas_are_quoted() -> None:
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell("@sum") == "'@sum"
    assert safe_cell("plain") == "plain"
    assert safe_cell(None) == ""
    assert safe_cell(3) == 3


def test_record_detail_has_feedback_history_and_clusters(
    engine: Engine, seeded: SeededStore
) -> None:
    record = data.record_detail(engine, XSS_RECORD_ID)
    assert record is not None
    assert [f["thumb"] for f in record["feedback"]] == ["up", "down"]
    assert [(c["run_id"], c["cluster_id"]) for c in record["clusters"]] == [
        (seeded.run_id, seeded.problem_cluster)
    ]
    assert data.record_detail(engine, "nope") is None


def test_snippet_and_record_text() -> None:
    assert data.snippet('[{"role": "user", "content": "hi \\"there\\""}]') == 'hi "there"'
    assert data.snippet("a\n  b") == "a b"
    assert data.snippet("x" * 300, 10) == "x" * 9 + "…"
    assert data.record_text(None, [{"role": "user", "content": "q"}]) == "user: q"
    assert data.record_text("p", None) == "p"


def test_subcluster_members_and_the_nested_order(engine: Engine, seeded: SeededStore) -> None:
    members = data.subcluster_members(engine, seeded.run_id)
    assert members == seeded.subclusters and len(members) == 2
    slow, today = sorted(members)
    entry = seeded.report.cluster(slow)
    assert entry is not None and data.members_of(engine, seeded.run_id, entry) == members[slow]
    cut = seeded.report.cluster(1)
    assert cut is not None and data.members_of(engine, seeded.run_id, cut) is None
    nested = [(c.id, depth) for c, depth in data.nested_clusters(seeded.report, "size")]
    at = nested.index((1, 0))
    assert nested[at + 1 : at + 3] == [(slow, 1), (today, 2)]
    assert len(nested) == len(seeded.report.clusters)


def test_a_subcluster_reads_only_its_own_records(engine: Engine, seeded: SeededStore) -> None:
    slow = min(seeded.subclusters)
    members = seeded.subclusters[slow]
    parent = seeded.clusters[1]
    assert set(members) < set(parent)  # strictly inside its cluster of the cut
    rows = data.share_by_day(engine, seeded.run_id, slow, members)
    assert sum(r["n"] for r in rows) == len(members)
    assert sum(r["total"] for r in rows) == len(seeded.record_ids)
    exported = list(data.export_rows(engine, seeded.run_id, slow, members))
    assert sorted(r[0] for r in exported) == sorted(members)
    assert {r[3] for r in exported} == {slow}
    values = data.cluster_values(engine, seeded.run_id, slow, members=members)
    assert sum(len(v["latency_ms"]) for v in values.values()) == len(members)
    records = data.cluster_records(
        engine, seeded.run_id, slow, data.Filters(), first=members[:2], members=members
    )
    assert [r["id"] for r in records[:2]] == members[:2]
    assert all(r["id"] in members for r in records)


def test_a_subcluster_larger_than_the_bind_parameter_limit(
    engine: Engine, seeded: SeededStore
) -> None:
    """PostgreSQL takes at most 65,535 parameters in a statement: the ids are inlined."""
    members = seeded.subclusters[min(seeded.subclusters)]
    many = members + [f"absent-{i}" for i in range(70_000)]
    rows = data.share_by_day(engine, seeded.run_id, 0, many)
    assert sum(r["n"] for r in rows) == len(members)


def test_the_most_specific_subcluster_holding_a_record(engine: Engine, seeded: SeededStore) -> None:
    slow, today = sorted(seeded.subclusters)
    runs = [seeded.run_id, seeded.old_run_id or ""]
    inner = seeded.subclusters[today][0]
    outer = next(r for r in seeded.subclusters[slow] if r not in seeded.subclusters[today])
    assert data.record_subclusters(engine, inner, runs) == {seeded.run_id: today}
    assert data.record_subclusters(engine, outer, runs) == {seeded.run_id: slow}
    assert data.record_subclusters(engine, inner[:-1], runs) == {}  # a prefix is not the id
    assert data.record_subclusters(engine, "rec-%", runs) == {}  # LIKE wildcards are escaped
    assert data.record_subclusters(engine, inner, []) == {}


def test_subcluster_counts_follow_the_filters(engine: Engine, seeded: SeededStore) -> None:
    assert data.subcluster_counts(engine, seeded.run_id, data.Filters()) == {
        sub: len(members) for sub, members in seeded.subclusters.items()
    }
    down = data.Filters(feedback="down")
    counts = data.subcluster_counts(engine, seeded.run_id, down)
    for sub, members in seeded.subclusters.items():
        rows = data.cluster_records(engine, seeded.run_id, sub, down, limit=10_000, members=members)
        assert counts[sub] == len(rows) < len(members)
