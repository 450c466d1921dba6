"""``scope: session`` judges: a whole conversation judged once it is idle, once per session
and version, the verdict stored on the session's first record; in ``llmscope evaluate``'s
range and online under ``serve``."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from llmscope.app.server import create_app
from llmscope.collector.gateway.config import ConfigError, load_config, parse_config
from llmscope.collector.gateway.service import Gateway
from llmscope.collector.ingest import Recorder, RecordWriter
from llmscope.collector.masking import sessionmaker_for
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import Record
from llmscope.evaluate.evaluations.runner import Judging, evaluate_range
from tests.analysis.http_fakes import fake_llm
from tests.evaluate.evaluations.support import START, seed, write_config
from tests.evaluate.evaluations.test_online import ingest, verdicts, wait_until

NOW = START + timedelta(hours=6)

SESSION_JUDGE = """  - name: resolved
    type: llm_judge
    scope: session
    idle_seconds: {idle}
    endpoint: judge
    definition: Whether the conversation ended with the user's problem solved.
    grading_prompt: Score 1 when the assistant gave an outdated policy at any turn, else 5.
"""
RECORD_JUDGE = """  - name: correctness
    type: llm_judge
    endpoint: judge
    definition: Whether the answer states the policy in force today.
    grading_prompt: Score 1 when the answer states an outdated policy, 5 when correct.
"""


def conversation(body: dict[str, Any]) -> str:
    """The conversation a session judge was shown (its user message)."""
    text = body["messages"][-1]["content"]
    assert text.startswith("Conversation:\n"), text[:80]
    return str(text)


def grade_conversation(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if content.startswith("Conversation:") and "outdated" in content:
        return json.dumps({"score": 1, "justification": "An outdated policy at one turn."})
    return json.dumps({"score": 5, "justification": "Solved."})


def turns(session_id: str, answers: list[str], start_minute: int) -> list[dict[str, Any]]:
    """One session's records, a minute apart, listed newest first (order must not matter)."""
    out = []
    for i, answer in enumerate(answers):
        out.append(
            {
                "id": f"{session_id}-{i}",
                "timestamp": (START + timedelta(minutes=start_minute + i)).isoformat(),
                "endpoint": "support-chat",
                "model": "gpt-4o-mini",
                "session_id": session_id,
                "messages": [{"role": "user", "content": f"{session_id} question {i}"}],
                "response": answer,
            }
        )
    return out[::-1]


def received(url: str, ids: list[str], when: Any) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(Record).where(Record.id.in_(ids)).values(received_at=when))
    engine.dispose()


async def run_range(settings: Settings, config: Path) -> Any:
    """``llmscope evaluate``'s work in process, with its clock at ``NOW``."""
    engine = make_engine(settings.database_url)
    factory = sessionmaker_for(engine, settings)
    recorder = Recorder(factory, spool_dir=settings.data_dir / "spool")
    recorder.start()
    gateway = Gateway(config, RecordWriter.from_settings(settings, recorder))
    await gateway.start()
    try:
        judging = Judging(factory, gateway, concurrency=4, clock=lambda: NOW)
        return await evaluate_range(judging, list(gateway.config.evaluators))
    finally:
        await gateway.stop()
        recorder.stop()
        engine.dispose()


def test_idle_sessions_are_judged_once_whole_and_in_order(
    settings: Settings, tmp_path: Path
) -> None:
    url = settings.database_url
    seed(url, turns("bad", ["Refunds: 30 days.", "That was the outdated 2025 policy.", "Ok."], 0))
    seed(url, turns("good", ["Refunds: 30 days.", "Yes, by card."], 10))
    seed(url, turns("busy", ["Refunds: 30 days.", "outdated policy"], 20))
    seed(url, [{**turns("alone", ["Refunds: 30 days."], 30)[0], "session_id": None}])
    received(url, ["bad-0", "bad-1", "bad-2", "good-0", "good-1"], NOW - timedelta(hours=1))
    received(url, ["busy-0"], NOW - timedelta(hours=1))
    received(url, ["busy-1"], NOW - timedelta(seconds=30))  # its last turn is 30 s old
    with fake_llm(default=grade_conversation) as judge:
        config = write_config(
            tmp_path / "gw.yaml", judge.url, SESSION_JUDGE.format(idle=600) + RECORD_JUDGE
        )
        result = asyncio.run(run_range(settings, config))
        asked = [r["body"] for r in judge.requests]
        shown = [conversation(b) for b in asked if b["messages"][-1]["content"].startswith("Conv")]
        # two idle sessions, one request each; the busy one waits; "alone" has no session
        assert len(shown) == 2
        bad = next(text for text in shown if "bad question 0" in text)
        order = [bad.index(f"bad question {i}") for i in range(3)]
        assert order == sorted(order)
        assert "That was the outdated 2025 policy." in bad
        assert all("busy question" not in text for text in shown)
        rows = {r.record_id: r for r in verdicts(url, "resolved")}
        assert set(rows) == {"bad-0", "good-0"}  # on each session's first record
        assert rows["bad-0"].passed is False and rows["good-0"].passed is True
        assert result.tally("resolved").evaluated == 2
        # the record judge still judges records one by one (8 answers), never a session
        assert result.tally("correctness").evaluated == 8
        # a second run finds nothing to do and asks nothing
        before = len(judge.requests)
        again = asyncio.run(run_range(settings, config))
        assert len(judge.requests) == before
        assert again.tally("resolved").already == 2 and again.tally("resolved").evaluated == 0


@pytest.mark.slow
def test_serve_judges_a_session_once_it_has_gone_quiet(settings: Settings, tmp_path: Path) -> None:
    with fake_llm(default=grade_conversation) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, SESSION_JUDGE.format(idle=2))
        settings = settings.model_copy(update={"gateway_config": config})
        with TestClient(create_app(settings)) as client:
            ingest(client, turns("chat-a", ["Refunds: 30 days.", "outdated policy"], 0))
            ingest(client, turns("chat-b", ["Refunds: 30 days."], 5))
            wait_until(lambda: len(verdicts(settings.database_url, "resolved")) == 2, 60)
            rows = {r.record_id: r.passed for r in verdicts(settings.database_url, "resolved")}
            assert rows == {"chat-a-0": False, "chat-b-0": True}
            assert len(judge.requests) == 2
            # a late turn does not reopen a judged session: nothing more is asked
            ingest(client, turns("chat-b", ["late"], 50)[:1])
            time.sleep(4)
            assert len(judge.requests) == 2
            record = client.get("/api/v1/records/chat-a-0").json()
            assert [e["evaluator"] for e in record["evaluations"]] == ["resolved"]


def test_scope_config_and_version(tmp_path: Path) -> None:
    base = {
        "endpoints": [
            {
                "name": "judge",
                "endpoint_type": "llm/v1/chat",
                "model": {"provider": "offline", "name": "j"},
            }
        ],  # fmt: skip
    }
    judge = yaml.safe_load(RECORD_JUDGE)[0]
    plain = parse_config({**base, "evaluators": [judge]}).evaluators[0]
    record = parse_config({**base, "evaluators": [{**judge, "scope": "record"}]}).evaluators[0]
    session = parse_config({**base, "evaluators": [{**judge, "scope": "session"}]}).evaluators[0]
    assert plain.version == record.version  # the field's arrival re-judges nothing
    assert session.version != record.version  # another question, another verdict
    quicker = {**judge, "scope": "session", "idle_seconds": 60}
    assert parse_config({**base, "evaluators": [quicker]}).evaluators[0].version == session.version
    bad = [
        ({**judge, "scope": "trace"}, "scope"),
        ({**judge, "scope": "session", "idle_seconds": 0}, "idle_seconds"),
        ({"name": "short", "type": "length", "max_words": 3, "scope": "session"}, "scope"),
    ]
    for evaluator, field in bad:
        path = tmp_path / "gw.yaml"
        path.write_text(yaml.safe_dump({**base, "evaluators": [evaluator]}), encoding="utf-8")
        with pytest.raises(ConfigError, match=field):
            load_config(path)
