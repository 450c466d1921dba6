"""The judge's daily token cap is on by default: records anyone with an ingest key sends over
REST cannot make the collector spend without bound on the paid judge endpoint."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from llmscope.app.server import create_app
from llmscope.collector.ingest.store import insert_records
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.db.models import Evaluation
from llmscope.schema import RecordIn, record_row
from tests.analysis.http_fakes import fake_llm
from tests.evaluate.evaluations.support import JUDGE, grade, write_config
from tests.evaluate.evaluations.test_online import ingest, verdicts

DEFAULT_CAP = 1_000_000


def spend_today(database_url: str, tokens: int) -> None:
    """Judge tokens already spent today, as an earlier verdict of the store records them."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight - now < timedelta(seconds=30):  # the test must not straddle two UTC days
        time.sleep((midnight - now).total_seconds() + 1)
    engine = make_engine(database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        record = RecordIn(id="judged-earlier", endpoint="support", prompt="q", response="a")
        insert_records(session, [record_row(record, source="api")])
        session.add(
            Evaluation(
                record_id="judged-earlier",
                evaluator="correctness",
                version="earlier",
                status="done",
                input_tokens=tokens,
                output_tokens=0,
            )
        )
    engine.dispose()


def test_rest_records_are_not_judged_past_the_default_daily_cap(
    settings: Settings, tmp_path: Path
) -> None:
    spend_today(settings.database_url, DEFAULT_CAP - 100)  # less than one judge call left
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        settings = settings.model_copy(update={"gateway_config": config})
        with TestClient(create_app(settings)) as client:
            record = {"id": "sent-over-rest", "endpoint": "support", "prompt": "Can I return?"}
            ingest(client, [{**record, "response": "Yes, within 30 days."}])
            time.sleep(5)  # the online judge reads records 2 s after they arrive
            assert judge.requests == []
            answer = client.get("/api/v1/records/sent-over-rest").json()
            assert answer["evaluations"] == []
    assert [v.record_id for v in verdicts(settings.database_url)] == ["judged-earlier"]
    assert settings.eval_max_tokens_per_day == DEFAULT_CAP  # the default the docs state
