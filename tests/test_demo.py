"""``llmscope demo`` end to end: replay, analysis, and the planted events found by the run.

The demo runs as a real child process (collector and gateway in its own child) on a temporary
SQLite store; the run report is then read back through ``GET /api/v1/analysis/runs/latest``
of a fresh collector on the same store, and the records from the store itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.db import make_engine
from llmscope.db.models import Feedback, Record
from tests.conftest import cli_server

RECORDS = 1200  # the smallest size at which the planted effects are far beyond chance
# The story is pinned: the same plan and the same fortnight on any day the test runs.
SEED = 7
NOW = "2026-11-27T12:00:00Z"


def _user_text(record: Record) -> str:
    return " ".join(m["content"] for m in record.messages or [] if m.get("role") == "user")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the demo once; the outputs every test below looks at."""
    home = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{home / 'demo.db'}"
    env = {**os.environ, "LLMSCOPE_DATA_DIR": str(home / "data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "llmscope", "demo", "--records", str(RECORDS), "--no-dashboard"]
        + ["--seed", str(SEED), "--now", NOW, "--database-url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with cli_server(
        ["serve", "--database-url", url], env={"LLMSCOPE_DATA_DIR": str(home / "data")}
    ) as base:
        answer = httpx.get(f"{base}/api/v1/analysis/runs/latest", timeout=30)
    assert answer.status_code == 200, answer.text
    engine = make_engine(url)
    with Session(engine) as session:
        records = {r.id: r for r in session.scalars(select(Record))}
        feedback = list(session.scalars(select(Feedback)))
    engine.dispose()
    return {"out": done.stdout, "report": answer.json(), "records": records, "feedback": feedback}


def test_every_call_went_through_the_offline_gateway_with_its_history(
    demo_run: dict[str, Any],
) -> None:
    records: dict[str, Record] = demo_run["records"]
    assert len(records) == RECORDS
    assert {r.source for r in records.values()} == {"gateway"}
    assert {r.provider for r in records.values()} == {"offline"}
    assert all((r.tags or {}).get("llmscope.offline") == "true" for r in records.values())
    assert {r.endpoint for r in records.values()} == {"support-chat", "support-chat-large"}
    stamps = sorted(r.timestamp for r in records.values())
    assert stamps[-1] - stamps[0] > timedelta(days=12)  # two weeks replayed, not "now"
    assert stamps[-1] <= datetime.fromisoformat(NOW)  # the pinned end of the fortnight
    versions = {(r.template_name, r.template_version) for r in records.values()}
    assert ("refund-policy", "2") in versions and ("refund-policy", "3") in versions
    thumbs = {f.thumb for f in demo_run["feedback"]}
    assert thumbs == {"up", "down"}
    assert all(f.record_id in records for f in demo_run["feedback"])
    assert "offline provider" in demo_run["out"].lower()


def test_the_new_topic_is_flagged(demo_run: dict[str, Any]) -> None:
    records: dict[str, Record] = demo_run["records"]
    gift = [
        c
        for c in demo_run["report"]["clusters"]
        if c["drift"]["flagged"]
        and c["drift"]["kind"] in {"new", "grew"}
        and sum("gift card" in _user_text(records[i]).lower() for i in c["examples"])
        > len(c["examples"]) / 2
    ]
    assert gift, [(c["keywords"][:3], c["drift"]) for c in demo_run["report"]["clusters"]]
    # Gift cards only exist in the current window: nearly all of the cluster is new traffic.
    assert sum(c["current_count"] for c in gift) > 5 * sum(c["baseline_count"] for c in gift)


def test_the_thumbs_down_template_version_is_flagged(demo_run: dict[str, Any]) -> None:
    report = demo_run["report"]
    hot = [
        c
        for c in report["clusters"]
        if c["hotspot"]["flagged"] and c["templates"].get("refund-policy@3", 0) > 0
    ]
    assert hot, [(c["keywords"][:3], c["hotspot"], c["templates"]) for c in report["clusters"]]
    for c in hot:  # the hotspots are the refund-policy clusters, not some other topic
        refund = sum(n for t, n in c["templates"].items() if t.startswith("refund-policy@"))
        assert refund > sum(c["templates"].values()) / 2
    (ab,) = [
        v
        for v in report["template_versions"]
        if (v["template"], v["version"]) == ("refund-policy", "3")
    ]
    assert ab["against"] == "2"
    assert ab["down_q_value"] < 0.001 and ab["down_rate"] > 3 * ab["against_down_rate"]
    out = demo_run["out"]
    assert "Look first at cluster" in out and "refund-policy@3" in out
