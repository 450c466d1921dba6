"""``POST /api/v1/experiments`` end to end: the collector checks the request as the CLI does,
answers 202, runs the experiment in the background through its own gateway (the fake provider,
a fake judge) and reports progress, then the stored report; a variant may name a route."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.db.models import Experiment, ExperimentItem, Record
from llmscope.evaluate.experiments import liveness
from llmscope.evaluate.experiments.jobs import status
from llmscope.experiment_report import TEMPLATE_TEXT_MAX_BYTES
from llmscope.keys import create_key
from tests.conftest import free_port, start_cli_server, wait_for_http
from tests.evaluate.experiments.support import RUN_ID, V2
from tests.evaluate.experiments.world import N, World, rows, world

FIX = "Answer {{question}} with the refund policy in force today."
ROUTE = """
routes:
  - name: support-route
    task_type: llm/v1/chat
    destinations: [{name: support-chat, traffic_percentage: 100}]
"""


@contextmanager
def collector(w: World, tmp_path: Path, **env: Any) -> Iterator[TestClient]:
    settings = Settings(
        database_url=w.url, data_dir=tmp_path / "api", gateway_config=w.config, **env
    )
    with TestClient(create_app(settings)) as client:
        yield client


def follow(client: TestClient, experiment_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Every status read until the experiment is no longer running."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.get(f"/api/v1/experiments/{experiment_id}/status")
        assert got.status_code == 200, got.text
        seen.append(got.json())
        if seen[-1]["status"] != "running":
            return seen
        time.sleep(0.02)
    raise AssertionError(f"experiment still running after {timeout}s: {seen[-1]}")


def test_post_runs_in_the_background_reports_progress_then_the_report(
    seeded: str, tmp_path: Path
) -> None:
    running = world(seeded, tmp_path, delay=0.03, tail=ROUTE)
    with running as w, collector(w, tmp_path, experiment_concurrency=2) as client:
        options = client.get("/api/v1/experiments/options").json()
        assert {"name": "support", "version": "2", "text": V2} in options["templates"]
        assert [(e["name"], e["kind"]) for e in options["endpoints"]] == [
            ("support-chat", "endpoint"),
            ("judge", "endpoint"),
            ("support-route", "route"),
        ]  # the embeddings endpoint cannot answer a candidate
        assert [e["name"] for e in options["evaluators"]] == ["correctness", "refusal"]

        body = {
            "cluster_id": 0,
            "variants": [
                "template=support@2",
                {
                    "template_text": FIX,
                    "endpoint": "support-route",
                    "params": {"temperature": 0.2, "max_tokens": 50},
                },
            ],
        }
        started = client.post("/api/v1/experiments", json=body)
        assert started.status_code == 202, started.text
        head = started.json()
        assert head["status"] == "running" and head["run_id"] == RUN_ID
        assert head["done"] == 0 and head["total"] == 3 * N
        assert started.headers["location"] == f"/api/v1/experiments/{head['id']}/status"
        pending = client.get(f"/api/v1/experiments/{head['id']}")
        assert pending.status_code == 404 and "no finished experiment" in pending.text

        seen = follow(client, head["id"])
        assert seen[-1]["status"] == "done" and seen[-1]["done"] == 3 * N
        done = [s["done"] for s in seen]
        assert done == sorted(done) and any(0 < d < 3 * N for d in done)

        report = client.get(f"/api/v1/experiments/{head['id']}").json()
        assert report["records"] == N and report["status"] == "done"
        fixed, pasted = report["variants"]
        assert fixed["spec"] == "template=support@2" and fixed["verdict"] == "better"
        assert fixed["p_value"] < 0.01
        assert pasted["verdict"] == "better" and pasted["errors"] == 0
        assert pasted["spec"].startswith("template-text=")
        assert pasted["spec"].endswith(
            ",endpoint=support-route,param.temperature=0.2,param.max_tokens=50"
        )
        assert pasted["resolved"]["template_text"].startswith("Answer {{question}}")
    assert len(w.provider.requests) == 2 * N
    assert sum(r["body"].get("temperature") == 0.2 for r in w.provider.requests) == N
    replays = [
        c
        for c in rows(seeded, Record, Record.internal.is_(True))
        if c.tags and c.tags.get("llmscope.experiment") == head["id"]
    ]
    assert len(replays) == 2 * N
    routed = [c for c in replays if c.tags["llmscope.experiment.variant"] == "2"]
    assert {(c.route, c.endpoint) for c in routed} == {("support-route", "support-chat")}
    assert all(c.template_version.startswith("text-") for c in routed)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"cluster_id": 7, "variants": ["template=support@2"]}, "no cluster 7 in run run-exp-1"),
    ({"cluster_id": 0, "run": "run-nope", "variants": ["template=support@2"]}, "run-nope"),
    ({"cluster_id": 0, "variants": ["template=support@9"]}, "no template 'support@9'"),
    ({"cluster_id": 0, "variants": ["endpoint=missing"]}, "no endpoint or route 'missing'"),
    ({"cluster_id": 0, "variants": [{"endpoint": "embed"}]}, "is llm/v1/embeddings"),
    (
        {"cluster_id": 0, "variants": [{"template_text": "Dear {{customer}}: {{question}}"}]},
        "needs the variable 'customer'",
    ),
    (
        {"cluster_id": 0, "variants": ["template=support@2"], "evaluators": ["nope"]},
        "no evaluator 'nope'",
    ),
    ({"cluster_id": 0, "variants": [{"params": {"model": "x"}}]}, "'param.model' cannot be set"),
    # never sent once per record: NaN would go out as a bare NaN, 1e308 as a token limit
    (
        {"cluster_id": 0, "variants": ["param.temperature=NaN"]},
        "param.temperature: not a finite number",
    ),
    (
        {"cluster_id": 0, "variants": [{"params": {"max_tokens": 1e308}}]},
        "param.max_tokens: must be a whole number from 1 to 1,000,000",
    ),
    ({"cluster_id": 0, "variants": ["param.temperature=7"]}, "param.temperature: must be"),
]
SHAPE: list[tuple[dict[str, Any], str]] = [
    ({"cluster_id": 0, "variants": []}, "variants: List should have at least 1 item"),
    ({"cluster_id": 0, "variants": ["template=support@2"], "sample": 0}, "sample:"),
    ({"cluster_id": 0, "variants": [{"prompt": "x"}]}, "unknown field"),
]


def test_bad_requests_are_refused_naming_the_problem_and_nothing_is_called(
    seeded: str, tmp_path: Path
) -> None:
    with world(seeded, tmp_path) as w, collector(w, tmp_path) as client:
        for body, message in [*BAD, *SHAPE]:
            got = client.post("/api/v1/experiments", json=body)
            assert got.status_code == (400 if (body, message) in BAD else 422), (body, got.text)
            assert message in got.json()["message"], (body, got.json())
        missing = client.get("/api/v1/experiments/exp-nope/status")
        assert missing.status_code == 404 and "no experiment 'exp-nope'" in missing.text
        assert w.provider.requests == [] and w.judge.requests == []
    assert rows(seeded, Experiment) == []
    assert rows(seeded, Record, Record.internal.is_(True)) == []


def test_without_a_gateway_the_answer_says_how_to_enable_it(seeded: str, tmp_path: Path) -> None:
    settings = Settings(database_url=seeded, data_dir=tmp_path / "api")
    with TestClient(create_app(settings)) as client:
        got = client.post("/api/v1/experiments", json={"cluster_id": 0, "variants": ["x=1"]})
        assert got.status_code == 409 and "llmscope serve --config" in got.json()["message"]


def test_starting_an_experiment_needs_an_admin_key_once_keys_exist(
    seeded: str, tmp_path: Path
) -> None:
    engine = make_engine(seeded)
    with session_scope(make_sessionmaker(engine)) as session:
        read = create_key(session, name="reader", scope="read")
        admin = create_key(session, name="admin", scope="admin")
    engine.dispose()
    body = {"cluster_id": 0, "variants": ["template=support@2"], "sample": 3}
    with world(seeded, tmp_path) as w, collector(w, tmp_path) as client:
        assert client.post("/api/v1/experiments", json=body).status_code == 401
        refused = client.post(
            "/api/v1/experiments", json=body, headers={"Authorization": f"Bearer {read}"}
        )
        assert refused.status_code == 403 and "'admin'" in refused.text
        assert w.provider.requests == []
        started = client.post(
            "/api/v1/experiments", json=body, headers={"Authorization": f"Bearer {admin}"}
        )
        assert started.status_code == 202
        client.headers["Authorization"] = f"Bearer {read}"  # reading needs only read
        assert follow(client, started.json()["id"])[-1]["status"] == "done"
    assert len(w.provider.requests) == 3


def test_an_experiment_the_collector_stops_is_marked_failed_and_a_fifth_is_refused(
    seeded: str, tmp_path: Path
) -> None:
    body = {"cluster_id": 0, "variants": ["template=support@2"], "sample": 2}
    with world(seeded, tmp_path, delay=2.0) as w:
        with collector(w, tmp_path, experiment_concurrency=1) as client:
            started = [client.post("/api/v1/experiments", json=body) for _ in range(4)]
            assert [s.status_code for s in started] == [202] * 4
            busy = client.post("/api/v1/experiments", json=body)
            assert busy.status_code == 429 and "at most 4 at once" in busy.json()["message"]
            assert busy.headers["retry-after"] == "30"
        # the collector stopped while the replays waited on the slow provider
        with collector(w, tmp_path) as client:
            ended = [
                client.get(f"/api/v1/experiments/{s.json()['id']}/status").json() for s in started
            ]
    assert {(e["status"], e["error"]) for e in ended} == {("failed", "the collector stopped")}
    assert len(rows(seeded, Experiment)) == 4


@pytest.mark.e2e
def test_an_experiment_a_killed_collector_left_running_is_marked_failed(
    seeded: str, tmp_path: Path
) -> None:
    body = {"cluster_id": 0, "variants": ["template=support@2"], "sample": 2}
    with world(seeded, tmp_path, delay=5.0) as w, collector(w, tmp_path) as reader:
        port = free_port()
        killed = start_cli_server(
            ["serve", "--config", str(w.config), "--database-url", seeded, "--port", str(port)],
            env={"LLMSCOPE_DATA_DIR": str(tmp_path / "killed")},
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", killed)
            started = [
                httpx.post(f"http://127.0.0.1:{port}/api/v1/experiments", json=body, timeout=30)
                for _ in range(2)
            ]
            assert [s.status_code for s in started] == [202, 202]
        finally:
            killed.kill()  # no graceful stop: nothing marks its experiments
            killed.wait()
        first, second = (s.json()["id"] for s in started)
        assert {e.status for e in rows(seeded, Experiment)} == {"running"}
        # a status read by another collector finds the owner gone
        got = reader.get(f"/api/v1/experiments/{first}/status").json()
        assert got["status"] == "failed" and got["error"] == "the collector running it stopped"
        (left,) = rows(seeded, Experiment, Experiment.id == second)
        assert left.status == "running"  # not read yet
    # the next collector to start fails what the killed one left, before anything reads it
    with world(seeded, tmp_path) as w, collector(w, tmp_path):
        (left,) = rows(seeded, Experiment, Experiment.id == second)
        assert left.status == "failed" and left.finished_at is not None
        assert left.spec["error"] == "the collector running it stopped"


def test_a_running_experiment_of_another_host_fails_once_nothing_is_stored_for_the_timeout(
    seeded: str,
) -> None:
    start = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    elsewhere = {"what": "the collector", "host": "other-host/pid:[1]", "pid": 7, "started": "1"}
    engine = make_engine(seeded)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        for name, owner in [
            ("exp-far", elsewhere),
            ("exp-busy", elsewhere),
            ("exp-mine", liveness.me(liveness.COLLECTOR)),  # alive: never failed for slowness
            ("exp-old", None),  # stored before owners were: the timeout alone decides
        ]:
            session.add(
                Experiment(
                    id=name,
                    created_at=start,
                    run_id=RUN_ID,
                    cluster_id=0,
                    status="running",
                    spec={"owner": owner} if owner else {},
                    record_ids=[],
                )
            )
        session.flush()
        session.add(
            ExperimentItem(
                experiment_id="exp-busy",
                record_id="c0-0001",
                variant="1",
                variant_key="k",
                created_at=start + timedelta(minutes=10),
            )
        )
    assert liveness.sweep(factory, 900, start + timedelta(minutes=14)) == []
    later = start + timedelta(minutes=16)
    assert sorted(liveness.sweep(factory, 900, later)) == ["exp-far", "exp-old"]
    with factory() as session:
        found = {e.id: e for e in session.scalars(select(Experiment))}
        assert found["exp-far"].spec["error"] == (
            "the collector running it stopped: nothing stored for 900 s "
            "(LLMSCOPE_EXPERIMENT_STALE_S)"
        )
        assert found["exp-old"].spec["error"].startswith("the process running it stopped")
        assert found["exp-far"].finished_at == later
        assert found["exp-busy"].status == found["exp-mine"].status == "running"
        mine = status(session, "exp-mine", 900, start + timedelta(days=30))
        assert mine is not None and mine.status == "running"
    engine.dispose()


def test_the_api_never_reads_a_path_and_bounds_the_candidate_text(
    seeded: str, tmp_path: Path
) -> None:
    """A ``template-file`` gets one 400 whether its path exists, is secret, is endless or is
    missing; the candidate's text is bounded in UTF-8 bytes, not characters."""
    readable = tmp_path / "fix.txt"
    readable.write_text(FIX)
    paths = [readable, tmp_path / "missing.txt", "/proc/self/environ", "/dev/zero", "../../x"]
    at_bound = "Answer {{question}}. " + "x" * (TEMPLATE_TEXT_MAX_BYTES - 21)
    with world(seeded, tmp_path) as w, collector(w, tmp_path) as client:
        refused = [
            client.post(
                "/api/v1/experiments",
                json={"cluster_id": 0, "variants": [f"template-file={p},param.max_tokens=9"]},
            )
            for p in paths
        ]
        assert {(r.status_code, r.text) for r in refused} == {(400, refused[0].text)}
        message = refused[0].json()["message"]
        assert "template_text" in message and "never reads a path" in message
        as_part = client.post(
            "/api/v1/experiments",
            json={"cluster_id": 0, "variants": [{"template_file": str(readable)}]},
        )
        assert as_part.status_code == 422 and "template_file" in as_part.text
        # 70,000 characters (under any character cap) but 280,000 bytes of UTF-8
        big = client.post(
            "/api/v1/experiments",
            json={"cluster_id": 0, "variants": [{"template_text": "\U0001f600" * 70_000}]},
        )
        assert big.status_code == 422
        assert "template_text" in big.text and "larger than 256 KiB" in big.text
        assert w.provider.requests == []
        assert rows(seeded, Experiment) == []
        fits = client.post(
            "/api/v1/experiments",
            json={"cluster_id": 0, "sample": 1, "variants": [{"template_text": at_bound}]},
        )
        assert fits.status_code == 202, fits.text
        assert follow(client, fits.json()["id"])[-1]["status"] == "done"
    assert len(w.provider.requests) == 1
    assert all(FIX not in str(r["body"]) for r in w.provider.requests)
