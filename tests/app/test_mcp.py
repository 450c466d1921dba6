"""The MCP server, driven by the official SDK's own client: ``llmscope mcp`` on stdio over a
seeded store, and ``/mcp`` of a real ``llmscope serve`` behind API keys.

Every answer is checked against the store (the seeded run's report, the records and their
newest feedback read back independently), not against the tools' own code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db.models import AnalysisRun, Record
from llmscope.db.queries import newest_thumbs
from llmscope.keys import create_key
from llmscope.report import TemplateVersionRow
from llmscope.text import conversation_text
from tests.conftest import cli_server
from tests.dashboard.seed import (
    NOW,
    XSS_PROMPT,
    XSS_RECORD_ID,
    SeededStore,
    add_rows,
    plain_record,
    seed_store,
)
from tests.dashboard.test_experiments_page import seed_experiment

TOOLS = {
    "latest_findings",
    "list_clusters",
    "cluster_evidence",
    "get_record",
    "search_records",
    "list_experiments",
    "experiment_report",
}
# A chat record whose question JSON escapes: quotes and non-ASCII letters.
QUOTED = 'Warum sagt der Export "Grüße" statt der Summe?'
QUOTED_ID = "rec-quoted"
# The template test the seeded report lacks: the problem cluster's version against the last.
TEMPLATE_TEST = TemplateVersionRow(
    template="support",
    version="3",
    against="2",
    down_rate=0.83,
    against_down_rate=0.1,
    down_p_value=0.001,
    down_q_value=0.004,
    records=14,
    against_records=90,
)


def _seed(engine: Engine) -> SeededStore:
    seeded = seed_store(engine, records=240)
    report = seeded.report.model_copy(update={"template_versions": [TEMPLATE_TEST]})
    with engine.begin() as conn:
        conn.execute(
            update(AnalysisRun)
            .where(AnalysisRun.id == seeded.run_id)
            .values(report=report.to_json())
        )
    seeded.report = report
    add_rows(
        engine,
        [
            plain_record(
                QUOTED_ID,
                NOW - timedelta(hours=3),
                prompt=None,
                messages=[{"role": "user", "content": QUOTED}],
            )
        ],
    )
    seed_experiment(engine)
    return seeded


@asynccontextmanager
async def _stdio(database_url: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "llmscope", "mcp", "--database-url", database_url]
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _content(result: CallToolResult) -> dict[str, Any]:
    assert not result.isError, result.content
    # The text content is the same JSON as the structured content (older clients read it).
    assert result.content[0].type == "text"
    text = json.loads(result.content[0].text)
    assert text == result.structuredContent
    return text


def _error(result: CallToolResult) -> str:
    assert result.isError
    assert result.content[0].type == "text"
    return result.content[0].text


def _store_records(engine: Engine) -> dict[str, Record]:
    with Session(engine) as session:
        return {r.id: r for r in session.scalars(select(Record))}


def _thumbs(engine: Engine, ids: list[str]) -> dict[str, bool | None]:
    with Session(engine) as session:
        return newest_thumbs(session, ids)


def test_stdio_tools_answer_from_the_store(engine: Engine, database_url: str) -> None:
    seeded = _seed(engine)
    report = seeded.report
    problem = report.cluster(seeded.problem_cluster)
    assert problem is not None and problem.summary is not None
    records = _store_records(engine)
    thumbs = _thumbs(engine, list(records))

    async def scenario() -> None:
        async with _stdio(database_url) as mcp:
            listed = await mcp.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            for tool in listed.tools:
                assert tool.annotations is not None and tool.annotations.readOnlyHint
                assert tool.description and len(tool.description) > 80
            search = next(t for t in listed.tools if t.name == "search_records")
            assert search.inputSchema["properties"]["limit"]["maximum"] == 200
            assert set(search.inputSchema["properties"]) == {
                "text", "cluster_id", "run", "template", "feedback", "since", "until", "limit"
            }  # fmt: skip

            # Findings: the run's own list, in its order, with each cluster's title.
            found = _content(await mcp.call_tool("latest_findings", {}))
            assert found["run_id"] == seeded.run_id
            assert [(f["kind"], f["cluster_id"], f["message"]) for f in found["findings"]] == [
                (f.kind, f.cluster_id, f.message) for f in report.findings
            ]
            assert found["findings"][0]["cluster_title"] == problem.summary.title
            older = _content(await mcp.call_tool("latest_findings", {"run": seeded.old_run_id}))
            assert older["run_id"] == seeded.old_run_id

            clusters = _content(await mcp.call_tool("list_clusters", {}))
            assert {c["id"] for c in clusters["clusters"]} == {c.id for c in report.clusters}
            assert clusters["clusters"][0]["id"] == seeded.problem_cluster  # most severe first

            # A cluster's evidence: the report entry, counts from the store, examples down first.
            evidence = _content(
                await mcp.call_tool(
                    "cluster_evidence", {"cluster_id": seeded.problem_cluster, "examples": 6}
                )
            )
            entry = evidence["cluster"]
            assert entry["summary"]["root_cause"] == problem.summary.root_cause
            assert entry["keywords"] == problem.keywords
            assert entry["hotspot"]["q_value"] == problem.hotspot.q_value
            assert [f["kind"] for f in evidence["findings"]] == ["hotspot", "new_cluster"]
            members = [r for r, c in seeded.cluster_of.items() if c == seeded.problem_cluster]
            downs = [r for r in members if thumbs.get(r) is True]
            [template_row] = evidence["by"]["template"]
            assert template_row["template"] == "support@3"
            assert template_row["calls"] == len(members)
            assert template_row["down"] == len(downs)
            assert template_row["test"]["down_q_value"] == TEMPLATE_TEST.down_q_value
            assert template_row["test"]["against"] == "2"
            assert evidence["by"]["model"][0]["test"] is None
            examples = evidence["examples"]
            assert len(examples) == 6
            shown_down = [e["thumb"] == "down" for e in examples]
            assert shown_down == sorted(shown_down, reverse=True)  # thumbs-down ones first
            assert sum(shown_down) == min(6, len(downs))
            assert all(e["id"] in members for e in examples)
            assert evidence["down_tags"]["current"]["incorrect"] == len(downs)

            # One record in full, as the REST API shows it.
            record = _content(await mcp.call_tool("get_record", {"record_id": XSS_RECORD_ID}))
            assert record["prompt"] == XSS_PROMPT
            assert [f["value"] for f in record["feedback"]] == ["up", "down"]
            assert record["latest_feedback"]["comment"] == "<i>still</i> broken"
            assert record["clusters"][0] == {
                "run_id": seeded.run_id,
                "cluster_id": seeded.problem_cluster,
                "window": "current",
                "run_created_at": "2026-11-20T12:00:00Z",
            }

            # Search, each filter against the store read independently.
            def expected(keep: Any) -> list[str]:
                chosen = [r for r in records.values() if not r.internal and keep(r)]
                chosen.sort(key=lambda r: (r.timestamp, r.id), reverse=True)
                return [r.id for r in chosen]

            def question(r: Record) -> str:
                return (conversation_text(r.prompt, r.messages) + " " + (r.response or "")).lower()

            hits = _content(
                await mcp.call_tool(
                    "search_records", {"text": "CSV export", "feedback": "down", "limit": 200}
                )
            )
            want = expected(lambda r: "csv export" in question(r) and thumbs.get(r.id) is True)
            assert want and [h["id"] for h in hits["records"]] == want
            assert hits["more"] is False

            since, until = NOW - timedelta(days=3), NOW - timedelta(days=1)
            page = _content(
                await mcp.call_tool(
                    "search_records",
                    {
                        "cluster_id": 0,
                        "feedback": "none",
                        "since": since.isoformat(),
                        "until": until.isoformat().replace("+00:00", ""),  # naive: UTC
                        "limit": 5,
                    },
                )
            )
            want = expected(
                lambda r: (
                    seeded.cluster_of.get(r.id) == 0
                    and r.id not in thumbs
                    and since <= r.timestamp.replace(tzinfo=since.tzinfo) < until
                )
            )
            assert [h["id"] for h in page["records"]] == want[:5]
            assert page["more"] is (len(want) > 5)
            assert {h["window"] for h in page["records"]} == {"baseline"}

            billing = _content(
                await mcp.call_tool("search_records", {"template": "billing@1", "limit": 200})
            )
            want = expected(lambda r: (r.template_name, r.template_version) == ("billing", "1"))
            assert [h["id"] for h in billing["records"]] == want

            for needle in ('Export "Grüße" statt', "Grüße"):
                quoted = _content(await mcp.call_tool("search_records", {"text": needle}))
                assert [h["id"] for h in quoted["records"]] == [QUOTED_ID], needle

            # Experiments.
            listed_experiments = _content(await mcp.call_tool("list_experiments", {}))
            assert [e["id"] for e in listed_experiments["experiments"]] == ["exp-abc"]
            exp = _content(await mcp.call_tool("experiment_report", {"experiment_id": "exp-abc"}))
            assert exp["variants"][0]["spec"] == "template=support@2"
            assert exp["baseline"]["pass_rate"] == 0.0

            # Bad arguments: a tool error naming the problem.
            bad = {
                ("cluster_evidence", "cluster_id: run"): {"cluster_id": 99},
                ("cluster_evidence", "examples"): {"cluster_id": 0, "examples": 500},
                ("latest_findings", "no analysis run 'nope'"): {"run": "nope"},
                ("get_record", "no record with id 'nope'"): {"record_id": "nope"},
                ("search_records", "limit"): {"limit": 1000},
                ("search_records", "feedback"): {"feedback": "sideways"},
                ("search_records", "must be before until"): {
                    "since": "2026-11-20T00:00:00Z",
                    "until": "2026-11-19T00:00:00Z",
                },
                ("search_records", "since"): {"since": "last tuesday"},
                ("search_records", "has no cluster 42"): {"cluster_id": 42},
                ("experiment_report", "no experiment 'nope'"): {"experiment_id": "nope"},
            }
            for (tool, words), arguments in bad.items():
                message = _error(await mcp.call_tool(tool, arguments))
                assert words in message, (tool, arguments, message)

    anyio.run(scenario)


def test_stdio_on_an_empty_store_says_to_run_an_analysis(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'store.db'}"  # created and migrated by the command

    async def scenario() -> None:
        async with _stdio(url) as mcp:
            message = _error(await mcp.call_tool("latest_findings", {}))
            assert "no analysis run yet" in message and "llmscope analyze" in message
            empty = _content(await mcp.call_tool("search_records", {"text": "anything"}))
            assert empty == {"run_id": None, "records": [], "returned": 0, "more": False}

    anyio.run(scenario)


def _key(engine: Engine, name: str, scope: str) -> str:
    with Session(engine) as session:
        key = create_key(session, name=name, scope=scope)
        session.commit()
    return key


def test_http_under_serve_needs_a_read_key(
    engine: Engine, settings: Settings, database_url: str
) -> None:
    seeded = _seed(engine)
    read = _key(engine, "agent", "read")
    ingest = _key(engine, "app", "ingest")
    admin = _key(engine, "ops", "admin")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accept = {"accept": "application/json, text/event-stream"}
    with cli_server(
        ["serve", "--database-url", database_url],
        env={"LLMSCOPE_DATA_DIR": str(settings.data_dir)},
    ) as base:
        url = f"{base}/mcp"
        assert httpx.post(url, json=initialize, headers=accept).status_code == 401
        refused = httpx.post(
            url, json=initialize, headers=accept | {"authorization": f"Bearer {ingest}"}
        )
        assert refused.status_code == 403 and "'read'" in refused.json()["detail"]

        async def scenario(key: str) -> None:
            headers = {"authorization": f"Bearer {key}"}
            async with (
                httpx.AsyncClient(headers=headers, timeout=30) as client,
                streamable_http_client(url, http_client=client) as (read_stream, write_stream, _),
                ClientSession(read_stream, write_stream) as mcp,
            ):
                await mcp.initialize()
                assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS
                found = _content(await mcp.call_tool("latest_findings", {}))
                assert found["run_id"] == seeded.run_id
                assert found["findings"][0]["cluster_id"] == seeded.problem_cluster
                record = _content(await mcp.call_tool("get_record", {"record_id": QUOTED_ID}))
                assert record["messages"] == [{"role": "user", "content": QUOTED}]
                message = _error(await mcp.call_tool("get_record", {"record_id": "nope"}))
                assert "no record with id 'nope'" in message

        anyio.run(scenario, read)
        anyio.run(scenario, admin)  # admin covers read


def test_the_app_serves_mcp_again_after_a_restart(settings: Settings) -> None:
    """The SDK's session manager runs once; the app makes a new one on every start."""
    app = create_app(settings)
    ping = {"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {}}
    headers = {"accept": "application/json, text/event-stream"}
    for _ in range(2):
        with TestClient(app) as client:
            answer = client.post("/mcp", json=ping, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"jsonrpc": "2.0", "id": 7, "result": {}}
    # Outside its lifespan the endpoint answers 503, never a half-started server.
    stopped = TestClient(app).post("/mcp", json=ping, headers=headers)
    assert stopped.status_code == 503


@pytest.mark.parametrize(
    ("url", "needle"),
    [("not a url", "--database-url"), ("mysql://x/y", "unsupported database")],
)
def test_a_bad_store_url_is_exit_2_with_one_line_and_nothing_on_stdout(
    url: str, needle: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmscope", "mcp", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # stdout is the protocol's
    [line] = result.stderr.strip().splitlines()
    assert needle in line
