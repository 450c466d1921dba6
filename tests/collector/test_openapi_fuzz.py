"""Schemathesis against the collector's own OpenAPI spec: no 5xx, answers match the schema.

The app under test is the real collector on a real SQLite store, with the gateway serving an
offline endpoint, so the gateway's routes are fuzzed along with ingest, feedback and reads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
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

_workdir = Path(tempfile.mkdtemp(prefix="llmscope-fuzz-"))
_config = _workdir / "gateway.yaml"
_config.write_text(
    """
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
)
_settings = Settings(
    database_url=f"sqlite:///{_workdir / 'fuzz.db'}",
    data_dir=_workdir / "data",
    gateway_config=_config,
)
upgrade(make_engine(_settings.database_url))
app = create_app(_settings)

schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_fails_and_answers_match_the_schema(case: schemathesis.Case) -> None:
    response = case.call()
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            allow_header_conformance,
        ],
    )
