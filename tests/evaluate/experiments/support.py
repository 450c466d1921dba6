"""Test helpers for experiments: a gateway YAML with two template versions, a seeded cluster.

Production rendered ``support@1``, whose text tells the model to cite the outdated 2025 policy;
the fake provider echoes the prompt, so every answer in the cluster mentions "outdated" and the
fake judge (``tests.evaluate.evaluations.support.grade``) fails it. ``support@2`` is the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llmscope.collector.ingest.store import insert_records
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.db.models import AnalysisRun, Feedback, RunAssignment, RunCluster
from llmscope.schema import RecordIn, record_row
from tests.collector.gateway.fake_provider import OPENAI_KEY
from tests.evaluate.evaluations.support import JUDGE

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RUN_ID = "run-exp-1"
V1 = "Answer the customer question {{question}} with the outdated 2025 refund policy."
V2 = "Answer the customer question {{question}} with the refund policy in force today."


def write_config(path: Path, app_url: str, judge_url: str, extra_prompts: str = "") -> Path:
    path.write_text(
        f"""
endpoints:
  - name: support-chat
    endpoint_type: llm/v1/chat
    max_retries: 0
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: {OPENAI_KEY}, openai_api_base: "{app_url}/v1"}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model:
      provider: openai
      name: text-embedding-3-small
      config: {{openai_api_key: {OPENAI_KEY}, openai_api_base: "{app_url}/v1"}}
  - name: judge
    endpoint_type: llm/v1/chat
    max_retries: 0
    model:
      provider: openai
      name: judge-model
      config: {{openai_api_key: sk-test-judge, openai_api_base: "{judge_url}"}}
prompts:
  - {{name: support, version: 1, text: "{V1}"}}
  - {{name: support, version: 2, text: "{V2}"}}
{extra_prompts}
evaluators:
{JUDGE}  - {{name: refusal, type: refusal}}
""",
        encoding="utf-8",
    )
    return path


def cluster_records(n: int, *, prefix: str = "c0", version: str = "1") -> list[dict[str, Any]]:
    """Production calls rendered from ``support@version``, answered as the fake would."""
    text = V1 if version == "1" else V2
    out = []
    for i in range(n):
        question = f"can I return item {prefix}-{i}?"
        rendered = text.replace("{{question}}", question)
        out.append(
            {
                "id": f"{prefix}-{i:04d}",
                "timestamp": (START + timedelta(minutes=i)).isoformat(),
                "endpoint": "support-chat",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": rendered}],
                "response": f"Echo: {rendered}",
                "template": {
                    "name": "support",
                    "version": version,
                    "variables": {"question": question},
                },
                "input_tokens": 20,
                "output_tokens": 21,
                "latency_ms": 300.0 + i,
            }
        )
    return out


def seed_run(
    url: str, clusters: dict[int, list[dict[str, Any]]], thumbs_down: list[str] = ()
) -> None:  # type: ignore[assignment]
    """Store the records and an analysis run assigning them to ``clusters``."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    rows = [record_row(RecordIn.model_validate(r)) for recs in clusters.values() for r in recs]
    with session_scope(factory) as session:
        insert_records(session, rows)
    with session_scope(factory) as session:
        session.add(
            AnalysisRun(
                id=RUN_ID,
                created_at=START + timedelta(days=1),
                baseline_start=START - timedelta(days=7),
                baseline_end=START,
                current_start=START,
                current_end=START + timedelta(days=1),
                params={},
                report={},
            )
        )
        session.flush()
        for cid, recs in clusters.items():
            session.add(
                RunCluster(run_id=RUN_ID, cluster_id=cid, size=len(recs), keywords=[], stats={})
            )
            for r in recs:
                session.add(
                    RunAssignment(
                        run_id=RUN_ID,
                        record_id=r["id"],
                        cluster_id=cid,
                        window="current",
                        x=0.0,
                        y=0.0,
                    )
                )
        for rid in thumbs_down:
            session.add(
                Feedback(record_id=rid, thumb="down", created_at=START + timedelta(hours=2))
            )
    engine.dispose()
