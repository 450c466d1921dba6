"""The dashboard's login: open until the first key, then only a read or admin key gets in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from dash import Dash
from flask.testing import FlaskClient
from pydantic import SecretStr
from sqlalchemy import Engine

from llmscope.config import Settings
from llmscope.dashboard import auth
from llmscope.dashboard.app import create_app
from llmscope.db import make_sessionmaker, session_scope
from llmscope.keys import create_key, revoke_key


@pytest.fixture(autouse=True)
def no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "CHECK_SECONDS", 0.0)


@pytest.fixture
def app(settings: Settings) -> Iterator[Dash]:
    yield create_app(settings.model_copy(update={"dashboard_secret_key": SecretStr("test-secret")}))


@pytest.fixture
def client(app: Dash) -> FlaskClient:
    return app.server.test_client()


def make_key(engine: Engine, name: str, scope: str) -> str:
    with session_scope(make_sessionmaker(engine)) as session:
        return create_key(session, name=name, scope=scope)


def dash_callback(client: FlaskClient) -> int:
    return client.post("/_dash-update-component", json={}).status_code


def test_open_while_no_key_exists(client: FlaskClient) -> None:
    assert client.get("/").status_code == 200
    assert dash_callback(client) != 401


def test_pages_and_callbacks_need_a_sign_in_once_keys_exist(
    client: FlaskClient, engine: Engine
) -> None:
    make_key(engine, "ops", "read")
    page = client.get("/clusters?color=feedback")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=/clusters%3Fcolor%3Dfeedback"
    assert dash_callback(client) == 401
    assert client.get("/export/clusters/0.csv").status_code == 302
    login = client.get("/login")
    assert login.status_code == 200 and b"API key" in login.data


def test_a_read_key_signs_in_and_lands_where_it_was_going(
    client: FlaskClient, engine: Engine
) -> None:
    key = make_key(engine, "viewer", "read")
    answer = client.post("/login", data={"key": key, "next": "/clusters?color=window"})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/clusters?color=window"
    assert client.get("/").status_code == 200
    assert dash_callback(client) != 401
    # the cookie names the key, it never holds it
    cookie = client.get_cookie("session")
    assert cookie is not None and key not in cookie.value
    client.get("/logout")
    assert client.get("/").status_code == 302


def test_wrong_or_ingest_keys_are_refused_with_a_reason(
    client: FlaskClient, engine: Engine
) -> None:
    ingest = make_key(engine, "app", "ingest")
    answer = client.post("/login", data={"key": ingest})
    assert answer.status_code == 200 and b"read or admin scope" in answer.data
    answer = client.post("/login", data={"key": "lsk_00000000_nope"})
    assert answer.status_code == 200 and b"not valid" in answer.data
    assert client.get("/").status_code == 302


def test_revoking_the_key_ends_the_session(client: FlaskClient, engine: Engine) -> None:
    key = make_key(engine, "temp", "admin")
    client.post("/login", data={"key": key})
    assert client.get("/").status_code == 200
    with session_scope(make_sessionmaker(engine)) as session:
        revoke_key(session, "temp")
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil"])
def test_no_open_redirect_after_sign_in(client: FlaskClient, engine: Engine, target: str) -> None:
    key = make_key(engine, "r", "read")
    answer = client.post("/login", data={"key": key, "next": target})
    assert answer.headers["Location"] == "/"


def test_login_page_escapes_what_it_echoes(client: FlaskClient, engine: Engine) -> None:
    make_key(engine, "k", "read")
    page = client.get('/login?next=/"><script>alert(1)</script>')
    assert b"<script>alert(1)</script>" not in page.data
    assert b"&lt;script&gt;" in page.data


@pytest.mark.e2e
def test_non_loopback_dashboard_without_keys_refuses_to_start(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmscope", "dashboard", "--host", "0.0.0.0",
         "--database-url", database_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--insecure" in result.stderr
