"""The analysis job end to end on a seeded store, with the real model, on every backend."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from llmscope.analysis.embedding import load_model
from llmscope.analysis.job import run_analysis
from llmscope.analysis.windows import parse_interval
from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import AnalysisRun, Embedding, Record, RunAssignment, RunCluster
from tests.analysis.traffic import BASELINE, CURRENT, seed_traffic
from tests.conftest import BACKENDS, _truncate_all, count_rows

CLUSTER_KEYS = {
    "id", "size", "baseline_count", "current_count", "baseline_share", "current_share",
    "keywords", "examples", "drift", "feedback", "hotspot", "latency_ms", "tokens",
    "templates", "cost", "summary",
}  # fmt: skip
REPORT_KEYS = {
    "run_id", "created_at", "baseline", "current", "global_drift", "clusters", "findings",
    "alerts",
}  # fmt: skip
REGRESSION_KEYS = {
    "baseline", "current", "ratio", "p_value", "q_value", "flagged", "baseline_calls",
    "current_calls", "method",
}  # fmt: skip


@pytest.fixture(scope="session")
def model() -> None:
    """Load the embedding model once for the whole session."""
    load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module", params=BACKENDS)
def analysed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: None
) -> Iterator[tuple[Settings, dict[str, Any]]]:
    """A seeded store on one backend and the report of one analysis run over it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('analysis') / 'store.db'}"
    else:
        url = request.getfixturevalue("_pg_database")
        _truncate_all(url)
    engine = make_engine(url)
    upgrade(engine)
    seed_traffic(engine)
    engine.dispose()
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("data"))
    report = run_analysis(
        settings, parse_interval(BASELINE), parse_interval(CURRENT), progress=False
    ).to_json()
    yield settings, report
    if request.param != "sqlite":
        _truncate_all(url)


def _topic_of_clusters(settings: Settings, run_id: str) -> dict[int, Counter[str]]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunAssignment.record_id, RunAssignment.cluster_id).where(
                RunAssignment.run_id == run_id
            )
        ).all()
    engine.dispose()
    topics: dict[int, Counter[str]] = {}
    for record_id, cluster_id in rows:
        topics.setdefault(cluster_id, Counter())[record_id.split("-")[0]] += 1
    return topics


def test_report_has_the_contract_shape(analysed: tuple[Settings, dict[str, Any]]) -> None:
    _, report = analysed
    assert set(report) >= REPORT_KEYS
    assert report["baseline"]["records"] == 150 and report["current"]["records"] == 150
    assert report["current"]["end"] == "2026-11-20T12:00:00Z"
    assert set(report["global_drift"]) == {"statistic", "p_value", "flagged", "method"}
    # Alerts (and summaries) are filled in by the steps after the run is stored.
    assert all({"kind", "cluster_id", "message"} <= set(a) for a in report["alerts"])
    assert 2 <= len(report["clusters"]) <= 30
    for cluster in report["clusters"]:
        # parent: sub-clusters only; regressions and mix: clusters of the cut only
        if "parent" in cluster:
            assert set(cluster) - {"parent"} == CLUSTER_KEYS
        else:
            assert set(cluster) == CLUSTER_KEYS | {"regressions", "mix"}
            regressions = cluster["regressions"]
            assert set(regressions) == {"latency_ms", "output_tokens", "cost_usd", "error_rate"}
            assert all(set(r) == REGRESSION_KEYS for r in regressions.values())
            assert regressions["latency_ms"]["baseline_calls"] == cluster["baseline_count"]
            assert set(cluster["mix"]) == {"endpoint", "model", "template"}
            per_endpoint = cluster["mix"]["endpoint"].values()
            assert sum(m["current"] for m in per_endpoint) == cluster["current_count"]
        assert set(cluster["drift"]) == {"kind", "score", "p_value", "q_value", "flagged"}
        # kind: flagged hotspots only; level: only when tested at the node above (parent)
        assert set(cluster["hotspot"]) - {"kind", "level"} == {
            "lift", "p_value", "q_value", "flagged", "persistent", "emerging",
        }  # fmt: skip
        assert cluster["hotspot"].get("kind") in (
            ("persistent", "emerging") if cluster["hotspot"]["flagged"] else (None,)
        )
        assert cluster["size"] == cluster["baseline_count"] + cluster["current_count"]
        assert cluster["keywords"] and cluster["examples"]
        assert sum(cluster["templates"].values()) == cluster["size"]
    severities = [f["severity"] for f in report["findings"]]
    assert severities == sorted(severities, reverse=True)
    flagged = {
        c["id"] for c in report["clusters"] if c["drift"]["flagged"] or c["hotspot"]["flagged"]
    }
    assert flagged <= {f["cluster_id"] for f in report["findings"]}
    top = [c for c in report["clusters"] if "parent" not in c]
    assert sum(c["size"] for c in top) == 300
    assert sum(c["current_share"] for c in top) == pytest.approx(1.0)


def test_each_cluster_reports_what_its_calls_cost(
    analysed: tuple[Settings, dict[str, Any]],
) -> None:
    settings, report = analysed
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunAssignment.cluster_id, Record.cost_usd)
            .join(Record, Record.id == RunAssignment.record_id)
            .where(RunAssignment.run_id == report["run_id"])
        ).all()
    engine.dispose()
    for cluster in report["clusters"]:
        costs = [cost for cid, cost in rows if cid == cluster["id"] and cost is not None]
        # only the current window's calls are priced in the seeded store
        assert cluster["cost"]["priced"] == len(costs) == cluster["current_count"]
        assert cluster["cost"]["total_usd"] == pytest.approx(sum(costs))
        assert cluster["cost"]["per_call_usd"] == pytest.approx(sum(costs) / len(costs))
    total = sum(c["cost"]["total_usd"] for c in report["clusters"])
    # hand-computed: 150 current calls, (input_tokens x $0.15 + 6 x $0.60) per million
    assert total == pytest.approx(sum(cost for _, cost in rows if cost is not None))


def test_internal_and_out_of_window_records_are_not_analysed(
    analysed: tuple[Settings, dict[str, Any]],
) -> None:
    settings, report = analysed
    topics = _topic_of_clusters(settings, report["run_id"])
    seen: Counter[str] = Counter()
    for counts in topics.values():
        seen.update(counts)
    # 50 + 38 / 50 + 38 / 50 + 37 / 37: no internal-*, no too-old
    assert seen == {"password": 88, "refund": 88, "shipping": 87, "weather": 37}


def test_the_new_topic_is_flagged_new_and_nothing_else_drifts(
    analysed: tuple[Settings, dict[str, Any]],
) -> None:
    settings, report = analysed
    topics = _topic_of_clusters(settings, report["run_id"])
    assert report["global_drift"]["flagged"]
    for cluster in report["clusters"]:
        topic, _ = topics[cluster["id"]].most_common(1)[0]
        if topic == "weather":
            assert cluster["drift"]["kind"] == "new" and cluster["drift"]["flagged"]
            assert cluster["baseline_count"] == 0
        else:
            assert not cluster["drift"]["flagged"], cluster


def test_the_thumbs_down_topic_is_the_hotspot(
    analysed: tuple[Settings, dict[str, Any]],
) -> None:
    settings, report = analysed
    topics = _topic_of_clusters(settings, report["run_id"])
    flagged = [c for c in report["clusters"] if c["hotspot"]["flagged"]]
    assert flagged
    for cluster in report["clusters"]:
        topic, _ = topics[cluster["id"]].most_common(1)[0]
        if cluster["hotspot"]["flagged"]:
            assert topic == "refund"
            assert cluster["hotspot"]["lift"] >= 1.5 and cluster["hotspot"]["q_value"] <= 0.05
    rated = sum(c["feedback"]["rated"] for c in report["clusters"])
    assert rated == 150  # every current record once: the latest event only


def test_run_clusters_and_assignments_are_stored(
    analysed: tuple[Settings, dict[str, Any]],
) -> None:
    settings, report = analysed
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(AnalysisRun.report)).scalar_one()
            clusters = conn.execute(select(RunCluster)).all()
            windows = Counter(conn.execute(select(RunAssignment.window)).scalars())
        assert stored == report
        assert len(clusters) == len(report["clusters"])
        assert all(len(c.centroid) == 384 * 4 for c in clusters)
        assert all("shrunken_down_rate" in c.stats["hotspot"] for c in clusters)
        assert windows == {"baseline": 150, "current": 150}
        # Distinct texts are embedded once; a second run embeds nothing new.
        cached = count_rows(engine, Embedding)
        assert 0 < cached <= 4 * 5 * 6
        again = run_analysis(
            settings, parse_interval(BASELINE), parse_interval(CURRENT), progress=False
        ).to_json()
        assert count_rows(engine, Embedding) == cached
        # Seeded: the same data gives the same clusters.
        assert [c["size"] for c in again["clusters"]] == [c["size"] for c in report["clusters"]]
        assert [c["keywords"] for c in again["clusters"]] == [
            c["keywords"] for c in report["clusters"]
        ]
        with TestClient(create_app(settings)) as client:
            latest = client.get("/api/v1/analysis/runs/latest")
            assert latest.status_code == 200 and latest.json()["run_id"] == again["run_id"]
            first = client.get(f"/api/v1/analysis/runs/{report['run_id']}")
            assert first.status_code == 200 and first.json() == report
            missing = client.get("/api/v1/analysis/runs/nope")
            assert missing.status_code == 404 and "nope" in missing.json()["message"]
    finally:
        engine.dispose()


def test_latest_run_is_404_on_an_empty_store(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/v1/analysis/runs/latest")
    assert answer.status_code == 404
