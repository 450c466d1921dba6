"""Test helpers for evaluations: a fake judge's behaviours, a gateway YAML, seeded records."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llmscope.collector.ingest.store import insert_records
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.schema import RecordIn, record_row

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def answer_of(body: dict[str, Any]) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][0]
    return user.split("Output:\n", 1)[1].rsplit("\n\nGrade the output.", 1)[0]


def grade(body: dict[str, Any]) -> str:
    """A judge that fails answers stating the outdated policy, and passes the rest."""
    if "outdated" in answer_of(body):
        return json.dumps({"score": 1, "justification": "It states the outdated 2025 policy."})
    return json.dumps({"score": 5, "justification": "Correct and current."})


def garbage(_body: dict[str, Any]) -> str:
    return "I think this answer is pretty good overall!"


def slow_grade(seconds: float):  # type: ignore[no-untyped-def]
    def behaviour(body: dict[str, Any]) -> str:
        time.sleep(seconds)
        return grade(body)

    return behaviour


def write_config(
    path: Path,
    judge_url: str,
    evaluators: str,
    *,
    timeout_seconds: float = 10,
    max_retries: int = 0,
) -> Path:
    path.write_text(
        f"""
endpoints:
  - name: judge
    endpoint_type: llm/v1/chat
    timeout_seconds: {timeout_seconds}
    max_retries: {max_retries}
    model:
      provider: openai
      name: judge-model
      config: {{openai_api_key: sk-test-judge, openai_api_base: "{judge_url}"}}
evaluators:
{evaluators}
""",
        encoding="utf-8",
    )
    return path


JUDGE = """  - name: correctness
    type: llm_judge
    endpoint: judge
    definition: Whether the answer states the policy in force today.
    grading_prompt: Score 1 when the answer states an outdated or wrong policy, 5 when correct.
    examples:
      - {input: "Can I return shoes?", output: "Yes, within 30 days.", score: 5}
    pass_threshold: 3
"""


def seed(url: str, records: Sequence[dict[str, Any]]) -> list[str]:
    """Store ``records`` (API-shaped dicts) directly; returns their ids."""
    engine = make_engine(url)
    rows = [record_row(RecordIn.model_validate(r)) for r in records]
    with session_scope(make_sessionmaker(engine)) as session:
        insert_records(session, rows)
    engine.dispose()
    return [row["id"] for row in rows]


def support_records(n: int, *, outdated_every: int = 0, prefix: str = "r") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        bad = outdated_every and i % outdated_every == 0
        out.append(
            {
                "id": f"{prefix}-{i:05d}",
                "timestamp": (START + timedelta(minutes=i)).isoformat(),
                "endpoint": "support-chat",
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Can I get a refund? ({i})"}],
                "response": "Refunds follow the outdated 2025 policy: 14 days."
                if bad
                else "You can get a refund within 30 days of delivery.",
                "latency_ms": 400.0 + i,
            }
        )
    return out
