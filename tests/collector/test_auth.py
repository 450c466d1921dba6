"""API keys: open until the first key, then 401 without a live key and 403 for a wrong scope."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from llmscope.app.server import create_app
from llmscope.collector.api import auth
from llmscope.collector.api.auth import needed_scope
from llmscope.config import Settings
from llmscope.db import make_sessionmaker, session_scope
from llmscope.db.models import ApiKey, Record
from llmscope.keys import create_key, revoke_key, verify_key
from tests.conftest import count_rows
from tests.factories import record


@pytest.fixture(autouse=True)
def no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # keys created in a test must be seen at once; the cache itself is tested below
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def make_key(engine: Engine, name: str, scope: str) -> str:
    with session_scope(make_sessionmaker(engine)) as session:
        return create_key(session, name=name, scope=scope)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_api_is_open_until_the_first_key(client: TestClient, engine: Engine) -> None:
    assert client.post("/api/v1/records", json=record(id="open")).status_code == 201
    make_key(engine, "first", "ingest")
    answer = client.post("/api/v1/records", json=record(id="closed"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "API key is required" in answer.json()["message"]
    assert count_rows(engine, Record) == 1


# (method, path, body) for every route family the collector serves, and the scope it needs
CALLS = [
    ("POST", "/api/v1/records", record(id="k1"), "ingest"),
    ("POST", "/api/v1/records/k0/feedback", {"value": "up"}, "ingest"),
    ("POST", "/api/v1/records/k0/evaluations", {"evaluator": "tone", "passed": True}, "ingest"),
    ("GET", "/api/v1/records", None, "read"),
    ("GET", "/api/v1/records/k0", None, "read"),
    ("GET", "/api/v1/analysis/runs/latest", None, "read"),
    ("GET", "/api/v1/alerts", None, "read"),
    ("POST", "/v1/traces", {"resourceSpans": []}, "ingest"),
]


@pytest.mark.parametrize(("method", "path", "body", "needed"), CALLS)
def test_every_route_family_checks_keys_and_scopes(
    client: TestClient, engine: Engine, method: str, path: str, body: object, needed: str
) -> None:
    assert client.post("/api/v1/records", json=record(id="k0")).status_code == 201
    keys = {scope: make_key(engine, scope, scope) for scope in ("ingest", "read", "admin")}

    def call(headers: dict[str, str]) -> int:
        return client.request(method, path, json=body, headers=headers).status_code

    assert call({}) == 401
    assert call(bearer("lsk_deadbeef_not-a-real-key")) == 401
    assert call({"Authorization": "Basic dXNlcjpwYXNz"}) == 401
    other = "read" if needed == "ingest" else "ingest"
    assert call(bearer(keys[other])) == 403
    # authorised: whatever the route answers (404 for "no run yet"), it is not an auth refusal
    assert call(bearer(keys[needed])) not in (401, 403)
    assert call(bearer(keys["admin"])) not in (401, 403)


def test_health_and_docs_need_no_key(client: TestClient, engine: Engine) -> None:
    make_key(engine, "k", "read")
    assert client.get("/health").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_revoked_key_is_refused(client: TestClient, engine: Engine) -> None:
    key = make_key(engine, "soon-gone", "read")
    assert client.get("/api/v1/records", headers=bearer(key)).status_code == 200
    with session_scope(make_sessionmaker(engine)) as session:
        revoke_key(session, "soon-gone")
    assert client.get("/api/v1/records", headers=bearer(key)).status_code == 401


def test_keys_are_stored_hashed_and_verified(engine: Engine) -> None:
    key = make_key(engine, "hashed", "admin")
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        row = session.scalars(select(ApiKey)).one()
        assert key not in (row.key_hash, row.prefix)
        assert key.split("_", 2)[2] not in row.key_hash
        assert verify_key(session, key) == "admin"
        assert verify_key(session, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert verify_key(session, "sk-something-else") is None


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/api/v1/records", "ingest"),
        ("POST", "/api/v1/records/abc/feedback", "ingest"),
        ("POST", "/api/v1/records/abc/evaluations", "ingest"),
        ("POST", "/v1/traces", "ingest"),
        ("POST", "/v1/chat/completions", "ingest"),
        ("POST", "/v1/completions", "ingest"),
        ("POST", "/v1/embeddings", "ingest"),
        ("POST", "/v1/responses", "ingest"),
        ("POST", "/endpoints/chat/invocations", "ingest"),
        ("POST", "/gateway/chat/invocations", "ingest"),
        ("GET", "/api/2.0/endpoints/", "read"),
        ("GET", "/api/2.0/gateway/routes/", "read"),
        ("GET", "/api/v1/analysis/runs/latest", "read"),
        ("POST", "/mcp", "read"),  # the MCP server's tools only read
        ("DELETE", "/mcp", "read"),
        ("DELETE", "/api/v1/records/abc", "admin"),
        ("POST", "/api/v1/records/abc/other", "admin"),
    ],
)
def test_scope_follows_method_and_path(method: str, path: str, scope: str) -> None:
    assert needed_scope(method, path) == scope


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmscope", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.e2e
def test_keys_cli_create_list_revoke(database_url: str, engine: Engine) -> None:
    made = cli("keys", "create", "--name", "ci", "--scope", "read", "--database-url", database_url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("lsk_")
    with make_sessionmaker(engine)() as session:
        assert verify_key(session, key) == "read"

    duplicate = cli("keys", "create", "--name", "ci", "--database-url", database_url)
    assert duplicate.returncode == 2 and "exists already" in duplicate.stderr

    listed = cli("keys", "list", "--database-url", database_url)
    assert "ci" in listed.stdout and "read" in listed.stdout and key not in listed.stdout

    assert cli("keys", "revoke", "ci", "--database-url", database_url).returncode == 0
    with make_sessionmaker(engine)() as session:
        assert verify_key(session, key) is None
    unknown = cli("keys", "revoke", "nobody", "--database-url", database_url)
    assert unknown.returncode == 2 and "no key named" in unknown.stderr


@pytest.mark.e2e
def test_bad_scope_is_exit_2(database_url: str) -> None:
    result = cli("keys", "create", "--name", "x", "--scope", "root", "--database-url", database_url)
    assert result.returncode == 2
    assert "--scope" in result.stderr


@pytest.mark.e2e
def test_non_loopback_without_keys_refuses_to_start(database_url: str) -> None:
    result = cli("serve", "--host", "0.0.0.0", "--database-url", database_url)
    assert result.returncode == 2
    assert "--insecure" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
