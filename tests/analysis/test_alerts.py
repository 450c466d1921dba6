"""Alerts: each rule fires once, the cooldown holds, failed deliveries are retried and recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.alerts import raise_alerts
from llmscope.analysis.followup import finish_run
from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db.models import Alert, AnalysisRun, RunCluster
from llmscope.report import Regression
from tests.analysis.http_fakes import Receiver, webhook_receiver
from tests.analysis.seeding import NOW, ClusterSeed, Down, seed_run, unit
from tests.conftest import free_port


def problem_clusters() -> list[ClusterSeed]:
    return [
        ClusterSeed(
            id=0,
            centroid=unit(1, 0),
            current=[("refund please", "no")] * 4,
            baseline=[("refund please", "no")] * 4,
            keywords=["refund", "charge"],
            hotspot_flagged=True,
            downs=[Down(0, ["incorrect"], "wrong"), Down(1, ["incorrect"], "")],
        ),
        ClusterSeed(
            id=1,
            centroid=unit(0, 1),
            current=[("dark mode?", "yes")] * 3,
            keywords=["dark", "mode"],
            drift_kind="new",
            drift_flagged=True,
        ),
        ClusterSeed(
            id=2,
            centroid=unit(0, 0, 1),
            current=[("reset password", "link")] * 5,
            baseline=[("reset password", "link")],
            keywords=["password"],
            drift_kind="grew",
            drift_flagged=True,
        ),
        ClusterSeed(id=3, centroid=unit(0, 0, 0, 1), current=[("hello", "hi")] * 2),
    ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


def alert_settings(settings: Settings, receiver: Receiver, **overrides: object) -> Settings:
    update = {
        "alert_webhook_url": f"{receiver.url}/hook",
        "alert_slack_webhook_url": f"{receiver.url}/slack",
        "dashboard_url": "https://scope.example.com/",
        "alert_delivery_backoff_s": 0.01,
        **overrides,
    }
    for name in ("alert_webhook_url", "alert_slack_webhook_url"):  # secrets, as Settings reads them
        if isinstance(update[name], str):
            update[name] = SecretStr(update[name])
    return settings.model_copy(update=update)


def run_alerts(engine: Engine, run_id: str, settings: Settings) -> list[dict]:
    with Session(engine) as session:
        rows = raise_alerts(session, run_id, settings)
        session.commit()
        return [
            {
                "kind": r.kind,
                "cluster_id": r.cluster_id,
                "status": r.delivery_status,
                "delivery": r.delivery,
                "message": r.message,
            }
            for r in rows
        ]


def report_alerts(engine: Engine, run_id: str) -> list[dict]:
    with Session(engine) as session:
        return session.get(AnalysisRun, run_id).report["alerts"]  # type: ignore[union-attr]


def test_each_alert_is_delivered_once_then_cooled_down(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    config = alert_settings(settings, receiver)
    first = seed_run(engine, problem_clusters(), global_flagged=True, run_id="run-1")
    rows = run_alerts(engine, first, config)

    expected = {("global_drift", None), ("hotspot", 0), ("new_cluster", 1), ("drift", 2)}
    assert {(r["kind"], r["cluster_id"]) for r in rows} == expected
    assert {r["status"] for r in rows} == {"sent"}
    hooks = receiver.received["/hook"]
    assert sorted((h["kind"], h["cluster_id"]) for h in hooks) == sorted(
        expected, key=lambda e: (e[0], e[1] if e[1] is not None else -1)
    )
    hotspot = next(h for h in hooks if h["kind"] == "hotspot")
    assert hotspot["run_id"] == "run-1"
    assert hotspot["dashboard_url"] == "https://scope.example.com/clusters/0?run=run-1"
    assert hotspot["message"] == (
        'Thumbs-down hotspot in cluster 0 "refund, charge": 2 of 2 rated answers thumbs-down '
        "(100.0%, 4.0x the rest; q=0.003)."
    )
    glob = next(h for h in hooks if h["kind"] == "global_drift")
    assert glob["dashboard_url"] == "https://scope.example.com/?run=run-1"
    drift = next(h for h in hooks if h["kind"] == "drift")
    assert drift["message"] == (
        'Cluster 2 "password" grew: share of traffic 20.0% -> 35.7% (q=0.004).'
    )
    slack = receiver.received["/slack"]
    assert len(slack) == 4 and all(set(s) == {"text"} for s in slack)
    assert any("https://scope.example.com/clusters/1?run=run-1" in s["text"] for s in slack)
    assert sorted(
        (a["kind"], a["cluster_id"] if a["cluster_id"] is not None else -1)
        for a in report_alerts(engine, first)
    ) == [("drift", 2), ("global_drift", -1), ("hotspot", 0), ("new_cluster", 1)]

    # A second run an hour later finds the same problems in re-numbered clusters: nothing sent.
    again = problem_clusters()
    again[0].id, again[2].id = 2, 0
    second = seed_run(
        engine, again, global_flagged=True, run_id="run-2", created_at=NOW + timedelta(hours=1)
    )
    rows = run_alerts(engine, second, config)
    assert {r["status"] for r in rows} == {"suppressed"} and len(rows) == 4
    assert len(receiver.received["/hook"]) == 4 and len(receiver.received["/slack"]) == 4
    assert report_alerts(engine, second) == []

    # Once the cooldown has passed, the same findings are alerted again.
    with Session(engine) as session:
        for alert in session.scalars(select(Alert)):
            alert.created_at -= timedelta(hours=25)
        session.commit()
    third = seed_run(engine, problem_clusters(), global_flagged=True, run_id="run-3")
    assert {r["status"] for r in run_alerts(engine, third, config)} == {"sent"}
    assert len(receiver.received["/hook"]) == 8


def test_unreachable_webhook_is_retried_recorded_and_retried_next_run(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    config = alert_settings(
        settings, receiver, alert_webhook_url=dead, alert_slack_webhook_url=None
    )
    run_id = seed_run(engine, problem_clusters()[:1], run_id="run-dead")
    rows = run_alerts(engine, run_id, config)  # must not raise
    assert len(rows) == 1
    assert rows[0]["status"] == "failed"
    assert rows[0]["delivery"]["webhook"]["attempts"] == 3
    assert "ConnectError" in rows[0]["delivery"]["webhook"]["error"]

    # Nobody was told, so the failed alert starts no cooldown: the next run delivers it.
    receiver.fail_first["/hook"] = 2
    working = alert_settings(settings, receiver, alert_slack_webhook_url=None)
    later = seed_run(engine, problem_clusters()[:1], run_id="run-ok")
    rows = run_alerts(engine, later, working)
    assert rows[0]["status"] == "sent"
    assert rows[0]["delivery"]["webhook"] == {"status": "sent", "attempts": 3, "http_status": 200}
    assert receiver.hits["/hook"] == 3
    assert len(receiver.received["/hook"]) == 1


def test_rules_setting_and_logged_status_without_destinations(
    settings: Settings, engine: Engine
) -> None:
    config = settings.model_copy(update={"alert_rules": "hotspot"})
    run_id = seed_run(engine, problem_clusters(), global_flagged=True)
    rows = run_alerts(engine, run_id, config)
    assert [(r["kind"], r["cluster_id"], r["status"]) for r in rows] == [("hotspot", 0, "logged")]
    with pytest.raises(ValueError, match="unknown alert rule"):
        Settings(alert_rules="hotspot,typo")


def test_alert_history_api(settings: Settings, engine: Engine) -> None:
    run_id = seed_run(engine, problem_clusters(), global_flagged=True, run_id="run-api")
    run_alerts(engine, run_id, settings)
    with TestClient(create_app(settings)) as client:
        page = client.get("/api/v1/alerts", params={"limit": 3}).json()
        assert len(page["alerts"]) == 3 and page["next_cursor"]
        rest = client.get("/api/v1/alerts", params={"cursor": page["next_cursor"]}).json()
        assert rest["next_cursor"] is None
        every = page["alerts"] + rest["alerts"]
        assert [a["id"] for a in every] == sorted((a["id"] for a in every), reverse=True)
        assert {a["kind"] for a in every} == {"global_drift", "hotspot", "new_cluster", "drift"}
        assert all(a["run_id"] == "run-api" and a["delivery_status"] == "logged" for a in every)

        hot = client.get("/api/v1/alerts", params={"kind": "hotspot"}).json()["alerts"]
        assert [(a["kind"], a["cluster_id"]) for a in hot] == [("hotspot", 0)]
        assert client.get("/api/v1/alerts", params={"kind": "nope"}).status_code == 422
        assert client.get("/api/v1/alerts", params={"cursor": "x"}).status_code == 400
    with Session(engine) as session:
        assert len(session.scalars(select(Alert)).all()) == 4


def test_finish_run_matches_summarises_and_alerts_in_order(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    run_id = seed_run(engine, problem_clusters(), run_id="run-followup")
    with Session(engine) as session:
        assert finish_run(session, run_id, alert_settings(settings, receiver)) == []
    with Session(engine) as session:
        report = session.get(AnalysisRun, run_id).report  # type: ignore[union-attr]
        keys = {r.cluster_id: r.stable_key for r in session.scalars(select(RunCluster))}
    assert all(key and key.startswith("c-") for key in keys.values())
    assert all(c["summary"]["generated_by"] == "extractive" for c in report["clusters"])
    # The alert names the cluster by its summary's title, and is keyed by its stable key.
    hook = next(h for h in receiver.received["/hook"] if h["kind"] == "hotspot")
    assert 'cluster 0 "refund / charge"' in hook["message"]
    assert hook["stable_key"] == keys[0]
    assert len(report["alerts"]) == 3


def test_finish_run_survives_a_failing_step(settings: Settings, engine: Engine) -> None:
    run_id = seed_run(engine, problem_clusters()[:1], run_id="run-broken")
    with Session(engine) as session:
        run = session.get(AnalysisRun, run_id)
        assert run is not None
        run.report = {**run.report, "clusters": [{"id": "not-a-number"}]}
        session.commit()
    with Session(engine) as session:
        failed = finish_run(session, run_id, settings)
    assert failed == ["summaries", "alerts"]
    with Session(engine) as session:
        # Matching still happened and the run is intact.
        assert session.get(AnalysisRun, run_id) is not None
        assert session.scalars(select(RunCluster.stable_key)).one().startswith("c-")


def test_regressions_are_alerted_per_metric_most_severe_first(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    def moved(base: float, cur: float) -> Regression:
        return Regression(
            baseline=base, current=cur, ratio=cur / base, p_value=1e-6, q_value=1e-5,
            flagged=True, baseline_calls=4, current_calls=4,
        )  # fmt: skip

    slow = ClusterSeed(
        id=0,
        centroid=unit(1, 0),
        current=[("where is my order", "on its way")] * 4,
        baseline=[("where is my order", "on its way")] * 4,
        keywords=["order"],
        # 4 calls x (1 - 1/3) for latency; 4 x (1 - 1/1.5) for output length
        regressions={"output_tokens": moved(40, 60), "latency_ms": moved(150, 450)},
    )
    run_id = seed_run(engine, [slow, *problem_clusters()[3:]], run_id="run-r")
    rows = run_alerts(engine, run_id, alert_settings(settings, receiver))
    # The same cluster twice, one metric each: neither cools the other down.
    assert [(r["kind"], r["cluster_id"], r["status"]) for r in rows] == [
        ("regression", 0, "sent"),
        ("regression", 0, "sent"),
    ]
    hooks = receiver.received["/hook"]
    assert [h["metric"] for h in hooks] == ["latency_ms", "output_tokens"]
    assert hooks[0]["severity"] > hooks[1]["severity"] > 0
    assert hooks[0]["message"].startswith(
        'Regression in cluster 0 "order": median latency went from 150 ms to 450 ms (3.0x'
    )
    assert [a["kind"] for a in report_alerts(engine, run_id)] == ["regression", "regression"]
