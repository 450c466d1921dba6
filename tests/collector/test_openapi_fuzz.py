"""Schemathesis against the collector's own OpenAPI spec: no 5xx, answers match the schema.

The app under test is the real collector on a real SQLite store, with the gateway serving an
offline endpoint, so the gateway's routes are fuzzed along with ingest, feedback and reads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade

CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: support-bot, config: {latency_ms: 0}}
  - name: complete
    endpoint_type: llm/v1/completions
    model: {provider: offline, name: support-bot, config: {latency_ms: 0}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model: {provider: offline, name: hash-embed}
"""


def collector(workdir: Path) -> FastAPI:
    """The collector with the offline gateway, its SQLite store (not migrated here) in workdir."""
    config = workdir / "gateway.yaml"
    config.write_text(CONFIG)
    return create_app(
        Settings(
            database_url=f"sqlite:///{workdir / 'fuzz.db'}",
            data_dir=workdir / "data",
            gateway_config=config,
        )
    )


# The operations to fuzz (one test each) come from the OpenAPI document, which collection needs:
# it is read from an app that serves nothing, in a folder removed at once. The app the cases
# are sent to is built with its migrated store by the fixture below, only when the tests run.
# (schemathesis.pytest.from_fixture would defer it all, but it fails under pytest 9.)
with tempfile.TemporaryDirectory(prefix="llmscope-fuzz-") as _spec_dir:
    schema = schemathesis.openapi.from_dict(collector(Path(_spec_dir)).openapi())


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    workdir = tmp_path_factory.mktemp("fuzz")
    built = collector(workdir)
    engine = make_engine(f"sqlite:///{workdir / 'fuzz.db'}")
    upgrade(engine)
    engine.dispose()
    return built


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_fails_and_answers_match_the_schema(
    app: FastAPI, case: schemathesis.Case
) -> None:
    response = case.call(app=app)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            allow_header_conformance,
        ],
    )
