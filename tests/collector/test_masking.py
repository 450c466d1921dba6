"""With ``LLMSCOPE_REDACT_PII=true`` nothing the collector writes keeps PII: records, judges'
justifications and errors, experiments' answers, verdicts, spec and report (a candidate
template's text). Planted in what a fake judge answers and in an experiment's candidate
template (which the fake provider echoes into every answer), none of it is stored, served or
exported unmasked; and every text column of the store is either masked or named as not content.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import JSON, Text, select

import llmscope.collector
from llmscope.app.cli import main
from llmscope.app.server import create_app
from llmscope.collector.masking import CONTENT
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import Base, Evaluation
from tests.evaluate.evaluations.support import answer_of
from tests.evaluate.experiments.support import cluster_records, seed_run
from tests.evaluate.experiments.world import N, world

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"  # passes the Luhn check
SECRET = "sk-proj-Q7x9Lm2Np4Rs6Tv8Wy0Zb3"
NEEDLES = (EMAIL, CARD, SECRET)
PII = f"write to {EMAIL}, card {CARD}, key {SECRET}"
CANDIDATE = "Answer {{question}} with today's refund policy; escalations: " + PII

# Columns of text or JSON that hold no one's words, and why.
NOT_CONTENT = {
    "records.tools": "the names of the tools a request offered",
    "experiments.record_ids": "record ids",
    "records.links": "the ids of the records merged into this one",
    "records.inherited": "the names of the columns taken from merged records",
    # written by the analysis from stored records (masked on the way in), not by the collector
    "analysis_runs.params": "run parameters",
    "analysis_runs.report": "figures, keywords and summaries of stored records",
    "run_clusters.keywords": "words of stored records",
    "run_clusters.stats": "figures",
    "run_clusters.summary": "a summary of stored records",
    "summaries.summary": "a summary of stored records",
    "alerts.message": "a finding, in words",
    "alerts.delivery": "the webhook's answer",
}


def test_every_text_column_is_masked_or_named_as_not_content() -> None:
    masked = {f"{table.__tablename__}.{c}" for table, cols in CONTENT.items() for c in cols}
    unnamed = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, Text | JSON)
        and f"{table.name}.{column.name}" not in masked | set(NOT_CONTENT)
    ]
    assert unnamed == [], "new content columns: add them to masking.CONTENT or NOT_CONTENT"


def test_the_collector_makes_its_sessions_only_through_the_masking_rule() -> None:
    # so a new write path cannot get a session that skips masking
    root = Path(llmscope.collector.__file__).parent
    makes = re.compile(r"make_sessionmaker|(?<![.\w])sessionmaker\(")
    offenders = [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*.py"))
        if path.name != "masking.py" and makes.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def quoting_judge(body: dict[str, Any]) -> str:
    """A judge that quotes what it grades, adds an address of its own, and answers garbage
    (twice: the verdict's error holds its text) for the records of cluster 1."""
    answer = answer_of(body)
    if "c1-" in answer:
        return f"Cannot grade this. Questions to {EMAIL}."
    score = 5 if "outdated" not in answer else 1
    return json.dumps({"score": score, "justification": f"It says: {answer[:400]} ({PII})"})


def wait_until(condition: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def store_dump(url: str) -> str:
    """Every value of every row of every table, as text."""
    engine = make_engine(url)
    parts = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    engine.dispose()
    return "\n".join(parts)


def judged(url: str) -> int:
    """Verdicts of the LLM judge (the built-in check's are stored at once)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        done = select(Evaluation.id).where(
            Evaluation.evaluator == "correctness", Evaluation.status != "pending"
        )
        count = len(conn.execute(done).all())
    engine.dispose()
    return count


def assert_masked(text: str, where: str) -> None:
    found = [needle for needle in NEEDLES if needle in text]
    assert found == [], f"unmasked in {where}: {found}"
    assert "[EMAIL]" in text, f"nothing masked in {where}: the test saw none of its content"


def test_judges_and_experiments_store_serve_and_export_nothing_unmasked(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded = database_url
    seed_run(seeded, {0: cluster_records(N), 1: cluster_records(5, prefix="c1", version="2")})
    with world(seeded, tmp_path) as w:
        w.judge.default = quoting_judge
        settings = Settings(
            database_url=seeded, data_dir=tmp_path / "api", gateway_config=w.config
        ).model_copy(update={"redact_pii": True})
        with TestClient(create_app(settings)) as client:
            # online judging of the seeded records (the collector's correctness judge)
            wait_until(lambda: judged(seeded) == N + 5)
            body = {"cluster_id": 0, "variants": [{"template_text": CANDIDATE}]}
            started = client.post("/api/v1/experiments", json=body)
            assert started.status_code == 202, started.text
            experiment = started.json()["id"]
            wait_until(
                lambda: (
                    client.get(f"/api/v1/experiments/{experiment}/status").json()["status"]
                    != "running"
                )
            )
            report = client.get(f"/api/v1/experiments/{experiment}")
            assert report.status_code == 200, report.text
            served = [report.text]
            served += [client.get(f"/api/v1/records/c0-{i:04d}").text for i in range(3)]
            served += [client.get("/api/v1/records/c1-0000").text]
    # the PII did reach the judge and the provider: what kept it out of the store is masking
    assert any(EMAIL in json.dumps(r["body"]) for r in w.provider.requests)
    assert_masked(store_dump(seeded), "the store")
    assert_masked("\n".join(served), "the API's answers")
    verdicts = {e["evaluator"]: e for e in json.loads(served[-1])["evaluations"]}
    assert "[EMAIL]" in verdicts["correctness"]["error"]  # the judge's garbage, masked
    assert main(["experiment", "export", "--experiment", experiment, "--database-url", seeded]) == 0
    assert_masked(capsys.readouterr().out, "the experiment's export")
