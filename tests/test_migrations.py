"""The migration of evaluations computed elsewhere, up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, make_url, text

from llmscope.db import MIGRATIONS_DIR, make_engine, upgrade
from tests.conftest import BACKENDS, PG_URL


@pytest.fixture(params=BACKENDS)
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty store (a new SQLite file, or a new PostgreSQL database of its own)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    assert PG_URL
    name = f"llmscope_test_migration_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(PG_URL).set(database=name).render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_external_evaluations_migration_goes_up_and_down(fresh_engine: Engine) -> None:
    upgrade(fresh_engine, "0006")
    schema = inspect(fresh_engine)
    assert "label" in {c["name"] for c in schema.get_columns("evaluations")}
    assert "response_id" in {c["name"] for c in schema.get_columns("records")}
    assert "ix_records_response_id" in {i["name"] for i in schema.get_indexes("records")}
    pending = {c["name"] for c in schema.get_columns("pending_evaluations")}
    assert {"record_ref", "span_id", "response_id", "evaluator", "label"} <= pending
    _downgrade(fresh_engine, "0005")
    schema = inspect(fresh_engine)
    assert "pending_evaluations" not in schema.get_table_names()
    assert "label" not in {c["name"] for c in schema.get_columns("evaluations")}
    assert "response_id" not in {c["name"] for c in schema.get_columns("records")}
    upgrade(fresh_engine)  # and back up to the head
    assert "pending_evaluations" in inspect(fresh_engine).get_table_names()


def test_trace_spans_migration_goes_up_and_down(fresh_engine: Engine) -> None:
    upgrade(fresh_engine, "0007")
    schema = inspect(fresh_engine)
    columns = {c["name"] for c in schema.get_columns("records")}
    assert {"parent_span_id", "links", "merged_into", "inherited"} <= columns
    spans = {c["name"] for c in schema.get_columns("trace_spans")}
    assert spans == {"trace_id", "span_id", "parent_span_id", "record_id"}
    assert schema.get_pk_constraint("trace_spans")["constrained_columns"] == [
        "trace_id",
        "span_id",
    ]
    _downgrade(fresh_engine, "0006")
    schema = inspect(fresh_engine)
    assert "trace_spans" not in schema.get_table_names()
    assert "merged_into" not in {c["name"] for c in schema.get_columns("records")}


def test_spans_migration_goes_up_and_down(fresh_engine: Engine) -> None:
    upgrade(fresh_engine, "0008")
    schema = inspect(fresh_engine)
    columns = {c["name"] for c in schema.get_columns("spans")}
    assert {"trace_id", "span_id", "parent_span_id", "kind", "start", "duration_ms"} <= columns
    assert schema.get_pk_constraint("spans")["constrained_columns"] == ["trace_id", "span_id"]
    _downgrade(fresh_engine, "0007")
    assert "spans" not in inspect(fresh_engine).get_table_names()
    assert "trace_spans" in inspect(fresh_engine).get_table_names()


def test_records_trace_and_merged_indexes_migration_goes_up_and_down(fresh_engine: Engine) -> None:
    upgrade(fresh_engine, "0009")
    indexes = {i["name"] for i in inspect(fresh_engine).get_indexes("records")}
    assert {"ix_records_trace_id", "ix_records_merged_into"} <= indexes
    _downgrade(fresh_engine, "0008")
    indexes = {i["name"] for i in inspect(fresh_engine).get_indexes("records")}
    assert not {"ix_records_trace_id", "ix_records_merged_into"} & indexes
    upgrade(fresh_engine)
    assert "ix_records_trace_id" in {
        i["name"] for i in inspect(fresh_engine).get_indexes("records")
    }
