"""End to end: summaries written by a (fake) LLM behind llmscope's own gateway.

``llmscope serve --config`` runs in a child process with an ``openai`` endpoint whose base URL
is the fake LLM; the summary step calls that gateway like any OpenAI client would, so the calls
are recorded, marked internal, and must never be analysed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.summaries import summarize_run
from llmscope.config import Settings
from llmscope.db.models import Record
from tests.analysis.http_fakes import FakeLLM, fake_llm
from tests.analysis.seeding import ClusterSeed, Down, seed_run, unit
from tests.conftest import free_port, start_cli_server, wait_for_http

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
        port = free_port()
        proc = start_cli_server(
            [
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
                "--database-url",
                settings.database_url,
            ],
            env={"LLMSCOPE_DATA_DIR": str(settings.data_dir)},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/health", proc)
            yield Stack(llm=llm, collector=base)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def internal_records(engine: Engine, expected: int, timeout: float = 20) -> list[Record]:
    """The gateway records off the request path: wait (bounded) until ``expected`` are stored."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            rows = list(session.scalars(select(Record).where(Record.endpoint == "summarizer")))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_summaries_through_the_gateway_are_recorded_as_internal(
    settings: Settings, engine: Engine, stack: Stack
) -> None:
    run_id = seed_run(
        engine,
        [
            ClusterSeed(
                id=0,
                centroid=unit(1, 0),
                current=[("Can I get a refund for my annual plan?", "Within 14 days.")] * 3,
                keywords=["refund", "plan"],
                hotspot_flagged=True,
                downs=[Down(0, ["outdated"], "it is 30 days now")],
            ),
            ClusterSeed(
                id=1,
                centroid=unit(0, 1),
                current=[("Dark mode?", "Yes.")] * 2,
                keywords=["dark", "mode"],
            ),
        ],
    )
    config = settings.model_copy(
        update={
            "summary_llm_url": f"{stack.collector}/v1",
            "summary_llm_model": "summarizer",
            "summary_timeout_s": 10.0,
        }
    )
    with Session(engine) as session:
        summaries = summarize_run(session, run_id, config)
        session.commit()

    assert len(stack.llm.requests) == 2
    assert stack.llm.requests[0]["body"]["model"] == "fake-model"  # the gateway's mapping
    for cid in (0, 1):
        assert summaries[cid]["generated_by"] == "llm:summarizer"
        assert summaries[cid]["title"] == f"Refund questions {cid}"

    rows = internal_records(engine, expected=2)
    assert len(rows) == 2
    assert all(r.internal and r.source == "gateway" for r in rows)
    assert any("it is 30 days now" in str(r.messages) for r in rows)
