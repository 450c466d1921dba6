"""End to end: summaries written by a (fake) LLM behind llmscope's own gateway.

``llmscope serve --config`` runs in a child process with an ``openai`` endpoint whose base URL
is the fake LLM; the summary step calls that gateway like any OpenAI client would, so the calls
are recorded, marked internal, and must never be analysed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.job import run_analysis
from llmscope.app.demo.bank import TOPICS, ask
from llmscope.config import Settings
from llmscope.db.models import Feedback, Record, RunAssignment, RunCluster
from tests.analysis.http_fakes import FakeLLM, fake_llm, webhook_receiver
from tests.conftest import cli_server

pytestmark = pytest.mark.e2e

GATEWAY_YAML = """
endpoints:
  - name: summarizer
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: fake-model
      config:
        openai_api_key: sk-test-not-a-secret
        openai_api_base: {llm_url}
"""


@dataclass
class Stack:
    llm: FakeLLM
    collector: str  # base URL of `llmscope serve`


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with fake_llm() as llm:
        config = tmp_path / "gateway.yaml"
        config.write_text(GATEWAY_YAML.format(llm_url=llm.url))
        with cli_server(
            ["serve", "--config", str(config), "--database-url", settings.database_url],
            env={"LLMSCOPE_DATA_DIR": str(settings.data_dir)},
        ) as base:
            yield Stack(llm=llm, collector=base)


def internal_records(engine: Engine, expected: int, timeout: float = 20) -> list[Record]:
    """The gateway records off the request path: wait (bounded) until ``expected`` are stored."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            rows = list(session.scalars(select(Record).where(Record.endpoint == "summarizer")))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def plant_traffic(engine: Engine, now: datetime) -> set[str]:
    """Support traffic with two planted problems; returns the record ids.

    Login, tracking and refunds questions in both windows; gift-card questions only in the
    current one (a new cluster); refunds answers get thumbs-down now (a hotspot).
    """
    rng = random.Random(11)
    topics = {t.key: t for t in TOPICS}
    plan = [(key, "baseline", 32) for key in ("login", "tracking", "refunds")]
    plan += [(key, "current", 32) for key in ("login", "tracking", "refunds", "gift_cards")]
    ids: set[str] = set()
    feedback: list[Feedback] = []
    with Session(engine) as session:
        for key, window, count in plan:
            for i in range(count):
                record_id = f"{key}-{window}-{i}"
                ids.add(record_id)
                hours = rng.uniform(1, 20) if window == "current" else rng.uniform(30, 150)
                session.add(
                    Record(
                        id=record_id,
                        timestamp=now - timedelta(hours=hours),
                        endpoint="support",
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": ask(topics[key], rng)}],
                        response=f"Here is how {topics[key].label} works.",
                        latency_ms=rng.uniform(300, 900),
                    )
                )
                if window == "current" and i < 24:
                    down = key == "refunds"
                    feedback.append(
                        Feedback(
                            record_id=record_id,
                            thumb="down" if down else "up",
                            score=0.0 if down else 1.0,
                            tags=["outdated"] if down else [],
                            comment="the refund window is 30 days now" if down else None,
                        )
                    )
        session.flush()  # records first: feedback refers to them
        session.add_all(feedback)
        session.commit()
    return ids


def test_analysis_run_summarises_through_the_gateway_and_ignores_its_own_calls(
    settings: Settings, engine: Engine, stack: Stack
) -> None:
    now = datetime.now(UTC) + timedelta(minutes=5)  # the gateway stamps its records "now"
    planted = plant_traffic(engine, now)
    with webhook_receiver() as receiver:
        config = settings.model_copy(
            update={
                "summary_llm_url": f"{stack.collector}/v1",
                "summary_llm_model": "summarizer",
                "alert_webhook_url": SecretStr(f"{receiver.url}/hook"),
                "cluster_min_size": 8,
            }
        )
        report = run_analysis(config, now=now, progress=False).to_json()

        calls = len(stack.llm.requests)
        flagged = [
            c for c in report["clusters"] if c["hotspot"]["flagged"] or c["drift"]["flagged"]
        ]
        kinds = {(a["kind"]) for a in report["alerts"]}
        assert {"hotspot", "new_cluster"} <= kinds, report["alerts"]
        assert flagged and calls >= len(flagged)
        for cluster in flagged:
            summary = cluster["summary"]
            assert summary["generated_by"] == "llm:summarizer"
            assert summary["title"] == f"Refund questions {cluster['id']}"
        hot = next(c for c in report["clusters"] if c["hotspot"]["flagged"])
        hot_prompt = next(
            r["body"]["messages"][1]["content"]
            for r in stack.llm.requests
            if f"Cluster {hot['id']} (" in r["body"]["messages"][1]["content"]
        )
        assert "the refund window is 30 days now" in hot_prompt
        with Session(engine) as session:
            stored = {
                c.cluster_id: c.summary
                for c in session.scalars(
                    select(RunCluster).where(RunCluster.run_id == report["run_id"])
                )
            }
        assert stored == {c["id"]: c["summary"] for c in report["clusters"]}
        assert len(receiver.received["/hook"]) == len(report["alerts"])

        # The summary calls went through the gateway and were recorded as internal ...
        internal = internal_records(engine, expected=calls)
        assert len(internal) == calls
        assert all(r.internal and r.source == "gateway" for r in internal)
        assert any("the refund window is 30 days now" in str(r.messages) for r in internal)
        assert stack.llm.requests[0]["body"]["model"] == "fake-model"  # the gateway's mapping
        # ... and the next run, whose current window holds them, leaves them out.
        again = run_analysis(config, now=now, progress=False).to_json()
        with Session(engine) as session:
            analysed = set(
                session.scalars(
                    select(RunAssignment.record_id).where(RunAssignment.run_id == again["run_id"])
                )
            )
        assert analysed == planted
        # Same findings inside the cooldown: nothing new is sent.
        assert again["alerts"] == []
        assert len(receiver.received["/hook"]) == len(report["alerts"])
